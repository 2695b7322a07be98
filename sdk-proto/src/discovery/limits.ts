/** Limits of the discovery API. Documented in docs/discovery.md; change both together. */
export const discoveryLimits = {
  /** Largest request body accepted, in bytes. */
  maxBodyBytes: 16 * 1024,
  /** Endpoint candidates a coordinator may register. */
  maxEndpoints: 16,
  /** Length of one `host:port` candidate. */
  maxEndpointLength: 261,
  /** Length of a sealed (base64url) join payload or answer. */
  maxSealedLength: 8 * 1024,
  /** Length of the optional coordinator name. */
  maxNameLength: 64,
  /** Removed agents a coordinator record may list (see `removed`). */
  maxRemoved: 64,
  /** Join requests returned by one `GET .../joins` page. */
  joinPageSize: 100,
  /** Pending (unanswered, unexpired) join requests a mesh may have at once. */
  maxPendingJoinsPerMesh: 256,
  /** Pending join requests one join ticket (one token) may have at once. */
  maxPendingJoinsPerTicket: 4,
  /** How far a signed request's timestamp may be from the Worker's clock, in ms. */
  signatureWindowMs: 120_000,
} as const;

/** Lifetimes of what discovery stores, in seconds. */
export const discoveryTtls = {
  /** A coordinator record lives this long after it was last written. */
  coordinatorRecordSeconds: 15 * 60,
  /** An unchanged refresh rewrites the record only when less than this remains. */
  coordinatorRewriteBelowSeconds: 5 * 60,
  /** A join request waits this long for its answer. */
  joinRequestSeconds: 10 * 60,
  /** An answer stays readable this long after it was posted. */
  joinAnswerSeconds: 10 * 60,
} as const;
