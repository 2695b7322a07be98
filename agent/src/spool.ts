/**
 * The agent's durable spool: every report batch is written here before it is sent, and
 * removed only once the coordinator acknowledged it. One file per batch, written to a
 * temporary name, synced and renamed, so a batch on disk is always whole. A `kill -9`
 * loses nothing written and duplicates nothing (the coordinator stores each
 * (agent, sequence) once).
 *
 * The spool is bounded by batch count and bytes. When it must make room it drops the
 * oldest batches and says so: the count goes into the next batch's `droppedBefore`,
 * which the coordinator records, and into the log. It is never silent.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeSync } from "node:fs";
import { join } from "node:path";
import { meshV1 } from "@coral/sdk-proto/grpc";

export interface SpoolLimits {
  maxBatches: number;
  maxBytes: number;
}

export const DEFAULT_SPOOL_LIMITS: SpoolLimits = { maxBatches: 50_000, maxBytes: 256 * 1024 * 1024 };

const FILE_RE = /^(\d{16})\.batch$/;
const STATE_FILE = "state.json";

interface SpoolState {
  /** The sequence the next batch gets. */
  next: number;
  /** Batches dropped since the last batch that reported drops. */
  droppedUnreported: number;
  /** Every batch ever dropped. */
  droppedTotal: number;
}

export type NewBatch = Omit<meshV1.Batch, "sequence" | "droppedBefore">;

export class Spool {
  private state: SpoolState;
  /** Sequence → size in bytes of what is on disk. */
  private readonly sizes = new Map<number, number>();
  private bytes = 0;

  constructor(
    private readonly dir: string,
    private readonly limits: SpoolLimits = DEFAULT_SPOOL_LIMITS,
    private readonly log: (line: string) => void = () => {},
  ) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    for (const name of readdirSync(dir)) {
      const match = FILE_RE.exec(name);
      if (match) {
        const size = statSync(join(dir, name)).size;
        this.sizes.set(Number(match[1]), size);
        this.bytes += size;
      } else if (name.endsWith(".tmp")) {
        rmSync(join(dir, name), { force: true }); // a write that a crash cut short; never acknowledged
      }
    }
    const saved = this.readState();
    const highest = Math.max(0, ...this.sizes.keys());
    this.state = { ...saved, next: Math.max(saved.next, highest + 1) };
  }

  /** Batches waiting, and their bytes. */
  get size(): { batches: number; bytes: number; droppedTotal: number } {
    return { batches: this.sizes.size, bytes: this.bytes, droppedTotal: this.state.droppedTotal };
  }

  /** Writes a batch durably and returns it with its sequence. */
  append(batch: NewBatch): meshV1.Batch {
    const sequence = this.state.next;
    const full: meshV1.Batch = { ...batch, sequence, droppedBefore: 0 };
    let bytes = meshV1.Batch.encode(full).finish();
    this.makeRoom(bytes.length);
    if (this.state.droppedUnreported > 0) {
      full.droppedBefore = this.state.droppedUnreported;
      bytes = meshV1.Batch.encode(full).finish();
    }
    // The sequence is spent before the batch exists: a crash in between skips a number, never reuses one.
    this.state = { ...this.state, next: sequence + 1, droppedUnreported: 0 };
    this.writeState();
    writeDurably(join(this.dir, fileName(sequence)), bytes);
    this.sizes.set(sequence, bytes.length);
    this.bytes += bytes.length;
    return full;
  }

  /** The oldest batches waiting, in order. */
  pending(limit: number): meshV1.Batch[] {
    return [...this.sizes.keys()]
      .sort((a, b) => a - b)
      .slice(0, limit)
      .map((sequence) => meshV1.Batch.decode(readFileSync(join(this.dir, fileName(sequence)))));
  }

  /** Forgets batches the coordinator has stored. */
  ack(sequences: Iterable<number>): void {
    for (const sequence of sequences) this.remove(sequence);
  }

  private makeRoom(incoming: number): void {
    const order = [...this.sizes.keys()].sort((a, b) => a - b);
    let dropped = 0;
    while (order.length > 0 && (this.sizes.size + 1 > this.limits.maxBatches || this.bytes + incoming > this.limits.maxBytes)) {
      this.remove(order.shift() as number);
      dropped++;
    }
    if (dropped > 0) {
      this.state = {
        ...this.state,
        droppedUnreported: this.state.droppedUnreported + dropped,
        droppedTotal: this.state.droppedTotal + dropped,
      };
      this.log(
        `spool full (${this.limits.maxBatches} batches or ${Math.round(this.limits.maxBytes / 1048576)} MiB): dropped the ${dropped} oldest batch(es) unsent; ${this.state.droppedTotal} dropped in all`,
      );
    }
  }

  private remove(sequence: number): void {
    const size = this.sizes.get(sequence);
    if (size === undefined) return;
    rmSync(join(this.dir, fileName(sequence)), { force: true });
    this.sizes.delete(sequence);
    this.bytes -= size;
  }

  private readState(): SpoolState {
    try {
      const parsed = JSON.parse(readFileSync(join(this.dir, STATE_FILE), "utf8")) as Partial<SpoolState>;
      return { next: parsed.next ?? 1, droppedUnreported: parsed.droppedUnreported ?? 0, droppedTotal: parsed.droppedTotal ?? 0 };
    } catch {
      return { next: 1, droppedUnreported: 0, droppedTotal: 0 };
    }
  }

  private writeState(): void {
    writeDurably(join(this.dir, STATE_FILE), Buffer.from(JSON.stringify(this.state)));
  }
}

const fileName = (sequence: number) => `${String(sequence).padStart(16, "0")}.batch`;

/** Temporary file, fsync, rename, fsync of the directory: the file is whole or absent. */
function writeDurably(path: string, bytes: Uint8Array): void {
  const temporary = `${path}.tmp`;
  const fd = openSync(temporary, "w", 0o600);
  try {
    writeSync(fd, bytes);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temporary, path);
  const dirFd = openSync(join(path, ".."), "r");
  try {
    fsyncSync(dirFd);
  } finally {
    closeSync(dirFd);
  }
}
