/**
 * One EventSource on `GET /v1/stream` for the whole page. Pages say which message types
 * concern them and fetch again when one comes; `reset` (messages dropped) and a reconnect
 * after a break concern everyone, since whatever happened meanwhile was not seen.
 * EventSource reconnects by itself (the server sets `retry`).
 */
import type { StreamMessage } from "@coral-mesh/sdk-proto";
import { useEffect, useRef, useState } from "preact/hooks";

export type LiveMessage = StreamMessage | { type: "reset" };
type Listener = (message: LiveMessage) => void;

const listeners = new Set<Listener>();
const stateListeners = new Set<(connected: boolean) => void>();
let source: EventSource | undefined;
let connected = false;
let broken = false;

const TYPES = ["batch", "event", "health", "service", "finding"] as const;

function setConnected(value: boolean) {
  connected = value;
  for (const l of stateListeners) l(value);
}

function dispatch(message: LiveMessage) {
  for (const l of listeners) l(message);
}

function open() {
  if (source) return;
  source = new EventSource("/v1/stream");
  source.addEventListener("hello", () => {
    setConnected(true);
    if (broken) dispatch({ type: "reset" });
    broken = false;
  });
  source.addEventListener("reset", () => dispatch({ type: "reset" }));
  for (const type of TYPES) {
    source.addEventListener(type, (event) => {
      try {
        dispatch(JSON.parse((event as MessageEvent<string>).data) as StreamMessage);
      } catch {
        dispatch({ type: "reset" });
      }
    });
  }
  source.onerror = () => {
    broken = true;
    setConnected(false);
  };
}

export function subscribe(listener: Listener): () => void {
  open();
  listeners.add(listener);
  return () => listeners.delete(listener);
}

export function useConnected(): boolean {
  const [value, set] = useState(connected);
  useEffect(() => {
    open();
    stateListeners.add(set);
    return () => stateListeners.delete(set);
  }, []);
  return value;
}

/**
 * Fetches with `load`, and again whenever a live message passes `concerns` (or on reset).
 * At most one fetch runs at a time; messages during it cause one more after it, so a burst of
 * changes costs two fetches, not one each.
 */
export function useLive<T>(
  load: () => Promise<T>,
  deps: unknown[],
  concerns: (message: StreamMessage) => boolean,
): { data: T | undefined; error: Error | undefined; reload: () => void } {
  const [data, setData] = useState<T>();
  const [error, setError] = useState<Error>();
  const state = useRef({ running: false, again: false, alive: true, load });
  state.current.load = load;

  const run = () => {
    const s = state.current;
    if (s.running) {
      s.again = true;
      return;
    }
    s.running = true;
    s.again = false;
    s.load()
      .then(
        (value) => {
          if (!s.alive) return;
          setData(value);
          setError(undefined);
        },
        (e: unknown) => s.alive && setError(e instanceof Error ? e : new Error(String(e))),
      )
      .finally(() => {
        s.running = false;
        if (s.again && s.alive) run();
      });
  };

  useEffect(() => {
    state.current.alive = true;
    run();
    const stop = subscribe((message) => {
      if (message.type === "reset" || concerns(message)) run();
    });
    return () => {
      state.current.alive = false;
      stop();
    };
  }, deps);
  return { data, error, reload: run };
}

/**
 * A gate for frequent, low-stakes messages (every agent's report batches): passes at most one
 * per `ms`. A change the user is waiting to see (health, a finding) should not go through it.
 */
export function every(ms: number, now: () => number = Date.now): () => boolean {
  let last = Number.NEGATIVE_INFINITY;
  return () => {
    const at = now();
    if (at - last < ms) return false;
    last = at;
    return true;
  };
}
