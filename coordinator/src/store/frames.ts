/**
 * The packed form of metric samples and rollups. A row per sample costs SQLite a hundred
 * bytes or more (names, a rowid, two index entries); packed, a sample is its series id,
 * its time as an offset from the frame's first, and its value, a few bytes in all.
 *
 * Numbers are unsigned LEB128 varints. A value is written as a varint whose two low bits
 * say how to read it: 0, a whole number; 1, hundredths; 2, ten-thousandths (zigzag-encoded,
 * so small negatives stay small); 3, a float64 follows. Collectors round CPU shares and
 * loads to a few decimals and count bytes in whole numbers, so nearly every value takes the
 * first three forms: one to five bytes instead of eight.
 */

const SCALES = [1, 100, 10_000] as const;
const MAX_EXACT = 2 ** 50;

class Writer {
  private buffer = Buffer.allocUnsafe(256);
  private length = 0;

  private room(bytes: number): void {
    if (this.length + bytes <= this.buffer.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.buffer.length * 2, this.length + bytes));
    this.buffer.copy(grown, 0, 0, this.length);
    this.buffer = grown;
  }

  /** An unsigned whole number below 2^53, seven bits a byte (arithmetic, not bitwise: it may pass 2^32). */
  varint(n: number): void {
    this.room(8);
    while (n >= 128) {
      this.buffer[this.length++] = (n % 128) | 128;
      n = Math.floor(n / 128);
    }
    this.buffer[this.length++] = n;
  }

  signed(n: number): void {
    this.varint(n >= 0 ? n * 2 : -n * 2 - 1);
  }

  value(v: number): void {
    for (let form = 0; form < SCALES.length; form++) {
      const scaled = v * (SCALES[form] as number);
      const whole = Math.round(scaled);
      if (Math.abs(whole) <= MAX_EXACT && whole / (SCALES[form] as number) === v) {
        this.varint((whole >= 0 ? whole * 2 : -whole * 2 - 1) * 4 + form);
        return;
      }
    }
    this.varint(3);
    this.room(8);
    this.buffer.writeDoubleLE(v, this.length);
    this.length += 8;
  }

  finish(): Buffer {
    return Buffer.from(this.buffer.subarray(0, this.length));
  }
}

class Reader {
  private offset = 0;
  constructor(private readonly buffer: Uint8Array) {}

  get done(): boolean {
    return this.offset >= this.buffer.length;
  }

  varint(): number {
    let n = 0;
    let scale = 1;
    for (;;) {
      const byte = this.buffer[this.offset++];
      if (byte === undefined) throw new Error("a packed metric frame ends in the middle of a number");
      n += (byte & 127) * scale;
      if (byte < 128) return n;
      scale *= 128;
    }
  }

  signed(): number {
    const z = this.varint();
    return z % 2 === 0 ? z / 2 : -(z + 1) / 2;
  }

  value(): number {
    const tagged = this.varint();
    const form = tagged % 4;
    if (form === 3) {
      const view = Buffer.from(this.buffer.buffer, this.buffer.byteOffset + this.offset, 8);
      this.offset += 8;
      return view.readDoubleLE(0);
    }
    const z = (tagged - form) / 4;
    const whole = z % 2 === 0 ? z / 2 : -(z + 1) / 2;
    return whole / (SCALES[form] as number);
  }
}

export interface PackedSample {
  seriesId: number;
  time: number;
  value: number;
}

/** Packs samples (any order) against `baseTime`, which the frame row stores as its start. */
export function packSamples(samples: readonly PackedSample[], baseTime: number): Buffer {
  const writer = new Writer();
  for (const s of samples) {
    writer.varint(s.seriesId);
    writer.signed(s.time - baseTime);
    writer.value(s.value);
  }
  return writer.finish();
}

/** Calls `each` for every sample of a frame packed against `baseTime`. */
export function unpackSamples(data: Uint8Array, baseTime: number, each: (seriesId: number, time: number, value: number) => void): void {
  const reader = new Reader(data);
  while (!reader.done) {
    const seriesId = reader.varint();
    const time = baseTime + reader.signed();
    each(seriesId, time, reader.value());
  }
}

/** A series' summary over one bucket. */
export interface Aggregate {
  count: number;
  sum: number;
  min: number;
  max: number;
}

export function packAggregates(aggregates: ReadonlyMap<number, Aggregate>): Buffer {
  const writer = new Writer();
  for (const [seriesId, a] of aggregates) {
    writer.varint(seriesId);
    writer.varint(a.count);
    // A sum of decimals picks up float noise (0.1 + 0.2); twelve digits keep it exact to read
    // and let it pack as a scaled whole number.
    writer.value(Number(a.sum.toPrecision(12)));
    writer.value(a.min);
    writer.value(a.max);
  }
  return writer.finish();
}

export function unpackAggregates(data: Uint8Array, each: (seriesId: number, aggregate: Aggregate) => void): void {
  const reader = new Reader(data);
  while (!reader.done) {
    const seriesId = reader.varint();
    const count = reader.varint();
    each(seriesId, { count, sum: reader.value(), min: reader.value(), max: reader.value() });
  }
}

/** Folds one more value, or one more aggregate, into `into`. */
export function fold(into: Aggregate | undefined, more: Aggregate): Aggregate {
  if (!into) return { ...more };
  into.count += more.count;
  into.sum += more.sum;
  if (more.min < into.min) into.min = more.min;
  if (more.max > into.max) into.max = more.max;
  return into;
}

/** Canonical JSON of labels: keys sorted, so one set of labels is one series. */
export function labelsKey(labels: Record<string, string>): string {
  const keys = Object.keys(labels);
  if (keys.length === 0) return "{}";
  keys.sort();
  return JSON.stringify(Object.fromEntries(keys.map((k) => [k, labels[k]])));
}
