// A catalog service with a response cache: every distinct request is rendered and kept. The
// cache has no eviction, so its memory grows with the variety of traffic it sees.
import { createServer } from "node:http";

const RELEASE = /* release */ {};
const { port = 8080, pageBytes = 64 * 1024 } = RELEASE;
const cache = new Map();

const server = createServer((req, res) => {
  let page = cache.get(req.url);
  if (!page) {
    page = Buffer.alloc(pageBytes, req.url ?? "/");
    cache.set(req.url, page);
  }
  res.writeHead(200, { "content-type": "text/plain", "x-cache-size": String(cache.size) }).end(page.subarray(0, 64));
});
server.listen(port, "0.0.0.0", () => console.log(`catalog listening on ${port}`));
