export * from "./plugin-list.js";
