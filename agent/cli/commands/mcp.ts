import { EXIT_OK } from "../../../common/errors.js";
import { settingsIn } from "../../config/settings.js";
import { DEMO_NOTICE } from "../../console/consoleText.js";
import type { LoadedAgent } from "../../service/loadAgent.js";
import type { CommandSpec } from "../commandSpec.js";
import { loadAgentUnlessStopped, onSignals } from "../context.js";

/** `mcp`: an MCP server on stdin/stdout (README, "MCP"); stdout carries the protocol and nothing else. */
export const mcpCommand: CommandSpec<Record<never, never>> = {
  name: "mcp",
  description: "serve MCP on stdin/stdout (tools ask, instrument_settings, scpi_query, read_trace) until stdin closes",
  settings: settingsIn("model", "host", "generation", "instrument"),
  defaults: { logLevel: "warn" },
  options: {},
  help: 'Logs go to stderr (or --log-file), never to stdout. Example for an MCP client:\n  {"command": "instrument-agent", "args": ["mcp", "--model", "qwen2.5-1.5b-instruct-q4_k_m", "--instrument", "tcp://192.168.1.20:5025"]}',
  async run({ setUp }) {
    const context = setUp();
    const { logger } = context;
    // No progress bar: it would be drawn on stderr, which an MCP client may show as errors.
    const agent = await loadAgentUnlessStopped(context);
    if (!agent) return EXIT_OK;
    if (agent.runtime.info.isDemo) process.stderr.write(`${DEMO_NOTICE}\n`);
    const { serveMcpOnStdio } = await import("../../transports/mcp/mcpStdio.js");
    const controller = new AbortController();
    const removeSignals = onSignals(() => controller.abort());
    try {
      await serveMcpOnStdio(agent, logger, { signal: controller.signal });
      return EXIT_OK;
    } finally {
      removeSignals();
      await closeAgent(agent);
    }
  },
};

/** The shutdown order of `ask` and `chat`: the queue, then the instrument link, then the model. */
async function closeAgent(agent: LoadedAgent): Promise<void> {
  agent.service.queue.close();
  await agent.instrument?.close();
  await agent.runtime.dispose();
}
