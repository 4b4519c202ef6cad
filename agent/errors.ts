/**
 * The one registry of error codes. Every error the agent reports to a person or a program
 * carries one of these codes, a message naming the bad flag, key, file or value and what
 * was expected, and the exit code a command ends with when the error reaches the top.
 * The README has a row for each code.
 */

export const EXIT_OK = 0;
export const EXIT_RUNTIME = 1;
export const EXIT_USAGE = 2;
export const EXIT_CHECK_FAILED = 3;

export const ERROR_CODES = {
  IA_ERR_USAGE: { exit: EXIT_USAGE, summary: "bad command line: unknown command or flag, missing or malformed value" },
  IA_ERR_CONFIG: { exit: EXIT_USAGE, summary: "bad configuration: a config file key or IAGENT_* variable has a wrong value" },
  IA_ERR_CONFIG_FILE: { exit: EXIT_USAGE, summary: "the config file cannot be read or parsed as YAML/JSON" },
  IA_ERR_MODEL_NOT_FOUND: { exit: EXIT_USAGE, summary: "the model path, catalog id or URI names nothing that exists" },
  IA_ERR_MODEL_NOT_FILE: { exit: EXIT_USAGE, summary: "the model path is a directory or not a regular file" },
  IA_ERR_GGUF_EMPTY: { exit: EXIT_USAGE, summary: "the model file is empty" },
  IA_ERR_GGUF_MAGIC: { exit: EXIT_USAGE, summary: "the file does not start with the GGUF magic bytes" },
  IA_ERR_GGUF_VERSION: { exit: EXIT_USAGE, summary: "the GGUF version is not one llama.cpp reads (2 or 3)" },
  IA_ERR_GGUF_TRUNCATED: { exit: EXIT_USAGE, summary: "the file ends before its header, metadata or tensor data do" },
  IA_ERR_GGUF_MALFORMED: { exit: EXIT_USAGE, summary: "the GGUF header or metadata is inconsistent (bad type, absurd count)" },
  IA_ERR_GGUF_METADATA: { exit: EXIT_USAGE, summary: "metadata the architecture requires is missing or has the wrong type" },
  IA_ERR_GGUF_TENSOR: { exit: EXIT_USAGE, summary: "a tensor is missing or its shape or type contradicts the metadata" },
  IA_ERR_GGUF_ARCH: { exit: EXIT_USAGE, summary: "the model architecture is not one this agent supports" },
  IA_ERR_CHECKSUM: { exit: EXIT_CHECK_FAILED, summary: "the file's SHA-256 differs from the catalog or the one recorded at first download" },
  IA_ERR_DOWNLOAD: { exit: EXIT_RUNTIME, summary: "a model download failed (network, HTTP status, disk)" },
  IA_ERR_MODEL_LOAD: { exit: EXIT_RUNTIME, summary: "llama.cpp could not load the model" },
  IA_ERR_PROMPT_TOO_LONG: { exit: EXIT_USAGE, summary: "the question does not fit in the context window" },
  IA_ERR_QUEUE_FULL: { exit: EXIT_RUNTIME, summary: "the request queue is full; try again later" },
  IA_ERR_CANCELLED: { exit: EXIT_RUNTIME, summary: "the request was cancelled" },
  IA_ERR_DISPOSED: { exit: EXIT_RUNTIME, summary: "the model runtime is shutting down" },
  IA_ERR_INTERNAL: { exit: EXIT_RUNTIME, summary: "an unexpected failure inside the agent (a bug: please report it)" },
} as const satisfies Record<string, { exit: number; summary: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface AgentErrorOptions {
  /** The underlying error, kept for logs. Defaults to none. */
  cause?: unknown;
  /** Overrides the exit code of the registry row. Defaults to the row's exit code. */
  exitCode?: number;
}

export class AgentError extends Error {
  readonly code: ErrorCode;
  readonly exitCode: number;

  constructor(code: ErrorCode, message: string, options: AgentErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "AgentError";
    this.code = code;
    this.exitCode = options.exitCode ?? ERROR_CODES[code].exit;
  }

  /** The shape boundaries send to programs: `{code, message}`. */
  toJSON(): { code: ErrorCode; message: string } {
    return { code: this.code, message: this.message };
  }
}

export function isAgentError(value: unknown): value is AgentError {
  return value instanceof AgentError;
}

/** Any thrown value as an AgentError, so boundaries always have a code to report. */
export function toAgentError(value: unknown): AgentError {
  if (value instanceof AgentError) return value;
  const message = value instanceof Error ? value.message : String(value);
  return new AgentError("IA_ERR_INTERNAL", message, { cause: value });
}
