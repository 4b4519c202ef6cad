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

type ProgressParams = { progressToken: string | number; progress: number; message: string };

/** Most often a progress notification goes out while an answer streams, ms. */
const PROGRESS_EVERY_MS = 500;

/**
 * With a progress token from the client: its place in the queue, then the characters generated so
 * far, as MCP progress notifications. A client that resets its request timeout on progress
 * (the SDK's `resetTimeoutOnProgress`) then waits out a long answer on a slow CPU.
 */
function progressReporter(token: string | number | undefined, send: (params: ProgressParams) => Promise<void>) {
  if (token === undefined) return undefined;
  let characters = 0;
  let sentAt = Number.NEGATIVE_INFINITY;
  let sent = 0;
  const notify = (message: string) => {
    // Progress must increase with every notification.
    sent = Math.max(sent + 1, characters);
    void send({ progressToken: token, progress: sent, message }).catch(() => undefined);
  };
  return {
    queued: (position: number) => notify(`waiting for the model: place ${position} in the queue`),
    delta: (text: string) => {
      characters += text.length;
      if (performance.now() - sentAt < PROGRESS_EVERY_MS) return;
      sentAt = performance.now();
      notify(`answering: ${characters} characters so far`);
    },
  };
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
        const progress = progressReporter(extra._meta?.progressToken, (params) =>
          extra.sendNotification({ method: "notifications/progress", params }),
        );
        const result = await agent.service.answer(
          { messages: [{ role: "user", content: question }] },
          { signal: extra.signal, onQueued: progress?.queued, onDelta: progress?.delta, transport: "mcp" },
        );
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
