/**
 * The web dashboard: static files built from dashboard/ into this package's dashboard/
 * folder, served on the API's address, and the browser's way past the API token.
 *
 * A browser cannot put a bearer header on a navigation, so a token-protected coordinator
 * takes it once in the address (`/?token=TOKEN`), answers with an HttpOnly, SameSite=Strict
 * cookie that holds a digest of the token (never the token), and redirects to the same page
 * without it, so the token does not stay in the address bar or the history. The cookie
 * authorizes only reads (GET and HEAD): the dashboard changes nothing, and a write needs the
 * bearer token as before.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { dirname, extname, join, normalize, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { CoralError } from "@coral-mesh/sdk-proto";
import type { Context, Hono } from "hono";

export const DASHBOARD_COOKIE = "coral_dashboard";

/**
 * Where the build puts the dashboard: `dashboard/` at this package's root, found upward from
 * this module (dist/ when bundled, src/api/ when run from source).
 */
export function defaultDashboardDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "package.json")) && dirname(dir) !== dir) dir = dirname(dir);
  return join(dir, "dashboard");
}

/** The cookie's value: a digest, so a stolen cookie is not the token that also allows writes. */
export function cookieValue(token: string): string {
  return createHash("sha256").update(`coral-dashboard\0${token}`).digest("base64url");
}

function sameText(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function cookieOf(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? "").split(";")) {
    const [key, ...rest] = part.trim().split("=");
    if (key === name) return rest.join("=");
  }
  return undefined;
}

/** Whether a request may pass: the bearer token, or (for reads) the dashboard's cookie. */
/**
 * What the cookie may post besides reading: a question (`POST /v1/ask` reads the store and
 * writes nothing to it), from the dashboard's own origin.
 */
const COOKIE_POSTS = new Set(["/v1/ask"]);

/**
 * A browser names the page's origin on a POST; one from another host is refused even with the
 * cookie (which is SameSite=Strict too). The host, not the whole origin: a TLS proxy in front
 * changes the scheme the coordinator sees, not the Host it is asked for.
 */
function sameOrigin(c: Context): boolean {
  const origin = c.req.header("origin");
  if (origin === undefined) return true;
  try {
    return new URL(origin).host === (c.req.header("host") ?? new URL(c.req.url).host);
  } catch {
    return false;
  }
}

export function authorized(c: Context, token: string): boolean {
  const bearer = /^Bearer (.+)$/.exec(c.req.header("authorization") ?? "")?.[1];
  if (bearer !== undefined) return sameText(bearer, token);
  if (c.req.method !== "GET" && c.req.method !== "HEAD" && !(c.req.method === "POST" && COOKIE_POSTS.has(c.req.path) && sameOrigin(c))) {
    return false;
  }
  const cookie = cookieOf(c.req.header("cookie"), DASHBOARD_COOKIE);
  return cookie !== undefined && sameText(cookie, cookieValue(token));
}

/**
 * Handles `?token=` on a page (before the auth middleware): a right one sets the cookie and
 * redirects to the page without it; a wrong one is refused like a wrong bearer token.
 */
export function tokenExchange(c: Context, token: string | undefined): Response | undefined {
  const presented = c.req.query("token");
  if (presented === undefined || c.req.method !== "GET" || c.req.path.startsWith("/v1/")) return undefined;
  if (!token) return c.redirect(c.req.path, 303);
  if (!sameText(presented, token)) {
    throw new CoralError("api_unauthorized", "The token in the address is not this coordinator's API token.");
  }
  const secure = new URL(c.req.url).protocol === "https:" ? "; Secure" : "";
  c.header("set-cookie", `${DASHBOARD_COOKIE}=${cookieValue(token)}; Path=/; HttpOnly; SameSite=Strict${secure}`);
  c.header("cache-control", "no-store");
  return c.redirect(c.req.path, 303);
}

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".json": "application/json",
  ".woff2": "font/woff2",
};

/** GET / and /assets/*: the built files, read once and kept in memory (they are a few hundred KB). */
export function dashboardRoutes(app: Hono, dir: string): void {
  const cache = new Map<string, Buffer>();
  const read = (relative: string): Buffer | undefined => {
    const path = normalize(join(dir, relative));
    if (!path.startsWith(dir + sep)) return undefined;
    let body = cache.get(path);
    if (!body) {
      if (!existsSync(path)) return undefined;
      body = readFileSync(path);
      cache.set(path, body);
    }
    return body;
  };
  const index = (c: Context) => {
    const body = read("index.html");
    if (!body) {
      throw new CoralError("dashboard_not_built", "The dashboard is not built into this coordinator: run `npm run build` in the checkout.");
    }
    return c.body(new Uint8Array(body), 200, {
      "content-type": TYPES[".html"] as string,
      // The page names its assets by hash: it must be asked for again, they need not be.
      "cache-control": "no-cache",
      "x-content-type-options": "nosniff",
      "referrer-policy": "no-referrer",
      "content-security-policy":
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'",
    });
  };
  app.get("/", index);
  app.get("/index.html", index);
  app.get("/assets/:file", (c) => {
    const file = c.req.param("file");
    const body = read(join("assets", file));
    if (!body) throw new CoralError("not_found", "No such dashboard asset.");
    return c.body(new Uint8Array(body), 200, {
      "content-type": TYPES[extname(file)] ?? "application/octet-stream",
      "cache-control": "public, max-age=31536000, immutable",
      "x-content-type-options": "nosniff",
    });
  });
}
