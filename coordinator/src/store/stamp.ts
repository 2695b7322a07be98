/**
 * The time a row is written (`updated_at`), never going back within this process: the read
 * model fetches rows written since the latest stamp it read, so a clock stepped back must not
 * hide a write from it.
 */
let last = 0;

export function writeStamp(): number {
  last = Math.max(last, Date.now());
  return last;
}
