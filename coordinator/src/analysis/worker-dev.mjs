// The analysis worker from source (tests, `npm start`): TypeScript through tsx, then the worker itself.
import { workerData } from "node:worker_threads";
import { register } from "tsx/esm/api";

register();
await import(workerData.entry);
