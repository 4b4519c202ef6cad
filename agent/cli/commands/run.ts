import { settingsIn } from "../../config/settings.js";
import { runTransports } from "../../service/agentRunner.js";
import { loadAgent } from "../../service/loadAgent.js";
import { transportFactories } from "../../transports/registry.js";
import type { CommandSpec } from "../commandSpec.js";

/** `run`: every configured transport until SIGINT/SIGTERM. */
export const runCommand: CommandSpec<Record<never, never>> = {
  name: "run",
  isDefault: true,
  description: "start every configured transport and serve until SIGINT/SIGTERM (default command)",
  settings: [...settingsIn("model", "host", "generation", "mqtt", "broker", "serial", "instrument"), "color"],
  options: {},
  async run(invocation) {
    const { config, logger, gate } = invocation.setUpConsole();
    const agent = await loadAgent(config, logger, { showProgress: Boolean(process.stderr.isTTY) });
    try {
      return await runTransports({ config, logger, agent, factories: transportFactories(gate) });
    } finally {
      await agent.instrument?.close();
    }
  },
};
