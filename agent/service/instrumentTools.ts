import { AgentError, toAgentError } from "../../common/errors.js";
import type { ToolCall, ToolSpec } from "../engine/modelRuntime.js";
import { SNAPSHOT_QUERIES, traceLines } from "../../firmware-bridge/instrumentContext.js";
import type { InstrumentSnapshot, SnapshotField } from "../../firmware-bridge/instrumentContext.js";
import type { ToolBox, ToolRecord } from "./toolBox.js";

export interface InstrumentToolsOptions {
  /** Sends one line through the allowlist (and the audit log, as the model); refusals throw IA_ERR_SCPI_REFUSED. */
  query: (line: string) => Promise<string>;
  /** Offer `read_trace`. Defaults to true. */
  traces?: boolean | undefined;
  /** Most calls in one answer. */
  maxCalls: number;
}

/** Most `SYST:ERR?` reads one `read_errors` call makes; a full queue holds about 100 entries. */
const MAX_ERRORS_READ = 20;
const NO_ERROR = /^[+-]?0\s*,/;

export const INSTRUMENT_TOOL_SPECS: readonly ToolSpec[] = [
  {
    name: "scpi_query",
    description:
      "Ask the spectrum analyzer one read-only SCPI query (it must end in '?', e.g. :SENS:BAND:RES? or :CALC:MARK1:Y?). Commands that change settings are refused.",
    params: { type: "object", properties: { query: { type: "string" } } },
  },
  {
    name: "read_trace",
    description: "Read a trace (1-6) from the analyzer and get a summary: noise floor, strongest peaks, overload.",
    params: { type: "object", properties: { trace: { enum: [1, 2, 3, 4, 5, 6] } } },
  },
  {
    name: "read_errors",
    description: "Read and clear the analyzer's error queue (SYST:ERR?).",
    params: { type: "object", properties: {} },
  },
];

/**
 * The model's reach into the instrument: the same allowlisted queries every other path sends.
 * A refused or failed call is the call's result (an error the model reads), never a throw.
 */
export function createInstrumentTools(options: InstrumentToolsOptions): ToolBox {
  const run = async (call: ToolCall): Promise<ToolRecord> => {
    const args = (typeof call.arguments === "object" && call.arguments !== null ? call.arguments : {}) as Record<string, unknown>;
    const record: ToolRecord = { name: call.name, arguments: call.arguments };
    try {
      record.result = await runTool(call.name, args, options);
    } catch (error) {
      const agentError = toAgentError(error);
      record.error = { code: agentError.code, message: agentError.message };
    }
    return record;
  };
  const specs = INSTRUMENT_TOOL_SPECS.filter((spec) => spec.name !== "read_trace" || options.traces !== false);
  return { specs, maxCalls: options.maxCalls, run };
}

async function runTool(name: string, args: Record<string, unknown>, options: InstrumentToolsOptions): Promise<unknown> {
  switch (name) {
    case "scpi_query": {
      const query = typeof args["query"] === "string" ? args["query"] : "";
      return { reply: await options.query(query) };
    }
    case "read_trace": {
      if (options.traces === false) throw new AgentError("IA_ERR_BAD_REQUEST", "read_trace is not offered here");
      const trace = typeof args["trace"] === "number" ? args["trace"] : 1;
      return { summary: (await readTraceSummary(trace, options.query)).join("\n") };
    }
    case "read_errors": {
      const errors: string[] = [];
      for (let i = 0; i < MAX_ERRORS_READ; i++) {
        const entry = (await options.query("SYST:ERR?")).trim();
        if (NO_ERROR.test(entry) || entry === "") break;
        errors.push(entry);
      }
      return { errors };
    }
    default:
      // The grammar only lets the model name known tools; this is for a model file that bypasses it.
      throw new AgentError(
        "IA_ERR_BAD_REQUEST",
        `no tool named ${JSON.stringify(name)}; the tools are scpi_query, read_trace, read_errors`,
      );
  }
}

/** What a trace summary needs beside the trace: where it lies in frequency, the reference level, the format. */
const TRACE_CONTEXT: readonly SnapshotField[] = ["center", "span", "refLevel", "points", "traceForm", "traceByteOrder"];

/**
 * One trace (1-6) read and summarised the way the live context summarises TRACE1
 * (instrumentContext.ts traceLines), through the same allowlisted queries; the MCP server's `read_trace` too.
 */
export async function readTraceSummary(trace: number, query: (line: string) => Promise<string>): Promise<string[]> {
  if (!Number.isInteger(trace) || trace < 1 || trace > 6)
    throw new AgentError("IA_ERR_BAD_REQUEST", `read_trace: trace ${trace} is not 1 to 6`);
  const replies: InstrumentSnapshot["replies"] = {};
  for (const field of TRACE_CONTEXT) replies[field] = (await query(SNAPSHOT_QUERIES[field])).trim();
  // Not trimmed: a binary block's last bytes may look like white space.
  replies.trace = await query(`:TRAC:DATA? TRACE${trace}`);
  return traceLines({ replies });
}
