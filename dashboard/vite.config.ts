import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

// The build goes straight into the coordinator package, whose "files" publish it and whose
// API serves it (coordinator/src/api/dashboard.ts).
export default defineConfig({
  root: fileURLToPath(new URL(".", import.meta.url)),
  base: "/",
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
