// A report export, run by a scheduler: reads a batch of records, writes a report, exits 0.
// It takes a few seconds and a little CPU.
import { createHash } from "node:crypto";

const deadline = Date.now() + 4_000;
let digest = createHash("sha256");
let records = 0;
const step = () => {
  for (let i = 0; i < 2_000; i++) digest.update(`record ${records++}`);
  if (Date.now() < deadline) setTimeout(step, 20);
  else {
    console.log(`exported ${records} records: ${digest.digest("hex").slice(0, 12)}`);
    digest = undefined;
  }
};
step();
