export { type InterfaceStatus, type PeerStatus, parseDump } from "./dump.js";
export {
  checkInterfaceFree,
  checkWireGuard,
  type InterfaceOptions,
  type PeerConfig,
  type WireGuardEvent,
  WireGuardInterface,
} from "./interface.js";
export { generateKeyPair, publicKeyOf, type WireGuardKeyPair } from "./keys.js";
