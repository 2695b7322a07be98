// A worker of the mailer's pool: sends messages for its lifetime (ms), then exits 0.
const lifetime = Number(process.argv[2] ?? 30_000);
let sent = 0;
const timer = setInterval(() => sent++, 50);
setTimeout(() => {
  clearInterval(timer);
  process.exit(0);
}, lifetime);
