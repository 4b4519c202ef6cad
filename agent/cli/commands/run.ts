import { EXIT_OK } from "../../../common/errors.js";
import { settingsIn } from "../../config/settings.js";
import { runTransports } from "../../service/agentRunner.js";
import { transportFactories } from "../../transports/registry.js";
import type { CommandSpec } from "../commandSpec.js";
import { loadAgentUnlessStopped } from "../context.js";

/** `run`: every configured transport until SIGINT/SIGTERM. */
export const runCommand: CommandSpec<Record<never, never>> = {
  name: "run",
  isDefault: true,
  description: "start every configured transport and serve until SIGINT/SIGTERM (default command)",
  settings: [...settingsIn("model", "host", "generation", "mqtt", "broker", "serial", "instrument"), "color"],
  options: {},
  async run(invocation) {
    const context = invocation.setUpConsole();
    const { config, logger, gate } = context;
    const agent = await loadAgentUnlessStopped(context, { showProgress: Boolean(process.stderr.isTTY) });
    // Stopped while loading: nothing was served yet, so nothing to say goodbye to.
    if (!agent) return EXIT_OK;
    try {
      return await runTransports({ config, logger, agent, factories: transportFactories(gate) });
    } finally {
      await agent.instrument?.close();
    }
  },
};
