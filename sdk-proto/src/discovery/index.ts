export * from "./client.js";
export * from "./ed25519.js";
export * from "./limits.js";
export * from "./relay.js";
export * from "./schemas.js";
export * from "./signing.js";
export * from "./ticket.js";
