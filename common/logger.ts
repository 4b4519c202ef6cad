import { createWriteStream } from "node:fs";
import type { Writable } from "node:stream";
import pino from "pino";
import type { Logger } from "pino";

export type { Logger } from "pino";

export interface LoggerOptions {
  /** Pino level. Defaults to `info`. */
  level?: string;
  /** Append JSON lines to this file instead of writing to stderr. Defaults to stderr. */
  file?: string | undefined;
  /** Stream for stderr output (tests hand in their own). Defaults to `process.stderr`. */
  stderr?: Writable & { isTTY?: boolean };
  /** Readable lines for a terminal that a console draws on go through this gate (see `TerminalLogGate`). Defaults to none. */
  gate?: TerminalLogGate | undefined;
}

/**
 * Log lines bound for the terminal that the local console draws its prompt and answers on.
 * The console routes them (`route`) so that none lands inside a prompt or an answer: it
 * holds them while an answer streams and prints them above the prompt otherwise.
 */
export class TerminalLogGate {
  readonly #stream: Writable;
  #sink: ((text: string) => void) | undefined;

  constructor(stream: Writable) {
    this.#stream = stream;
  }

  write(text: string): void {
    if (this.#sink) this.#sink(text);
    else this.#stream.write(text);
  }

  /** Sends lines to `sink` from now on; `undefined` writes them straight to the stream again. */
  route(sink: ((text: string) => void) | undefined): void {
    this.#sink = sink;
  }
}

const LEVEL_NAMES: Record<number, string> = { 10: "TRACE", 20: "DEBUG", 30: "INFO", 40: "WARN", 50: "ERROR", 60: "FATAL" };
const HIDDEN_KEYS = new Set(["level", "time", "pid", "hostname", "msg", "component"]);

/**
 * Pino's JSON lines are for machines; a person at a terminal gets one short line each.
 * Formatting here, in the stream, keeps the hot path plain pino and needs no worker
 * transport (those break inside the esbuild bundle).
 */
function humanLine(json: string): string {
  try {
    const entry = JSON.parse(json) as Record<string, unknown>;
    const time = new Date(Number(entry.time)).toTimeString().slice(0, 8);
    const level = LEVEL_NAMES[Number(entry.level)] ?? String(entry.level);
    const component = entry.component ? `${String(entry.component)}: ` : "";
    const extras = Object.entries(entry)
      .filter(([key]) => !HIDDEN_KEYS.has(key))
      .map(([key, value]) => {
        if (key === "err" && value && typeof value === "object") return `err=${JSON.stringify((value as { message?: string }).message)}`;
        return `${key}=${typeof value === "string" ? value : JSON.stringify(value)}`;
      });
    return `${time} ${level} ${component}${String(entry.msg ?? "")}${extras.length ? " " + extras.join(" ") : ""}\n`;
  } catch {
    return json;
  }
}

/** The one logger of a process; modules receive it (or a child) as a parameter. */
export function createLogger(options: LoggerOptions = {}): Logger {
  const level = options.level ?? "info";
  const redact = { paths: ["password", "*.password", "mqtt.password", "url.password", "headers.authorization"], censor: "[redacted]" };
  if (options.file) {
    return pino({ level, redact, base: { pid: process.pid } }, createWriteStream(options.file, { flags: "a" }));
  }
  const stderr = options.stderr ?? process.stderr;
  if (stderr.isTTY) {
    const gate = options.gate;
    const human = { write: (line: string) => (gate ? gate.write(humanLine(line)) : stderr.write(humanLine(line))) };
    return pino({ level, redact, base: undefined }, human);
  }
  return pino({ level, redact, base: { pid: process.pid } }, stderr);
}
