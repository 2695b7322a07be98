/**
 * The one registry of Coral's error codes. Every component answers errors as
 * `{ code, message, docs, requestId }` with a code from this table.
 *
 * Rules: keep the table sorted; a code, once shipped, keeps its meaning and is
 * never reused for something else (retire it instead); every code has a section
 * in docs/errors.md (a test holds the two in step).
 */
export const errorRegistry = {
  admin_disabled: { status: 404, summary: "The admin API is off because no ADMIN_TOKEN secret is set." },
  admin_unauthorized: { status: 401, summary: "The admin bearer token is missing or wrong." },
  agent_name_taken: { status: 409, summary: "Another agent of the mesh already has this name." },
  agent_not_found: { status: 404, summary: "No agent of the mesh has this name." },
  agent_removed: { status: 403, summary: "This agent was removed from the mesh with `coral agents remove`; it must join again." },
  agent_running: { status: 409, summary: "An agent is already running with this data directory." },
  answer_exists: { status: 409, summary: "This join request already has a different answer." },
  answer_pending: { status: 404, summary: "The coordinator has not answered this join request yet." },
  api_token_required: { status: 400, summary: "The coordinator API may listen beyond loopback only with a token." },
  api_token_short: { status: 400, summary: "The coordinator API's token is shorter than 32 characters." },
  api_unauthorized: { status: 401, summary: "The coordinator API's token is missing or wrong." },
  body_too_large: { status: 413, summary: "The request body is larger than the limit." },
  config_invalid: { status: 400, summary: "A config file or a command-line option has an invalid value." },
  conversation_not_found: {
    status: 404,
    summary: "No conversation of the last hour has this id (`coral ask --continue` starts a new one).",
  },
  coordinator_running: { status: 409, summary: "A coordinator is already running with this data directory." },
  coordinator_unreachable: { status: 503, summary: "The CLI cannot find or reach the coordinator's API." },
  dashboard_not_built: { status: 503, summary: "This coordinator was built without its dashboard; the API still works." },
  discovery_bad_response: { status: 502, summary: "Discovery answered with something that is not the Coral discovery API." },
  discovery_unreachable: { status: 503, summary: "Discovery could not be reached (network, DNS or timeout)." },
  duplicate_json_key: { status: 400, summary: "A JSON body has the same key twice in one object." },
  export_incomplete: { status: 502, summary: "The export ended before its last part: the dump is incomplete." },
  finding_not_found: { status: 404, summary: "No finding has this id (never opened, or removed by retention)." },
  host_not_allowed: { status: 403, summary: "The token-less API answers only requests addressed to loopback." },
  interface_in_use: { status: 409, summary: "A network interface of this name already exists, and is not this one's to take over." },
  internal_error: { status: 500, summary: "An unexpected failure; the request may be retried." },
  invalid_body: { status: 400, summary: "The JSON body does not match the schema of this route." },
  invalid_cursor: { status: 400, summary: "The `after` cursor is not one this service issued." },
  invalid_join_id: { status: 400, summary: "The join id in the path is not well formed." },
  invalid_mesh_id: { status: 400, summary: "The mesh id in the path is not well formed." },
  invalid_query: { status: 400, summary: "A query parameter of the request is invalid." },
  invalid_tool_input: {
    status: 400,
    summary: "A tool over the store was called by a name it does not have, or with input it does not take.",
  },
  invite_damaged: { status: 400, summary: "The invite's checksum does not match: it was cut or altered in copying." },
  invite_invalid: { status: 400, summary: "The invite decodes but its contents are invalid or inconsistent." },
  invite_malformed: { status: 400, summary: "The text is not a Coral invite at all." },
  invite_version: { status: 400, summary: "The invite is of a version this Coral does not read." },
  join_not_found: { status: 404, summary: "No live join request has this id (never made, or expired)." },
  join_queue_full: { status: 429, summary: "The mesh has too many pending join requests." },
  join_ticket_busy: { status: 429, summary: "The invite's token already has as many pending join requests as a ticket may." },
  join_ticket_expired: { status: 403, summary: "The invite's join ticket has passed its expiry, with its token." },
  join_ticket_invalid: { status: 403, summary: "The join ticket was not signed by this mesh's coordinator." },
  join_ticket_missing: { status: 401, summary: "The join request carries no join ticket (an invite made before tickets)." },
  key_invalid: { status: 500, summary: "A key file in the data directory is damaged." },
  key_permissions: { status: 500, summary: "A key file is readable by other users, so it is refused." },
  malformed_json: { status: 400, summary: "The request body is not valid JSON." },
  mesh_full: { status: 409, summary: "No free address is left in the mesh's 100.64.0.0/10." },
  mesh_key_mismatch: { status: 403, summary: "The signing key does not match the mesh id it claims." },
  mesh_not_found: { status: 404, summary: "No live coordinator record exists for this mesh id." },
  method_not_allowed: { status: 405, summary: "The route exists but not with this HTTP method." },
  model_failed: { status: 502, summary: "The model provider answered with an error, or could not be reached." },
  model_overloaded: { status: 503, summary: "The model provider is overloaded (HTTP 529 or 503); try again shortly." },
  model_rate_limited: { status: 429, summary: "The model provider rate-limited the request (HTTP 429)." },
  model_stream_cut: { status: 502, summary: "The model's streamed answer stopped before its end, or stalled." },
  model_unauthorized: { status: 502, summary: "The model provider refused the API key (HTTP 401 or 403)." },
  model_unknown: { status: 400, summary: "The model string names no provider Coral knows (`anthropic:MODEL` or `openai:MODEL`)." },
  not_found: { status: 404, summary: "No such route." },
  plugin_dependency_missing: { status: 500, summary: "A plugin loads, but a package it imports is not installed." },
  port_in_use: { status: 409, summary: "The UDP port WireGuard should listen on is held by another process." },
  rate_limited: { status: 429, summary: "Too many requests from this address or for this mesh." },
  record_unverified: { status: 502, summary: "A coordinator record from discovery failed verification against the pinned key." },
  relay_busy: { status: 429, summary: "The mesh's relay room has as many agents connected as a mesh may." },
  relay_role_invalid: { status: 400, summary: "A relay connection names no role, or one other than hub and agent." },
  relay_ticket_expired: { status: 403, summary: "The agent's relay ticket has passed its expiry." },
  relay_ticket_invalid: { status: 403, summary: "The relay ticket was not signed by this mesh's coordinator, or is malformed." },
  relay_ticket_missing: { status: 401, summary: "An agent's relay connection carries no relay ticket." },
  relay_upgrade_required: { status: 426, summary: "The relay answers only WebSocket connections." },
  sealed_invalid: { status: 400, summary: "A sealed join payload or answer does not open, or is not what it should be." },
  service_not_found: { status: 404, summary: "No service of the mesh has this name." },
  signature_invalid: { status: 401, summary: "The request signature does not verify." },
  signature_malformed: { status: 401, summary: "A signature header is present but not well formed." },
  signature_missing: { status: 401, summary: "The route needs a signed request and a signature header is absent." },
  signature_replayed: { status: 401, summary: "This signed request was already accepted once." },
  signature_stale: { status: 401, summary: "The request timestamp is too far from the server's clock." },
  signing_key_weak: { status: 401, summary: "The Ed25519 public key is of small order or not canonical, so it is refused." },
  token_expired: { status: 403, summary: "The join token has passed its expiry." },
  token_revoked: { status: 403, summary: "The join token was revoked with `coral token revoke`." },
  token_unknown: { status: 403, summary: "The join token is not one this coordinator issued (or its secret is wrong)." },
  token_used_up: { status: 403, summary: "The join token has been used as many times as it allows." },
  unsupported_media_type: { status: 415, summary: "The request body must be JSON (`content-type: application/json`)." },
  usage_invalid: { status: 400, summary: "The command line does not parse: an unknown command or option, or a missing value." },
  wireguard_failed: { status: 500, summary: "A WireGuard or ip command failed; the message has its output." },
  wireguard_missing: { status: 503, summary: "WireGuard tools (wg, ip, wireguard-go) or the kernel module are not installed." },
  wireguard_permission: { status: 403, summary: "Configuring WireGuard needs root or CAP_NET_ADMIN." },
} as const satisfies Record<string, { status: number; summary: string }>;

export type ErrorCode = keyof typeof errorRegistry;

export const errorCodes = Object.keys(errorRegistry) as ErrorCode[];

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === "string" && Object.hasOwn(errorRegistry, value);
}

export function statusOf(code: ErrorCode): number {
  return errorRegistry[code].status;
}

/** Where a person reads more about a code: the anchor of its section in docs/errors.md. */
export function docsFor(code: ErrorCode): string {
  return `docs/errors.md#${code}`;
}

/** The wire shape of every error Coral answers. */
export interface ErrorBody {
  code: ErrorCode;
  message: string;
  docs: string;
  requestId: string;
  /** Machine-readable specifics, e.g. which field failed validation. */
  details?: unknown;
}

/**
 * An error that is meant to reach a user: a stable code plus a message that says
 * what happened and what to do. Anything else thrown is a bug (`internal_error`).
 */
export class CoralError extends Error {
  override readonly name = "CoralError";
  readonly code: ErrorCode;
  readonly details: unknown;
  /** Extra response headers, e.g. `retry-after` with `rate_limited`. */
  readonly headers: Record<string, string>;

  constructor(code: ErrorCode, message: string, options: { details?: unknown; headers?: Record<string, string>; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.code = code;
    this.details = options.details;
    this.headers = options.headers ?? {};
  }

  get status(): number {
    return statusOf(this.code);
  }

  toBody(requestId: string): ErrorBody {
    const body: ErrorBody = { code: this.code, message: this.message, docs: docsFor(this.code), requestId };
    if (this.details !== undefined) body.details = this.details;
    return body;
  }
}
