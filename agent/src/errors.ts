/** Agent.start gave up because its `signal` was aborted; everything it set up is undone. */
export class StoppedError extends Error {
  override readonly name = "StoppedError";
}

/** A failed call in one line: grpc-js's details where it has them. */
export function describeError(error: unknown): string {
  const e = error as { details?: string; message?: string };
  return e.details || e.message || String(error);
}
