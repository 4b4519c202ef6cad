import { settingsIn } from "../../config/settings.js";
import { serveAgent } from "../../service/agentRunner.js";
import type { LoadedAgent } from "../../service/loadAgent.js";
import { earlyTransportFactories, transportFactories } from "../../transports/registry.js";
import type { CommandSpec } from "../commandSpec.js";
import { loadAgentUnlessStopped } from "../context.js";

/** `run`: every configured transport until SIGINT/SIGTERM. */
export const runCommand: CommandSpec<Record<never, never>> = {
  name: "run",
  isDefault: true,
  description: "start every configured transport and serve until SIGINT/SIGTERM (default command)",
  settings: [...settingsIn("model", "host", "generation", "mqtt", "broker", "serial", "instrument", "http"), "color"],
  options: {},
  async run(invocation) {
    const context = invocation.setUpConsole();
    const { config, logger, gate } = context;
    let agent: LoadedAgent | undefined;
    try {
      // The HTTP API listens first (its /health says "loading"); stopped while loading, serveAgent
      // stops it and nothing else was served yet.
      return await serveAgent({
        config,
        logger,
        early: earlyTransportFactories(),
        factories: transportFactories(gate),
        load: async () => (agent = await loadAgentUnlessStopped(context, { showProgress: Boolean(process.stderr.isTTY) })),
      });
    } finally {
      await agent?.instrument?.close();
    }
  },
};
