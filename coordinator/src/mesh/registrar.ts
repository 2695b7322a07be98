/**
 * Keeps the coordinator's record at discovery fresh: registers at start, then refreshes
 * every interval (60 s by default, well inside the record's 15-minute life). Discovery
 * rewrites the record only when something changed or it nears expiry, so a refresh
 * is cheap. After a failure it retries with backoff (5 s doubling to the interval) rather
 * than hammering discovery, and reports its state for `coral status`.
 */
import type { CoordinatorRecord, CoordinatorRegistration, DiscoveryClient, SigningKeyPair } from "@coral-mesh/sdk-proto";

export interface RegistrarState {
  state: "unregistered" | "registered" | "failing";
  lastRegistered: number | null;
  lastError: string | null;
  /** The coordinator's address as discovery saw it: its public NAT mapping. */
  observedAddress: string | null;
}

export interface RegistrarOptions {
  discovery: DiscoveryClient;
  signing: SigningKeyPair;
  /** What to register; read again at every refresh (endpoints may change). */
  registration: () => CoordinatorRegistration;
  intervalMs?: number;
  now?: () => number;
  log?: (line: string) => void;
}

export class DiscoveryRegistrar {
  private current: RegistrarState = { state: "unregistered", lastRegistered: null, lastError: null, observedAddress: null };
  private timer: ReturnType<typeof setTimeout> | undefined;
  private failures = 0;
  private stopped = true;

  constructor(private readonly options: RegistrarOptions) {}

  get state(): RegistrarState {
    return { ...this.current };
  }

  /** One registration; updates the state and rethrows nothing. */
  async registerOnce(): Promise<CoordinatorRecord | undefined> {
    try {
      const record = await this.options.discovery.register(this.options.signing, this.options.registration());
      if (this.current.state !== "registered")
        this.options.log?.(`registered with discovery (seen from ${record.observedAddress ?? "an unknown address"})`);
      this.current = {
        state: "registered",
        lastRegistered: this.options.now?.() ?? Date.now(),
        lastError: null,
        observedAddress: record.observedAddress,
      };
      this.failures = 0;
      return record;
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      if (this.current.lastError !== message) this.options.log?.(`discovery registration failed: ${message}`);
      this.current = { ...this.current, state: "failing", lastError: message };
      this.failures++;
      return undefined;
    }
  }

  /** The wait before the next attempt: the interval when healthy, backoff after failures. */
  nextDelayMs(): number {
    const interval = this.options.intervalMs ?? 60_000;
    return this.failures === 0 ? interval : Math.min(interval, 5_000 * 2 ** (this.failures - 1));
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    const loop = async () => {
      await this.registerOnce();
      if (this.stopped) return;
      this.timer = setTimeout(loop, this.nextDelayMs());
      this.timer.unref();
    };
    void loop();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }
}
