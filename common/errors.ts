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
  IA_ERR_CHECKSUM: {
    exit: EXIT_CHECK_FAILED,
    summary: "the file's SHA-256 differs from the catalog or the one recorded at first download",
  },
  IA_ERR_DOWNLOAD: { exit: EXIT_RUNTIME, summary: "a model download failed (network, HTTP status, disk)" },
  IA_ERR_MODEL_LOAD: { exit: EXIT_RUNTIME, summary: "llama.cpp could not load the model" },
  IA_ERR_ENGINE_EXITED: {
    exit: EXIT_RUNTIME,
    summary: "the engine process (llama.cpp) ended while loading or answering; the agent starts it again for the next question",
  },
  IA_ERR_GLIBC_TOO_OLD: {
    exit: EXIT_RUNTIME,
    summary: "glibc is older than 2.34, which the prebuilt llama.cpp binaries need; the message names the local build command",
  },
  IA_ERR_OS_UNSUPPORTED: { exit: EXIT_RUNTIME, summary: "Windows older than 10: run the agent on a host beside the instrument" },
  IA_ERR_PROMPT_TOO_LONG: { exit: EXIT_USAGE, summary: "the question does not fit in the context window" },
  IA_ERR_QUEUE_FULL: { exit: EXIT_RUNTIME, summary: "the request queue is full; try again later" },
  IA_ERR_CANCELLED: { exit: EXIT_RUNTIME, summary: "the request was cancelled" },
  IA_ERR_DISPOSED: { exit: EXIT_RUNTIME, summary: "the model runtime is shutting down" },
  IA_ERR_BAD_REQUEST: {
    exit: EXIT_USAGE,
    summary:
      "an MQTT request payload is not valid: not JSON, invalid UTF-8, an unknown key or a value of the wrong type; the message names the key and what was expected",
  },
  IA_ERR_PAYLOAD_TOO_LARGE: { exit: EXIT_USAGE, summary: "an MQTT request payload is larger than --mqtt-payload-limit; it was not read" },
  IA_ERR_RATE_LIMITED: {
    exit: EXIT_RUNTIME,
    summary: "this requester sent more than --mqtt-rate-limit questions a minute; try again later",
  },
  IA_ERR_EXPIRED: {
    exit: EXIT_RUNTIME,
    summary: "an MQTT question left unanswered by a crash was older than --mqtt-max-age when the agent came back; it was not answered",
  },
  IA_ERR_NO_INSTRUMENT: { exit: EXIT_USAGE, summary: "an SCPI request arrived but no instrument is configured (--instrument off)" },
  IA_ERR_MQTT_CONNECT: {
    exit: EXIT_RUNTIME,
    summary: "the MQTT broker cannot be reached (refused, unknown host, TLS failure or no reply in time); the message names the broker",
  },
  IA_ERR_MQTT_AUTH: {
    exit: EXIT_RUNTIME,
    summary: "the MQTT broker refused the login (bad user name or password, or not authorized); the message names the broker",
  },
  IA_ERR_MQTT_BIND: {
    exit: EXIT_RUNTIME,
    summary: "the embedded MQTT broker cannot listen on --mqtt-bind (address in use or not on this host)",
  },
  IA_ERR_MQTT_DUPLICATE_ID: {
    exit: EXIT_RUNTIME,
    summary: "another live agent is online with the same --agent-id on this broker; this agent's MQTT side stops (the other keeps serving)",
  },
  IA_ERR_MQTT_TIMEOUT: {
    exit: EXIT_RUNTIME,
    summary: "`ask --via`: the remote agent did not answer in time; the message names the broker and the agent's last status",
  },
  IA_ERR_HTTP_LISTEN: {
    exit: EXIT_RUNTIME,
    summary: "the HTTP API cannot listen on the --http address (in use or not on this host); the message names host:port",
  },
  IA_ERR_HTTP_UNAUTHORIZED: {
    exit: EXIT_USAGE,
    summary: "an HTTP request had no `Authorization: Bearer` header or the wrong key for --http-api-key (HTTP 401)",
  },
  IA_ERR_HTTP_BODY_TOO_LARGE: {
    exit: EXIT_USAGE,
    summary: "an HTTP request body is larger than --http-body-limit; it was not read (HTTP 413)",
  },
  IA_ERR_HTTP_NOT_FOUND: { exit: EXIT_USAGE, summary: "no HTTP endpoint has this method and path (HTTP 404)" },
  IA_ERR_LOADING: { exit: EXIT_RUNTIME, summary: "the model is still loading; only GET /health answers until it is ready (HTTP 503)" },
  IA_ERR_CLIENT_TOOLS: {
    exit: EXIT_USAGE,
    summary:
      "an OpenAI request carried `tools` or `functions`: client-side tools are not supported; the agent runs its own instrument tools",
  },
  IA_ERR_SERIAL_PORT: {
    exit: EXIT_RUNTIME,
    summary: "the serial console port cannot be opened or went away; it is logged and retried with backoff while the agent keeps serving",
  },
  IA_ERR_SERIAL_INPUT: {
    exit: EXIT_USAGE,
    summary: "a line typed on the serial console held bytes that are not UTF-8; the line was not sent",
  },
  IA_ERR_SERIAL_LINE_TOO_LONG: {
    exit: EXIT_USAGE,
    summary: "a line typed on the serial console was longer than --serial-line-limit; the line was not sent",
  },
  IA_ERR_INSTRUMENT_URI: {
    exit: EXIT_USAGE,
    summary: "the --instrument URI is malformed (scheme, host, port, device path, baud or GPIB address)",
  },
  IA_ERR_SCPI_REFUSED: {
    exit: EXIT_USAGE,
    summary: "the SCPI line was refused by the read-only allowlist: it would change state or is not an allowlisted query; nothing was sent",
  },
  IA_ERR_INSTRUMENT_UNREACHABLE: {
    exit: EXIT_RUNTIME,
    summary: "the instrument cannot be reached: connection refused, port missing, or the link closed",
  },
  IA_ERR_SCPI_TIMEOUT: {
    exit: EXIT_RUNTIME,
    summary: "the instrument did not reply in time; the message carries its drained SYST:ERR? queue",
  },
  IA_ERR_SCPI_REPLY: {
    exit: EXIT_RUNTIME,
    summary:
      "the instrument's reply cannot be read: a trace value that is not a number, an unknown :FORM? reply, or a binary block that is indefinite (#0), truncated or of the wrong length",
  },
  IA_ERR_BENCH_REFERENCE: {
    exit: EXIT_RUNTIME,
    summary: "`bench --llama-bench`: the llama-bench binary failed or printed no pp/tg figures; the message carries its last lines",
  },
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
