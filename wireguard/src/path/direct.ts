/**
 * The `direct` strategy: the agent tries the hub's endpoint candidates in turn, while the
 * hub sends toward the agent (see punch.ts), which is what opens a filtering NAT in front of
 * the agent. Between two cone NATs the two meet in the middle; a symmetric NAT facing a NATed
 * hub defeats it. It says that no handshake came; the agent, which knows more, says why.
 */
import type { PathContext, PathStrategy } from "./connect.js";
import { handshakeEpoch, udpNudger, waitForHandshake } from "./handshake.js";
import { KEEPALIVE_SECONDS } from "./mesh.js";
import { peerOf } from "./tunnel.js";

/** How long the agent tries to reach the hub before it reports that it cannot. */
export const CONNECT_TIMEOUT_MS = 10_000;
/** How long one endpoint gets for a handshake; rounds repeat until CONNECT_TIMEOUT_MS. */
const ATTEMPT_MS = 250;
/** How long the hub's packets may arrive without a handshake before this side starts one. */
const STALLED_MS = 1_000;
/** A tunnel that shook hands this recently is taken as working. */
const RECENT_HANDSHAKE_MS = 5_000;

/**
 * Each endpoint in turn gets a fresh peer entry (so that WireGuard sends its handshake at once
 * rather than after its 5 s retry timer) and a quarter of a second (a second in later rounds)
 * to complete a handshake, round after round, for up to CONNECT_TIMEOUT_MS. If nothing
 * answers, it says plainly why that may be, and WireGuard keeps trying the best guess in the
 * background.
 */
export const direct: PathStrategy = {
  name: "direct",
  async reach(hub, context: PathContext) {
    const { tunnel, log, signal } = context;
    const { publicKey, endpoints } = hub;
    const nudger = (context.nudger ?? udpNudger)();
    const started = Date.now();
    try {
      if (endpoints.length === 0) {
        log("the coordinator has no endpoint to try; WireGuard waits for it to reach this agent");
        return undefined;
      }
      log(`connecting to the coordinator at ${endpoints.join(" or ")}`);
      // A tunnel that shook hands moments ago works (after a restart of the coordinator, its
      // hub may well have shaken hands first): leave it be.
      const existing = await peerOf(tunnel, publicKey);
      if (!context.fresh && existing?.latestHandshake && Date.now() - existing.latestHandshake < RECENT_HANDSHAKE_MS) {
        log(`tunnel up through ${existing.endpoint ?? endpoints[0]}`);
        return existing.endpoint ?? undefined;
      }
      // A fresh peer: no session from before, nothing received yet.
      if (existing) await tunnel.removePeer(publicKey);
      const since = handshakeEpoch(Date.now());
      let fresh = true;
      /** Where the hub's packets came from, once they have. */
      let learned: string | undefined;
      /** Since when they arrive at the peer entry now set, with no handshake yet. */
      let arrivingSince: number | undefined;
      let saidStalled = false;
      /** Something came from the hub, at any of the entries set. */
      let heard = false;
      const quiet = () => context.quietMs !== undefined && !heard && Date.now() - started >= context.quietMs;
      // (An abort ends the rounds too: breaking out of one alone would spin through the rest without waiting.)
      for (let round = 0; !signal?.aborted && !quiet() && Date.now() - started < CONNECT_TIMEOUT_MS; round++) {
        for (const endpoint of endpoints) {
          if (signal?.aborted || quiet() || Date.now() - started >= CONNECT_TIMEOUT_MS) break;
          // (At the first attempt there is no peer entry yet.)
          const current = fresh ? undefined : await peerOf(tunnel, publicKey);
          // Once the hub's packets arrive (it sends toward an agent that just joined), the
          // peer is left alone to finish that handshake, at the address they came from; but
          // for STALLED_MS at most. A handshake message lost either way would otherwise wait
          // for WireGuard's retry, 5 s later: this side starts one instead, toward there.
          const arriving = (current?.rxBytes ?? 0) > 0;
          heard ||= arriving;
          if (arriving) {
            learned = current?.endpoint ?? learned;
            arrivingSince ??= Date.now();
          }
          const stalled = arriving && Date.now() - (arrivingSince as number) >= STALLED_MS;
          if (!arriving || stalled) {
            if (stalled && !saidStalled) {
              log(`the coordinator's packets arrive from ${learned ?? endpoint} but no handshake came of them; starting one from here`);
              saidStalled = true;
            }
            if (!fresh) await tunnel.removePeer(publicKey);
            await tunnel.setPeer({
              publicKey,
              endpoint: learned ?? endpoint,
              allowedIps: hub.allowedIps,
              persistentKeepalive: KEEPALIVE_SECONDS,
            });
            arrivingSince = undefined;
          }
          fresh = false;
          // Slower rounds after the first few, for paths with a long round trip.
          const attemptStarted = Date.now();
          const peer = await waitForHandshake({
            tunnel,
            publicKey,
            since,
            until: Math.min(started + CONNECT_TIMEOUT_MS, attemptStarted + Math.min(4 * ATTEMPT_MS, ATTEMPT_MS * 2 ** round)),
            meshIp: hub.meshIp,
            nudger,
            // Packets arrive but no handshake: on to the next attempt, which starts one.
            giveUp: (peer) => {
              if ((peer?.rxBytes ?? 0) === 0) return quiet();
              heard = true;
              arrivingSince ??= Date.now();
              return Date.now() - arrivingSince >= STALLED_MS;
            },
          });
          if (peer) {
            // Where the hub's packets came from: what it sent toward this agent may have got
            // through while another candidate was being tried.
            const through = peer.endpoint ?? endpoint;
            log(`tunnel up through ${through} in ${Date.now() - started} ms`);
            return through;
          }
        }
      }
      if (signal?.aborted) return undefined;
      if (quiet()) {
        log(`nothing came from the coordinator through ${endpoints.join(", ")} in ${Date.now() - started} ms`);
        return undefined;
      }
      // Why is for the caller to say: a stopped coordinator and a pair of NATs look alike from here.
      log(`no handshake with the coordinator through ${endpoints.join(", ")} in ${CONNECT_TIMEOUT_MS / 1000} s`);
      return undefined;
    } finally {
      nudger.close();
    }
  },
};
