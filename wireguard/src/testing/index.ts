export * from "./lab.js";
export * from "./nat-lab.js";
