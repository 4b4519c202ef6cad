import { closeSync, mkdirSync, openSync, writeSync } from "node:fs";
import path from "node:path";
import { AgentError } from "../common/errors.js";
import type { Logger } from "../common/logger.js";

/**
 * Who asked for an SCPI line, as the audit log and the logs name it (README, "Audit log"):
 * `console` the local console's `/scpi`, `serial` the serial console's, `mqtt:<reply topic>`
 * an MQTT scpi request, `cli` the `scpi` command, `context` the reads before an answer,
 * `model` a tool call of the model, `smoke` the smoke check, `mcp` a tool call of an MCP client,
 * `web` the web page's settings and trace (`GET /api/instrument`).
 */
export type ScpiOrigin = "console" | "serial" | `mqtt:${string}` | "cli" | "context" | "model" | "smoke" | "mcp" | "web";

/** What the bridge counted since it was made; published in MQTT `/status` and `/health`. */
export interface ScpiCounts {
  /** Queries the instrument answered. */
  sent: number;
  /** Lines the allowlist refused; a `;`-joined line counts once. */
  refused: number;
  /** Queries sent that got no reply: a timeout, a link that is down. */
  failed: number;
  /** Audit lines that could not be written; only with `--scpi-audit`. */
  auditWriteErrors?: number;
}

/** One audit line without its time: a query answered, or a refusal or failure with its error. */
export type ScpiAuditEntry = { line: string; origin: ScpiOrigin; wire?: string } & (
  { replyBytes: number } | { error: { code: string; message: string } }
);

export interface ScpiAuditLogOptions {
  /** The JSON-lines file, appended to; its directory is made if missing. */
  file: string;
  /** Told once about the first write that fails. Defaults to no logging. */
  logger?: Logger | undefined;
  /** Clock for `time`. Defaults to `() => new Date()`. */
  now?: () => Date;
}

/** Longest `line` kept in an audit line; the allowlist refuses lines over 256 characters anyway. */
export const MAX_AUDIT_LINE = 512;

/**
 * The SCPI audit log (`--scpi-audit <file>`): one JSON line per query sent and per refusal.
 * Opened with O_APPEND and written with one `write` per line, synchronously, so lines never
 * interleave, not even between two processes sharing the file. A write that fails is logged
 * once and counted; it never throws.
 */
export class ScpiAuditLog {
  readonly file: string;
  #fd: number | undefined;
  readonly #logger: Logger | undefined;
  readonly #now: () => Date;
  #writeErrors = 0;

  private constructor(options: ScpiAuditLogOptions, fd: number) {
    this.file = options.file;
    this.#fd = fd;
    this.#logger = options.logger;
    this.#now = options.now ?? (() => new Date());
  }

  /** Opens (creates) the file for appending; a file that cannot be opened is IA_ERR_CONFIG naming it. */
  static open(options: ScpiAuditLogOptions): ScpiAuditLog {
    const file = path.resolve(options.file);
    try {
      mkdirSync(path.dirname(file), { recursive: true });
      return new ScpiAuditLog({ ...options, file }, openSync(file, "a", 0o640));
    } catch (error) {
      throw new AgentError(
        "IA_ERR_CONFIG",
        `--scpi-audit ${file}: cannot open the SCPI audit log for appending (${(error as Error).message})`,
        {
          cause: error,
        },
      );
    }
  }

  /** Lines that could not be written. */
  get writeErrors(): number {
    return this.#writeErrors;
  }

  write(entry: ScpiAuditEntry): void {
    const fd = this.#fd;
    if (fd === undefined) return;
    const { line, origin, wire, ...outcome } = entry;
    const text = JSON.stringify({
      time: this.#now().toISOString(),
      line: clip(line),
      origin,
      ...(wire !== undefined ? { wire } : {}),
      ...outcome,
    });
    const bytes = Buffer.from(`${text}\n`, "utf8");
    try {
      const written = writeSync(fd, bytes);
      if (written !== bytes.length) throw new Error(`only ${written} of ${bytes.length} bytes written`);
    } catch (error) {
      this.#writeErrors++;
      if (this.#writeErrors === 1)
        this.#logger?.error({ err: error, file: this.file }, "cannot write the SCPI audit log; later failures are counted, not logged");
    }
  }

  /** Idempotent; later writes are dropped. */
  close(): void {
    const fd = this.#fd;
    this.#fd = undefined;
    if (fd === undefined) return;
    try {
      closeSync(fd);
    } catch (error) {
      this.#logger?.warn({ err: error, file: this.file }, "cannot close the SCPI audit log");
    }
  }
}

function clip(line: string): string {
  return line.length <= MAX_AUDIT_LINE ? line : `${line.slice(0, MAX_AUDIT_LINE)}... (${line.length} characters)`;
}
