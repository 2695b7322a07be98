import { existsSync, realpathSync } from "node:fs";
import { dirname, join } from "node:path";

/** Where the installed package keeps its systemd unit: beside bin/, which `coral-agent` runs from. */
export function unitFilePath(unit: string, argv1 = process.argv[1]): string {
  try {
    const shipped = join(dirname(realpathSync(argv1 ?? "")), "..", "systemd", unit);
    if (existsSync(shipped)) return shipped;
  } catch {}
  return `$(npm root -g)/@coral-mesh/agent/systemd/${unit}`;
}

/** The end of `coral-agent --help`: how to run it as a systemd service. */
export function agentServiceHelp(unit = unitFilePath("coral-agent.service")): string {
  return [
    "",
    "Run it as a service (systemd), from the unit this package ships:",
    "  sudo coral-agent --join INVITE --data-dir /var/lib/coral-agent   # once; Ctrl-C when it says it runs",
    `  sudo cp ${unit} /etc/systemd/system/`,
    "  sudo systemctl enable --now coral-agent",
    "It runs `coral-agent --data-dir /var/lib/coral-agent --plugins=passive,sdk` with CAP_NET_ADMIN and the",
    'capabilities the passive collector needs instead of full root. See docs/agent.md, "As a service".',
  ].join("\n");
}
