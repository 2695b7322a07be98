import { CoralError } from "@coral-mesh/sdk-proto";

/** Agent.start gave up because its `signal` was aborted; everything it set up is undone. */
export class StoppedError extends Error {
  override readonly name = "StoppedError";
}

/** A failed call in one line: grpc-js's details where it has them. */
export function describeError(error: unknown): string {
  const e = error as { details?: string; message?: string };
  return e.details || e.message || String(error);
}

/** The trailer in which the coordinator's refusals carry their stable code. */
const ERROR_CODE_METADATA = "coral-error-code";

/**
 * The coordinator removed this agent (`coral agents remove`): said by its record at discovery
 * (a CoralError from the lookup) or by a refused call. Anything else is undefined: worth retrying.
 */
export function removal(error: unknown): CoralError | undefined {
  if (error instanceof CoralError) return error.code === "agent_removed" ? error : undefined;
  const metadata = (error as { metadata?: { get(key: string): unknown[] } } | undefined)?.metadata;
  if (metadata?.get(ERROR_CODE_METADATA)[0] !== "agent_removed") return undefined;
  return new CoralError("agent_removed", `The coordinator refuses this agent: ${describeError(error)}`);
}

/** What a removed agent says, as it stops. */
export function removedError(name: string, meshId: string): CoralError {
  return new CoralError(
    "agent_removed",
    `This agent (${name}) was removed from mesh ${meshId} with \`coral agents remove ${name}\`, and its coordinator refuses it. ` +
      "To bring it back, create an invite on the coordinator (`coral token create`) and start the agent with --join INVITE: a new invite replaces this membership.",
  );
}
