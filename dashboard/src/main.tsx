import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { useConnected } from "./live.js";
import { AgentsPage } from "./pages/agents.js";
import { AskPage } from "./pages/ask.js";
import { FindingsPage } from "./pages/findings.js";
import { MapPage, prefetchMap } from "./pages/map.js";
import { ServicePage } from "./pages/service.js";
import { TimelinePage } from "./pages/timeline.js";
import { href, parseRoute, type Route, useRoute } from "./route.js";
import "./style.css";

type Theme = "dark" | "light";

function initialTheme(): Theme {
  const saved = localStorage.getItem("coral-theme");
  if (saved === "dark" || saved === "light") return saved;
  return matchMedia("(prefers-color-scheme: light)").matches ? "light" : "dark";
}

function Nav({ route }: { route: Route }) {
  const connected = useConnected();
  const [theme, setTheme] = useState(initialTheme);
  useEffect(() => {
    document.documentElement.dataset.theme = theme;
    localStorage.setItem("coral-theme", theme);
  }, [theme]);
  const link = (page: Route["page"], to: string, label: string) => (
    <a href={to} aria-current={route.page === page ? "page" : undefined}>
      {label}
    </a>
  );
  return (
    <header class="top">
      <a class="brand" href="#/">
        Coral
      </a>
      <nav aria-label="Pages">
        {link("map", href.map(), "Map")}
        {link("timeline", href.timeline(), "Timeline")}
        {link("findings", href.findings(), "Findings")}
        {link("agents", href.agents(), "Agents")}
        {link("ask", href.ask(), "Ask")}
      </nav>
      <span class={connected ? "live on" : "live off"} role="status" title={connected ? "Following changes live" : "Reconnecting…"}>
        {connected ? "live" : "offline"}
      </span>
      <button type="button" onClick={() => setTheme(theme === "dark" ? "light" : "dark")} aria-label="Switch theme">
        {theme === "dark" ? "Light" : "Dark"}
      </button>
    </header>
  );
}

function App() {
  const route = useRoute();
  return (
    <>
      <Nav route={route} />
      <main id="main">
        {route.page === "map" && <MapPage at={route.at} group={route.group} />}
        {route.page === "service" && <ServicePage name={route.name} />}
        {route.page === "timeline" && <TimelinePage params={route.params} />}
        {route.page === "findings" && <FindingsPage />}
        {route.page === "agents" && <AgentsPage />}
        {route.page === "ask" && <AskPage />}
      </main>
    </>
  );
}

const first = parseRoute(location.hash);
if (first.page === "map" && first.at === undefined) prefetchMap();
const root = document.getElementById("app");
if (root) render(<App />, root);
