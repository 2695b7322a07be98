/**
 * Paths through NATs between the hub and its agents, for both ends: the mesh's numbers, the
 * tunnel either side drives, waiting for a handshake, the strategies that get one (the
 * agent's `connect` over `direct`, then the relay; the hub's `punch` and `revive`), and how a path is named.
 */
export { connect, type HubPeer, type PathContext, type PathStrategy } from "./connect.js";
export { CONNECT_TIMEOUT_MS, direct } from "./direct.js";
export { handshakeEpoch, type Nudger, nudge, shookHandsSince, udpNudger, waitForHandshake } from "./handshake.js";
export { type PathFacts, type PathKind, pathKind, RELAY_NEEDED_AFTER_MS } from "./kind.js";
export { COORDINATOR_ADDRESS, DEFAULT_INTERFACE, isMeshAddress, KEEPALIVE_SECONDS, MESH_PREFIX, MESH_PREFIX_LENGTH } from "./mesh.js";
export { type AgentPeer, punch, revive } from "./punch.js";
export {
  AgentRelay,
  HubRelay,
  isRelaySocket,
  Pace,
  RELAY_PACE,
  RELAY_QUEUE,
  type RelayCounters,
  type RelayDial,
  type RelayOptions,
  type RelayState,
} from "./relay.js";
export { PROBE_MS, type Probe, probeDirect, RELAY_HANDSHAKE_MS, RELAY_OPEN_MS, type RelayLink, tcpProbe, throughRelay } from "./relayed.js";
export { NoTunnel, peerOf, type Tunnel } from "./tunnel.js";
