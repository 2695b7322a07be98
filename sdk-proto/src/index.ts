export * from "./config.js";
export * from "./discovery/index.js";
export * from "./encoding.js";
export * from "./errors/index.js";
export * from "./invite.js";
export * from "./join.js";
export * from "./json.js";
export * from "./model.js";
