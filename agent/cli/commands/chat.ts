import { EXIT_OK } from "../../../common/errors.js";
import { settingsIn } from "../../config/settings.js";
import { createLocalConsole } from "../../transports/registry.js";
import type { CommandSpec } from "../commandSpec.js";
import { loadAgentUnlessStopped, onSignals } from "../context.js";

/** `chat`: the local console on this terminal, or on piped input. */
export const chatCommand: CommandSpec<Record<never, never>> = {
  name: "chat",
  description: "interactive console on this terminal: /help, /reset, /status, /bye; Ctrl-C cancels an answer",
  settings: [...settingsIn("model", "host", "generation", "instrument"), "color"],
  defaults: { logLevel: "warn" },
  options: {},
  help: "Input may be piped: each line is a question or a command; `stop`, `/bye` or end of input quits.",
  async run(invocation) {
    const context = invocation.setUpConsole();
    const { config, logger, gate } = context;
    const agent = await loadAgentUnlessStopped(context, { showProgress: Boolean(process.stderr.isTTY) });
    if (!agent) return EXIT_OK;
    const console = createLocalConsole(agent, config, logger, [], gate);
    // On a TTY readline turns Ctrl-C into its own event; these catch piped input and SIGTERM.
    const removeSignals = onSignals((signal) => (signal === "SIGINT" ? console.interrupt() : console.quit()));
    try {
      await console.run();
    } finally {
      removeSignals();
      agent.service.queue.close();
      await agent.instrument?.close();
      await agent.runtime.dispose();
    }
    return EXIT_OK;
  },
};
