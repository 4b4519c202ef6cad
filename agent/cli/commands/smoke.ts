import { EXIT_CHECK_FAILED, EXIT_OK } from "../../../common/errors.js";
import { settingsIn } from "../../config/settings.js";
import { realSmokeProbes, renderSmoke, runSmoke } from "../../diagnostics/smoke.js";
import type { CommandSpec } from "../commandSpec.js";
import { decimal, wholeNumber } from "../commandOption.js";

/** `smoke`: is this host fit to run the agent? Each check passes or fails with its reason. */

interface SmokeOptions {
  smokeTokens: number;
  smokeFloor: number;
  smokeTimeout: number;
}

export const smokeCommand: CommandSpec<SmokeOptions> = {
  name: "smoke",
  description:
    "headless smoke test of this host: probe, model, load, speed, mlock, and the configured MQTT/serial/instrument (--json; exit 3 if a check fails)",
  // The MQTT check logs in to the configured broker; the serial one opens the port; the instrument one asks *IDN?.
  settings: [
    ...settingsIn("model", "host", "broker"),
    "system",
    "mqtt",
    "agentId",
    "mqttPrefix",
    "serial",
    "baud",
    "instrument",
    "scpiAudit",
    "json",
  ],
  defaults: { logLevel: "error", mqtt: "off" },
  options: {
    smokeTokens: { arg: "<n>", help: "tokens to generate", default: "16", parse: wholeNumber(1) },
    smokeFloor: { arg: "<tokens/s>", help: "lowest acceptable generation speed", default: "1", parse: decimal(0) },
    smokeTimeout: { arg: "<ms>", help: "longest wait for each MQTT, serial or instrument check", default: "5000", parse: wholeNumber(1) },
  },
  help: "Example:\n  instrument-agent smoke --model ./models-data/qwen2.5-0.5b-instruct-q8_0.gguf --mqtt mqtt://127.0.0.1 --json",
  async run({ options, setUp }) {
    const { config, logger } = setUp();
    const report = await runSmoke({
      config,
      logger,
      probes: realSmokeProbes(),
      tokens: options.smokeTokens,
      floorTokensPerSecond: options.smokeFloor,
      timeoutMs: options.smokeTimeout,
    });
    process.stdout.write(config.json ? `${JSON.stringify(report, null, 2)}\n` : renderSmoke(report));
    return report.ok ? EXIT_OK : EXIT_CHECK_FAILED;
  },
};
