/**
 * bad-deploy: a deploy (a new version through the SDK; a new executable or script, passively)
 * followed within its audit window by crashes, failing health or failing checks that the
 * version before it did not show. Names both versions and recommends the rollback.
 */
import type { Conclusion, Deploy, InstanceDetector } from "../model.js";
import { formatBytes, trend } from "../stats.js";
import { ago, confidence, crashes, evidence, sdkInstance, where } from "./signals.js";

export const badDeploy: InstanceDetector = {
  kind: "bad-deploy",
  scope: "instance",
  defaults: {
    auditMs: 900_000,
    minCrashes: 2,
    lookbackMs: 3_600_000,
    restartGapMs: 15_000,
    ongoingMs: 300_000,
    healthForMs: 10_000,
    memorySpanMs: 120_000,
    memoryGrowthBytes: 64 * 1024 * 1024,
  },
  detect({ now, thresholds }, service, instances) {
    const t = thresholds(service.name);
    const out: Conclusion[] = [];
    for (const instance of instances) {
      // The instance's latest deploy is the one on trial; the SDK's word (versions) wins over the
      // passive collector's (a new file) for the same deploy.
      let deploy: Deploy | undefined;
      for (const d of service.deploys) {
        if (d.agent !== instance.agent || d.key !== instance.key) continue;
        if (deploy && deploy.source === "sdk" && d.source !== "sdk" && d.time - deploy.time < 120_000) continue;
        deploy = d;
      }
      if (!deploy || now - deploy.time > (t.auditMs as number) + (t.ongoingMs as number)) continue;
      const gap = t.restartGapMs as number;
      // A restart that came with the deploy is the deploy itself, not a symptom.
      const after = crashes(instance, deploy.time + 1, gap).filter((c) => c.time > deploy.time + 1_000);
      const beforeFrom = Math.max(deploy.time - (t.lookbackMs as number), instance.firstSeen);
      const before = crashes(instance, beforeFrom, gap).filter((c) => c.time < deploy.time - 1_000);
      const span = (from: number, to: number) => Math.max(60_000, to - from);
      const rateAfter = after.length / span(deploy.time, now);
      const rateBefore = before.length / span(beforeFrom, deploy.time);
      const symptoms: string[] = [];
      const evidenceEvents = [...after.flatMap((c) => c.events)];
      const inAudit = (time: number) => time >= deploy.time && time <= deploy.time + (t.auditMs as number);
      if (after.length >= (t.minCrashes as number) && rateAfter > 3 * rateBefore && inAudit(after[0]?.time ?? 0)) {
        symptoms.push(`${after.length} crashes since`);
      }
      const unhealthy = instance.health === "not_serving" || instance.health === "unreachable";
      if (
        unhealthy &&
        instance.healthSince !== null &&
        inAudit(instance.healthSince) &&
        now - instance.healthSince >= (t.healthForMs as number)
      ) {
        symptoms.push(`health ${instance.health} since ${ago(now, instance.healthSince)}`);
      }
      // Memory that grows since the deploy as it did not before it.
      const rss = instance.metrics.get("service.memory.rss_bytes");
      const grownAfter = rss ? trend(rss.points(deploy.time)) : undefined;
      const grownBefore = rss ? trend(rss.points(beforeFrom).filter((p) => p.time < deploy.time)) : undefined;
      const afterSpan = rss ? now - Math.max(deploy.time, rss.points(deploy.time)[0]?.time ?? now) : 0;
      if (
        grownAfter &&
        afterSpan >= (t.memorySpanMs as number) &&
        grownAfter.r2 >= 0.8 &&
        grownAfter.last - grownAfter.first >= (t.memoryGrowthBytes as number) &&
        grownAfter.slope > 3 * Math.max(0, grownBefore?.slope ?? 0) &&
        // still growing, not a warm-up that levelled off
        (trend(rss?.points(now - afterSpan / 3) ?? [])?.slope ?? 0) >= 0.5 * grownAfter.slope
      ) {
        symptoms.push(
          `memory grows ${formatBytes(grownAfter.slope * 60_000)}/min since (${formatBytes(grownAfter.first)} → ${formatBytes(grownAfter.last)})`,
        );
      }
      const failing = [...instance.checks.values()].filter((c) => !c.passing && inAudit(c.since));
      if (failing.length) symptoms.push(`check ${failing.map((c) => c.name).join(", ")} failing`);
      if (symptoms.length === 0) continue;
      // Over once it stopped showing: no crash lately and health and checks fine.
      const lastCrash = after[after.length - 1]?.time ?? Number.NEGATIVE_INFINITY;
      const growing = symptoms.some((s) => s.startsWith("memory grows"));
      if (now - lastCrash > (t.ongoingMs as number) && !unhealthy && failing.length === 0 && !growing) continue;

      const sdk = deploy.source === "sdk";
      const fromVersion = deploy.from ?? "the previous version";
      const toVersion = deploy.to ?? "the new version";
      const ranFor = sdk && deploy.from ? service.versions.get(deploy.from) : undefined;
      const cleanFor = ranFor ? Math.max(0, deploy.time - ranFor.firstSeen) : Math.max(0, deploy.time - instance.firstSeen);
      const clean =
        before.length === 0
          ? `ran clean for ${ago(deploy.time, deploy.time - cleanFor).replace(" ago", "")}`
          : `crashed ${before.length} times in the hour before`;
      const what = sdk ? `its deploy of ${toVersion}` : `a new build of ${toVersion}`;
      out.push({
        kind: "bad-deploy",
        identity: `${deploy.agent}\u0000${deploy.key}`,
        severity: "critical",
        service: service.name,
        agent: deploy.agent,
        summary: `${where(instance)} ${symptoms.join(", ")} — after ${what} ${ago(now, deploy.time)}; ${sdk ? fromVersion : "the one before"} ${clean}`,
        confidence: confidence(0.6, sdk || sdkInstance(instance), Math.min(0.06, (symptoms.length - 1) * 0.03)),
        evidence: evidence({
          events: [
            {
              id: deploy.eventId,
              kind: "service.deployed",
              time: deploy.time,
              agent: deploy.agent,
              subject: deploy.key,
              attributes: {},
              source: deploy.source,
            },
            ...evidenceEvents,
          ],
          checks: failing.map((c) => ({ name: c.name, passing: c.passing, since: c.since })),
          notes: [
            `deployed ${ago(now, deploy.time)}: ${deploy.from ?? "?"} → ${deploy.to ?? "?"}`,
            ...symptoms.map((s) => `after it: ${s}`),
            `before it: ${before.length} crashes in ${Math.round(span(beforeFrom, deploy.time) / 60_000)} min`,
          ],
        }),
        recommendation: sdk
          ? {
              action: "rollback",
              step: `roll ${service.name} on ${deploy.agent} back to ${fromVersion} (${toVersion} was deployed ${ago(now, deploy.time)})`,
              target: { ...(deploy.from ? { version: deploy.from } : {}), agent: deploy.agent },
            }
          : {
              action: "rollback",
              step: `roll ${service.name} on ${deploy.agent} back to the build of ${toVersion} it ran before ${ago(now, deploy.time)}`,
              target: { ...(deploy.to ? { executable: deploy.to } : {}), agent: deploy.agent },
            },
        since: deploy.time,
      });
    }
    return out;
  },
};
