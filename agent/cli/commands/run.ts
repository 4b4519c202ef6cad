import { EXIT_OK } from "../../../common/errors.js";
import { settingsIn } from "../../config/settings.js";
import { runTransports } from "../../service/agentRunner.js";
import { loadAgent } from "../../service/loadAgent.js";
import { transportFactories } from "../../transports/registry.js";
import type { CommandSpec } from "../commandSpec.js";
import { holdSignals } from "../context.js";

/** `run`: every configured transport until SIGINT/SIGTERM. */
export const runCommand: CommandSpec<Record<never, never>> = {
  name: "run",
  isDefault: true,
  description: "start every configured transport and serve until SIGINT/SIGTERM (default command)",
  settings: [...settingsIn("model", "host", "generation", "mqtt", "broker", "serial", "instrument"), "color"],
  options: {},
  async run(invocation) {
    const { config, logger, gate } = invocation.setUpConsole();
    const held = holdSignals(logger);
    const agent = await loadAgent(config, logger, { showProgress: Boolean(process.stderr.isTTY) }).finally(() => held.release());
    if (held.signal) {
      // Stopped while loading: nothing was served yet, so nothing to say goodbye to.
      agent.service.queue.close();
      await agent.instrument?.close();
      await agent.runtime.dispose();
      return EXIT_OK;
    }
    try {
      return await runTransports({ config, logger, agent, factories: transportFactories(gate) });
    } finally {
      await agent.instrument?.close();
    }
  },
};
