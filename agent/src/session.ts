/**
 * The agent's session with the coordinator: registering (retried until it works), heartbeats
 * (after a silence only, or when a plugin's state changed), and, while the coordinator stays
 * silent, looking it up again at discovery with a growing pause. It takes its clock and its
 * calls as arguments, so that this policy is tested in milliseconds.
 */
import type { meshV1 } from "@coral-mesh/sdk-proto/grpc";
import { Backoff } from "./backoff.js";
import { type Clock, sleep, type Timer } from "./clock.js";
import { describeError, removal, StoppedError } from "./errors.js";

/**
 * A heartbeat goes after this many heartbeat intervals without contact (a report answered
 * counts). An agent that reports every interval thus sends none, and wakes for none; the
 * coordinator calls an agent unhealthy only after two intervals of silence.
 */
export const HEARTBEAT_AFTER_SILENCE = 1.25;
/**
 * Looking the coordinator up again: at most once a minute, backing off to every ten minutes
 * while it keeps failing, so a coordinator that is simply down costs discovery little.
 */
export const RELOOKUP_BACKOFF_MS = { min: 60_000, max: 600_000 } as const;
/** After this many heartbeats in a row failed, a new channel and a look at discovery. */
const RELOOKUP_AFTER_FAILURES = 3;
const CALL_TIMEOUT_MS = 5_000;
const REGISTER_RETRY_MS = { min: 500, max: 30_000 } as const;
/**
 * The least time the first register gets through a tunnel that has just shaken hands (else
 * four times what the handshake took). The coordinator answers in tens of milliseconds here;
 * a link slow enough to need more costs one handshake more, nothing else.
 */
const FIRST_REGISTER_MIN_MS = 750;

/** The calls a session makes on the coordinator. */
export interface SessionRpc {
  register(request: meshV1.RegisterRequest, timeoutMs: number): Promise<meshV1.RegisterResponse>;
  heartbeat(request: meshV1.HeartbeatRequest, timeoutMs: number): Promise<Pick<meshV1.HeartbeatResponse, "relayTicket">>;
  /** Replaces a channel that may be stuck (see CoordinatorClient.renew). */
  renew(): void;
}

export interface SessionOptions {
  rpc: SessionRpc;
  clock: Clock;
  log: (line: string) => void;
  /** Aborting it ends a register still retrying (with StoppedError). */
  signal?: AbortSignal;
  /** This run of the agent process, told at register and in each heartbeat (see RegisterRequest.run_id). */
  runId: string;
  /** Who this agent is, as register tells the coordinator. */
  self: Pick<meshV1.RegisterRequest, "agentName" | "agentVersion" | "hostname" | "os" | "arch" | "addresses">;
  pluginStates: () => meshV1.PluginState[];
  /** The interval until the coordinator's register answer says otherwise. */
  heartbeatIntervalMs: number;
  /** The user chose the interval: the coordinator's does not replace it. */
  heartbeatIntervalFixed: boolean;
  /** Shakes hands with the hub anew, from a fresh peer entry. */
  reconnect: () => Promise<unknown>;
  /** The hub's endpoints as discovery has them now (verified against the pinned key). */
  lookup: () => Promise<string[]>;
  /** Tries the endpoints discovery has now, and keeps them for the next start. */
  moveTo: (endpoints: string[]) => Promise<void>;
  /** Heartbeats reach the coordinator again after failing. */
  onBack: () => void;
  /** The coordinator removed this agent (see removal()): the session ends, and nothing is retried. */
  onRemoved: (error: Error) => void;
  /** A relay ticket came with an answer (see RegisterResponse.relay_ticket). */
  onRelayTicket?: (ticket: string) => void;
  /** The relay ticket held runs out soon: a heartbeat goes even between reports, to be given a new one. */
  relayTicketDue?: () => boolean;
}

/** A heartbeat asks for a relay ticket that is due at most this often. */
const TICKET_ASK_EVERY_MS = 3_600_000;

export class Session {
  /** The next heartbeat, due after a silence (see HEARTBEAT_AFTER_SILENCE); armed again at every contact. */
  private heartbeatTimer: Timer | undefined;
  private heartbeatFailures = 0;
  /** When the coordinator last answered a heartbeat or a report (0: not yet registered). */
  private lastContact = 0;
  /** When a heartbeat last went to ask for a relay ticket. */
  private ticketAskedAt = Number.NEGATIVE_INFINITY;
  /** The plugin states the coordinator last heard. */
  private reportedPlugins = "";
  private stopped = false;
  private lastRelookup = 0;
  private readonly relookupBackoff = new Backoff(RELOOKUP_BACKOFF_MS.min, RELOOKUP_BACKOFF_MS.max);
  private intervalMs: number;

  constructor(private readonly options: SessionOptions) {
    this.intervalMs = options.heartbeatIntervalMs;
  }

  get heartbeatIntervalMs(): number {
    return this.intervalMs;
  }

  /**
   * Registers, retrying until it works. After a handshake seen just now (`handshakeMs`), the
   * first attempt gets four times that (FIRST_REGISTER_MIN_MS at least), not the usual 5 s,
   * and a failure shakes hands again at once; without one, discovery may know better (see
   * relookup()).
   */
  async register(handshakeMs: number | undefined): Promise<meshV1.RegisterResponse> {
    const { rpc, clock, log, signal } = this.options;
    const retry = new Backoff(REGISTER_RETRY_MS.min, REGISTER_RETRY_MS.max);
    let timeoutMs =
      handshakeMs === undefined ? CALL_TIMEOUT_MS : Math.min(CALL_TIMEOUT_MS, Math.max(FIRST_REGISTER_MIN_MS, 4 * handshakeMs));
    let afterHandshake = handshakeMs !== undefined;
    for (;;) {
      try {
        const plugins = this.options.pluginStates();
        const response = await rpc.register(
          { ...this.options.self, plugins, sentAtUnixMs: clock.now(), runId: this.options.runId },
          timeoutMs,
        );
        this.reportedPlugins = JSON.stringify(plugins);
        if (response.relayTicket) this.options.onRelayTicket?.(response.relayTicket);
        if (!this.options.heartbeatIntervalFixed) this.intervalMs = response.heartbeatIntervalMs || this.intervalMs;
        this.contact();
        return response;
      } catch (error) {
        if (signal?.aborted) throw new StoppedError("stopped while registering");
        const removed = removal(error);
        if (removed) throw removed;
        rpc.renew();
        const waited = timeoutMs;
        timeoutMs = CALL_TIMEOUT_MS;
        if (afterHandshake) {
          // Shaken hands moments ago, and yet no answer: the hub may have replaced its peer
          // entry for this agent (its punch) just as the handshake landed, which leaves this
          // side a session the hub no longer has, for 15 s. A fresh handshake mends that now.
          afterHandshake = false;
          log(`no answer from the coordinator within ${waited} ms of the handshake; shaking hands again`);
          await this.options.reconnect();
          continue;
        }
        const delay = retry.next();
        log(`registering with the coordinator failed (${describeError(error)}); retrying in ${delay / 1000} s`);
        await this.relookup(); // throws the removal, if discovery's record says so
        await sleep(clock, delay, signal);
        if (signal?.aborted) throw new StoppedError("stopped while registering");
      }
    }
  }

  /** The coordinator answered: the next heartbeat is due only after a silence. */
  contact(): void {
    const now = this.options.clock.now();
    this.lastContact = now;
    this.armHeartbeat(this.intervalMs * HEARTBEAT_AFTER_SILENCE);
    // An agent that reports at every collect sends no heartbeat: one goes when the ticket is due.
    if (this.options.relayTicketDue?.() && now - this.ticketAskedAt >= TICKET_ASK_EVERY_MS) {
      this.ticketAskedAt = now;
      void this.heartbeat(true);
    }
  }

  /** A plugin's state changed: once registered, the coordinator hears of it at once. */
  pluginsChanged(): void {
    if (this.lastContact > 0) void this.heartbeat();
  }

  /**
   * Tells the coordinator the agent is alive and how its plugins are: after a silence (the
   * coordinator counts each report as a heartbeat, so an agent that reports every collect
   * sends none), and at once when a plugin's state changed. Skipped when neither holds.
   */
  async heartbeat(forTicket = false): Promise<void> {
    const { rpc, clock, log } = this.options;
    const plugins = this.options.pluginStates();
    const key = JSON.stringify(plugins);
    if (!forTicket && key === this.reportedPlugins && clock.now() - this.lastContact < this.intervalMs) return;
    clock.clearTimeout(this.heartbeatTimer);
    try {
      const answer = await rpc.heartbeat({ sentAtUnixMs: clock.now(), plugins, runId: this.options.runId }, CALL_TIMEOUT_MS);
      if (answer.relayTicket) this.options.onRelayTicket?.(answer.relayTicket);
      this.contact();
      this.reportedPlugins = key;
      if (this.heartbeatFailures > 0) {
        log("heartbeats reach the coordinator again");
        this.options.onBack();
      }
      this.heartbeatFailures = 0;
      this.relookupBackoff.reset();
    } catch (error) {
      const removed = removal(error);
      if (removed) return this.removed(removed);
      this.heartbeatFailures++;
      this.armHeartbeat(this.intervalMs); // tried again each interval while it fails
      if (this.heartbeatFailures === 1) log(`heartbeat failed: ${describeError(error)}`);
      if (this.heartbeatFailures % RELOOKUP_AFTER_FAILURES === 0) {
        rpc.renew();
        try {
          await this.relookup();
        } catch (failure) {
          const removed = removal(failure);
          if (!removed) throw failure;
          this.removed(removed);
        }
      }
    }
  }

  private removed(error: Error): void {
    if (this.stopped) return;
    this.stop();
    this.options.onRemoved(error);
  }

  /** No heartbeat is sent after this. */
  stop(): void {
    this.stopped = true;
    this.options.clock.clearTimeout(this.heartbeatTimer);
  }

  /**
   * The coordinator may have moved (another address or port): look its record up again at
   * discovery and try the endpoints it has now; not again before the backoff has passed.
   */
  private async relookup(): Promise<void> {
    const now = this.options.clock.now();
    if (now - this.lastRelookup < this.relookupBackoff.peek()) return;
    this.lastRelookup = now;
    this.relookupBackoff.next();
    try {
      const endpoints = await this.options.lookup();
      this.options.log(`no answer from the coordinator; trying the endpoints discovery has now: ${endpoints.join(", ") || "none"}`);
      if (endpoints.length > 0) await this.options.moveTo(endpoints);
    } catch (error) {
      // Removed: nothing to look for any more.
      if (removal(error)) throw error;
      this.options.log(`looking the coordinator up again failed: ${describeError(error)}`);
    }
  }

  private armHeartbeat(delayMs: number): void {
    this.options.clock.clearTimeout(this.heartbeatTimer);
    if (this.stopped) return;
    this.heartbeatTimer = this.options.clock.setTimeout(() => void this.heartbeat(), delayMs);
  }
}
