// Clients of a service: `rate` requests a second to http://HOST:PORT/, each for a new path
// when `distinct` (users browsing ever more pages), else always the same one.
const [host, port, rate, distinct] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4]), process.argv[5] === "distinct"];
let n = 0;
setInterval(() => {
  n++;
  fetch(`http://${host}:${port}/${distinct ? `items/${n}` : "items"}`)
    .then((r) => r.arrayBuffer())
    .catch(() => {});
}, 1_000 / rate);
