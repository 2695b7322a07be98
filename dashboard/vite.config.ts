import { fileURLToPath } from "node:url";
import { defineConfig, type Plugin } from "vite";
import { MAP_REQUESTS } from "./src/map-requests.js";

/**
 * The map is the first page, and what it draws waits for its four API answers and its graph
 * library: index.html asks for them while it is parsed, before the page's script has even
 * compiled (the script's own fetches then take the preloaded answers). A page other than the
 * map, opened directly, asks for them unused once (~140 kB from a 300-service mesh).
 */
function preloadMap(): Plugin {
  return {
    name: "coral-preload-map",
    apply: "build",
    transformIndexHtml: {
      order: "post",
      handler(_html, ctx) {
        const graph = Object.values(ctx.bundle ?? {}).find((chunk) => chunk.type === "chunk" && chunk.name === "graph");
        return [
          ...MAP_REQUESTS.map((href) => ({
            tag: "link",
            // crossorigin (anonymous): what fetch() asks with, same origin, or the preload is not used.
            attrs: { rel: "preload", as: "fetch", crossorigin: true, href },
            injectTo: "head" as const,
          })),
          ...(graph
            ? [{ tag: "link", attrs: { rel: "modulepreload", crossorigin: true, href: `/${graph.fileName}` }, injectTo: "head" as const }]
            : []),
        ];
      },
    },
  };
}

// The build goes straight into the coordinator package, whose "files" publish it and whose
// API serves it (coordinator/src/api/dashboard.ts).
export default defineConfig({
  root: fileURLToPath(new URL(".", import.meta.url)),
  base: "/",
  plugins: [preloadMap()],
  build: {
    outDir: fileURLToPath(new URL("../coordinator/dashboard", import.meta.url)),
    emptyOutDir: true,
    target: "es2022",
    reportCompressedSize: true,
    // No inlined assets: the page's CSP allows only its own origin.
    assetsInlineLimit: 0,
    // One chunk of ~190 KB gzipped (cytoscape is most of it), under the 300 KB budget of docs/dashboard.md.
    chunkSizeWarningLimit: 700,
  },
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
});
