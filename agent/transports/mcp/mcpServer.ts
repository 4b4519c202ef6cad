import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { CallToolResult, ReadResourceResult } from "@modelcontextprotocol/sdk/types.js";
import { z } from "zod";
import { AgentError, toAgentError } from "../../../common/errors.js";
import type { Logger } from "../../../common/logger.js";
import { VERSION } from "../../../common/version.js";
import type { InstrumentBridge } from "../../../firmware-bridge/instrumentBridge.js";
import { toolCallLine } from "../../console/consoleText.js";
import { readTraceSummary } from "../../service/instrumentTools.js";
import type { LoadedAgent } from "../../service/loadAgent.js";

/** The URI of the live settings resource. */
export const SETTINGS_RESOURCE = "instrument://settings";

/** What the MCP server needs of the loaded agent. */
export type McpAgent = Pick<LoadedAgent, "service" | "instrument">;

function text(value: string): CallToolResult {
  return { content: [{ type: "text", text: value }] };
}

/** A refusal or failure as an MCP tool error: the client's model reads it, nothing is thrown. */
function toolError(error: unknown): CallToolResult {
  const { code, message } = toAgentError(error);
  return { isError: true, content: [{ type: "text", text: `error ${code}: ${message}` }] };
}

function needInstrument(agent: McpAgent): InstrumentBridge {
  if (agent.instrument) return agent.instrument;
  throw new AgentError("IA_ERR_NO_INSTRUMENT", "no instrument is configured: start `instrument-agent mcp` with --instrument <uri|sim>");
}

/** Runs a tool body; every error becomes the tool's result, so the protocol never sees a throw. */
async function guarded(logger: Logger, tool: string, body: () => Promise<CallToolResult>): Promise<CallToolResult> {
  try {
    return await body();
  } catch (error) {
    logger.debug({ tool, err: error }, "mcp tool failed");
    return toolError(error);
  }
}

/** The live settings and trace summary; an instrument that cannot be read is a tool error naming why. */
async function liveSettings(instrument: InstrumentBridge): Promise<string> {
  const rendered = await instrument.context.render();
  if (instrument.context.lastReadable === false) throw new AgentError("IA_ERR_INSTRUMENT_UNREACHABLE", rendered);
  return rendered;
}

/**
 * One MCP server over the loaded agent (README, "MCP"): `ask` goes through the shared answer
 * service and queue, the instrument tools through the bridge's allowlist and audit log as
 * origin `mcp`. Each transport connection gets its own server; they share the agent.
 */
export function createMcpServer(agent: McpAgent, logger: Logger): McpServer {
  const server = new McpServer({ name: "instrument-agent", version: VERSION });
  const log = logger.child({ component: "mcp" });
  const scpi = (line: string) => needInstrument(agent).query(line, "mcp");

  server.registerTool(
    "ask",
    {
      description:
        "Ask the local model beside the spectrum analyzer a question; it answers grounded in the instrument's live settings and trace (and may read the instrument itself).",
      inputSchema: { question: z.string().min(1).describe("the question, in any language") },
    },
    ({ question }, extra) =>
      guarded(log, "ask", async () => {
        const result = await agent.service.answer({ messages: [{ role: "user", content: question }] }, { signal: extra.signal });
        if (result.finishReason === "cancelled") throw new AgentError("IA_ERR_CANCELLED", "the answer was cancelled");
        const answer = text(result.text);
        if (result.tools && result.tools.length > 0)
          answer.content.push({ type: "text", text: `The agent's instrument calls:\n${result.tools.map(toolCallLine).join("\n")}` });
        return answer;
      }),
  );

  server.registerTool(
    "instrument_settings",
    {
      description: "The spectrum analyzer's live settings (center, span, RBW, VBW, reference level...) and a summary of TRACE1.",
      annotations: { readOnlyHint: true },
    },
    () => guarded(log, "instrument_settings", async () => text(await liveSettings(needInstrument(agent)))),
  );

  server.registerTool(
    "scpi_query",
    {
      description:
        "One read-only SCPI query to the spectrum analyzer (it must end in '?', e.g. *IDN? or :SENS:BAND:RES?). Lines that would change a setting are refused and never reach the instrument.",
      inputSchema: { query: z.string().describe("the SCPI query, e.g. :FREQ:CENT?") },
      annotations: { readOnlyHint: true },
    },
    ({ query }) => guarded(log, "scpi_query", async () => text((await scpi(query)).trim())),
  );

  server.registerTool(
    "read_trace",
    {
      description: "Read one trace (1-6) of the spectrum analyzer and get its summary: noise floor, strongest peaks, overload.",
      inputSchema: { trace: z.number().int().min(1).max(6).describe("the trace number, 1 to 6") },
      annotations: { readOnlyHint: true },
    },
    ({ trace }) =>
      guarded(log, "read_trace", async () => {
        needInstrument(agent);
        return text((await readTraceSummary(trace, scpi)).join("\n"));
      }),
  );

  // Listed only with an instrument: a client that reads every resource should not meet one that always fails.
  if (agent.instrument) {
    const instrument = agent.instrument;
    server.registerResource(
      "instrument-settings",
      SETTINGS_RESOURCE,
      { description: "The spectrum analyzer's live settings and TRACE1 summary, as the model sees them.", mimeType: "text/plain" },
      async (): Promise<ReadResourceResult> => ({
        contents: [{ uri: SETTINGS_RESOURCE, mimeType: "text/plain", text: await instrument.context.render() }],
      }),
    );
  }
  return server;
}
