import { AgentError, ERROR_CODES } from "../../../common/errors.js";
import type { ErrorCode } from "../../../common/errors.js";
import type { LlamaRuntimeOptions } from "../llamaRuntime.js";
import type {
  EngineStats,
  GenerateRequest,
  GenerateResult,
  RawEvaluationOptions,
  RawEvaluationResult,
  RuntimeInfo,
} from "../modelRuntime.js";

/**
 * The messages between the agent and its engine process (`engineProcess.ts` forks it,
 * `engineWorker.ts` serves it) over Node's IPC channel. Only plain data crosses: functions
 * (the abort signal, `onDelta`, the logger) become messages of their own.
 */

/** What the engine needs to load: the runtime's options, with the logger and progress callback as messages. */
export type EngineLoadOptions = Omit<LlamaRuntimeOptions, "logger" | "onLoadProgress"> & {
  /** Pino level of the agent's logger, so the engine does not send what would be dropped. */
  logLevel: string;
  reportProgress: boolean;
};

/** A generation request without its callbacks. */
export type EngineGenerateRequest = Omit<GenerateRequest, "signal" | "onDelta">;

export type AgentToEngine =
  | { type: "load"; options: EngineLoadOptions }
  | { type: "generate"; id: number; slot: number; request: EngineGenerateRequest; stream: boolean }
  | { type: "abort"; id: number }
  | { type: "countTokens"; id: number; text: string }
  | { type: "raw"; id: number; slot: number; options: RawEvaluationOptions }
  | { type: "stats"; id: number }
  | { type: "dispose" };

export interface SerializedError {
  code: string;
  message: string;
  exitCode?: number;
}

/** What a request is answered with: a generation, the raw baseline, the stats, or a token count. */
export type EngineResult = GenerateResult | RawEvaluationResult | EngineStats | number | null;

export type EngineToAgent =
  | { type: "loaded"; info: RuntimeInfo; slots: number }
  | { type: "loadFailed"; error: SerializedError }
  | { type: "progress"; fraction: number }
  /** One pino JSON line, re-emitted through the agent's logger. */
  | { type: "log"; line: string }
  | { type: "delta"; id: number; text: string }
  | { type: "done"; id: number; result: EngineResult }
  | { type: "failed"; id: number; error: SerializedError };

export function serializeError(error: unknown): SerializedError {
  if (error instanceof AgentError) return { code: error.code, message: error.message, exitCode: error.exitCode };
  return { code: "IA_ERR_INTERNAL", message: error instanceof Error ? error.message : String(error) };
}

/** The agent sees the engine's errors with their own codes, so exit codes and replies stay the same. */
export function deserializeError(error: SerializedError): AgentError {
  const code = (error.code in ERROR_CODES ? error.code : "IA_ERR_INTERNAL") as ErrorCode;
  return new AgentError(code, error.message, error.exitCode === undefined ? {} : { exitCode: error.exitCode });
}
