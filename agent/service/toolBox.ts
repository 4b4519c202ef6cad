import type { ToolCall, ToolSpec } from "../engine/modelRuntime.js";

/** One instrument call the model made: its result, or the error it was given instead. */
export interface ToolRecord {
  name: string;
  arguments: unknown;
  result?: unknown;
  error?: { code: string; message: string };
}

/** The tools a chat answer may call, and where they run (the agent process, beside the instrument bridge). */
export interface ToolBox {
  readonly specs: readonly ToolSpec[];
  /** Most calls in one answer (`--tool-calls-max`). */
  readonly maxCalls: number;
  /** Runs one call; never throws: a refusal or failure comes back as `error`, and the model is told it. */
  run(call: ToolCall): Promise<ToolRecord>;
}
