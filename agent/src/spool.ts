/**
 * The agent's durable spool: every report batch is written here before it is sent, and
 * removed only once the coordinator acknowledged it. One file per batch, written to a
 * temporary name, synced and renamed, so a batch on disk is always whole. A `kill -9`
 * loses nothing written and duplicates nothing (the coordinator stores each
 * (agent, sequence) once).
 *
 * Sequences are reserved in blocks: the state file records the first sequence not yet
 * handed out, a block ahead, so it is written once per block rather than once per batch.
 * A restart continues after the reserved block; numbers are skipped, never reused.
 * Batches appended by this process stay in memory, encoded, until acknowledged (up to a
 * bound), so sending them neither reads back nor encodes again what was just written.
 *
 * The spool is bounded by batch count and bytes. When it must make room it drops the
 * oldest batches and says so: the count goes into the next batch's `droppedBefore`,
 * which the coordinator records, and into the log. It is never silent.
 */
import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import { join } from "node:path";
import { BinaryWriter } from "@bufbuild/protobuf/wire";
import { meshV1 } from "@coral/sdk-proto/grpc";

export interface SpoolLimits {
  maxBatches: number;
  maxBytes: number;
}

export const DEFAULT_SPOOL_LIMITS: SpoolLimits = { maxBatches: 50_000, maxBytes: 256 * 1024 * 1024 };

const FILE_RE = /^(\d{16})\.batch$/;
const STATE_FILE = "state.json";
/** Sequences reserved per write of the state file. */
const RESERVE = 100;
/** Bytes of unsent batches kept decoded in memory; older ones are read back from disk. */
const MEMORY_BYTES = 4 * 1024 * 1024;

interface SpoolState {
  /** The first sequence not reserved yet: every batch so far has a lower one. */
  next: number;
  /** Batches dropped since the last batch that reported drops. */
  droppedUnreported: number;
  /** Every batch ever dropped. */
  droppedTotal: number;
}

export type NewBatch = Omit<meshV1.Batch, "sequence" | "droppedBefore">;

export class Spool {
  private state: SpoolState;
  /** The sequence the next batch gets (below `state.next`). */
  private next: number;
  /** Sequence → size in bytes of what is on disk. */
  private readonly sizes = new Map<number, number>();
  private bytes = 0;
  /** Unsent batches this process appended, as written, while they fit in MEMORY_BYTES. */
  private readonly recent = new Map<number, Uint8Array>();
  private recentBytes = 0;

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
    this.next = Math.max(saved.next, highest + 1);
    this.state = { ...saved, next: this.next };
  }

  /** Batches waiting, and their bytes. */
  get size(): { batches: number; bytes: number; droppedTotal: number } {
    return { batches: this.sizes.size, bytes: this.bytes, droppedTotal: this.state.droppedTotal };
  }

  /** Writes a batch durably and returns it with its sequence. */
  append(batch: NewBatch): meshV1.Batch {
    const sequence = this.next;
    const full: meshV1.Batch = { ...batch, sequence, droppedBefore: this.state.droppedUnreported };
    let bytes = meshV1.Batch.encode(full).finish();
    if (this.makeRoom(bytes.length) > 0) {
      full.droppedBefore = this.state.droppedUnreported;
      bytes = meshV1.Batch.encode(full).finish();
    }
    // The sequence is spent before the batch exists: a crash in between skips a number, never reuses one.
    this.next = sequence + 1;
    if (sequence >= this.state.next || full.droppedBefore > 0) {
      this.state = { ...this.state, next: Math.max(this.state.next, sequence + RESERVE), droppedUnreported: 0 };
      this.writeState();
    }
    writeDurably(join(this.dir, fileName(sequence)), bytes);
    this.sizes.set(sequence, bytes.length);
    this.bytes += bytes.length;
    if (this.recentBytes + bytes.length <= MEMORY_BYTES) {
      this.recent.set(sequence, bytes);
      this.recentBytes += bytes.length;
    }
    return full;
  }

  /** The oldest batches waiting, in order. */
  pending(limit: number): meshV1.Batch[] {
    return this.pendingEncoded(limit).map((bytes) => meshV1.Batch.decode(bytes));
  }

  /** The oldest batches waiting, in order, encoded as they were written: what `encodeReportRequest` sends. */
  pendingEncoded(limit: number): Uint8Array[] {
    return [...this.sizes.keys()]
      .sort((a, b) => a - b)
      .slice(0, limit)
      .map((sequence) => this.recent.get(sequence) ?? readFileSync(join(this.dir, fileName(sequence))));
  }

  /** Forgets batches the coordinator has stored. */
  ack(sequences: Iterable<number>): void {
    for (const sequence of sequences) this.remove(sequence);
  }

  /** Drops the oldest batches until one of `incoming` bytes fits; says how many it dropped. */
  private makeRoom(incoming: number): number {
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
    return dropped;
  }

  private remove(sequence: number): void {
    const size = this.sizes.get(sequence);
    if (size === undefined) return;
    unlinkQuietly(join(this.dir, fileName(sequence)));
    this.sizes.delete(sequence);
    this.bytes -= size;
    if (this.recent.delete(sequence)) this.recentBytes -= size;
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

/** unlink(2), absent or not: rmSync walks its options and lstat()s first, on every acknowledged batch. */
function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
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

/**
 * A `ReportRequest` made of batches already encoded: its one field (1, `repeated Batch`) is
 * each batch length-delimited, so the request is a tag and a length before each batch's bytes,
 * rather than every batch encoded a second time for the call.
 */
export function encodeReportRequest(batches: readonly Uint8Array[]): Buffer {
  const writer = new BinaryWriter();
  for (const batch of batches) writer.uint32((1 << 3) | 2).bytes(batch); // field 1, length-delimited
  return Buffer.from(writer.finish());
}
