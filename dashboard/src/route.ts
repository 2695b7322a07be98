/** Routes live in the hash (`#/service/web`), so the coordinator serves one page for all of them. */
import { useEffect, useState } from "preact/hooks";

export type Route =
  | { page: "map"; at: number | undefined; group: boolean }
  | { page: "service"; name: string }
  | { page: "timeline"; params: URLSearchParams }
  | { page: "findings" }
  | { page: "agents" }
  | { page: "ask" };

export function parseRoute(hash: string): Route {
  const [path = "", search = ""] = hash.replace(/^#/, "").split("?");
  const params = new URLSearchParams(search);
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  switch (parts[0]) {
    case "service":
      return { page: "service", name: parts.slice(1).join("/") };
    case "timeline":
      return { page: "timeline", params };
    case "findings":
      return { page: "findings" };
    case "agents":
      return { page: "agents" };
    case "ask":
      return { page: "ask" };
    default: {
      const at = Number(params.get("at"));
      return { page: "map", at: Number.isFinite(at) && at > 0 ? at : undefined, group: params.get("group") === "agent" };
    }
  }
}

export const href = {
  map: (options: { at?: number | undefined; group?: boolean } = {}) => {
    const params = new URLSearchParams();
    if (options.at) params.set("at", String(options.at));
    if (options.group) params.set("group", "agent");
    return params.size > 0 ? `#/?${params}` : "#/";
  },
  service: (name: string) => `#/service/${encodeURIComponent(name)}`,
  timeline: (params: Record<string, string | undefined> = {}) => {
    const p = new URLSearchParams(Object.entries(params).filter((e): e is [string, string] => !!e[1]));
    return p.size > 0 ? `#/timeline?${p}` : "#/timeline";
  },
  findings: () => "#/findings",
  agents: () => "#/agents",
  ask: () => "#/ask",
};

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(location.hash));
  useEffect(() => {
    const update = () => setRoute(parseRoute(location.hash));
    addEventListener("hashchange", update);
    return () => removeEventListener("hashchange", update);
  }, []);
  return route;
}
