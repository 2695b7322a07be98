import { existsSync, realpathSync } from "node:fs";
import { dirname, join } from "node:path";

/** Where the installed package keeps its systemd unit: beside bin/, which `coral` runs from. */
export function unitFilePath(unit: string, argv1 = process.argv[1]): string {
  try {
    const shipped = join(dirname(realpathSync(argv1 ?? "")), "..", "systemd", unit);
    if (existsSync(shipped)) return shipped;
  } catch {}
  return `$(npm root -g)/@coral-mesh/coordinator/systemd/${unit}`;
}

/** The end of `coral coordinator start --help`: how to run it as a systemd service. */
export function coordinatorServiceHelp(unit = unitFilePath("coral-coordinator.service")): string {
  return [
    "",
    "Run it as a service (systemd), from the unit this package ships:",
    `  sudo cp ${unit} /etc/systemd/system/`,
    "  sudo mkdir -p /etc/coral && echo CORAL_DISCOVERY_URL=https://YOUR-DISCOVERY | sudo tee /etc/coral/coordinator.env",
    "  sudo systemctl enable --now coral-coordinator",
    "It runs `coral coordinator start --data-dir /var/lib/coral` with CAP_NET_ADMIN instead of full",
    'root; `coral status --data-dir /var/lib/coral` then finds it. See docs/coordinator.md, "As a service".',
  ].join("\n");
}
