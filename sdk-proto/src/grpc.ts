/**
 * Generated protobuf code for @grpc/grpc-js (Node only). Regenerate with
 * `npm run gen -w @coral-mesh/sdk-proto`; CI fails when the committed code differs.
 */
export * as meshV1 from "./gen/coral/mesh/v1/mesh.js";
export * as sdkV1 from "./gen/coral/sdk/v1/sdk.js";
export * as healthV1 from "./gen/grpc/health/v1/health.js";
export { shutdownGracefully } from "./grpc-server.js";
