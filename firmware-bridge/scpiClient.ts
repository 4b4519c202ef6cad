import { AgentError } from "../common/errors.js";
import type { Logger } from "../common/logger.js";
import { LinkReplyError } from "./instrumentLink.js";
import type { InstrumentLink } from "./instrumentLink.js";

export interface ScpiClientOptions {
  /** The link; opened on the first query and reopened on the query after a failure. */
  link: InstrumentLink;
  /** How long one reply may take. Defaults to 3000 ms. */
  timeoutMs?: number;
  /** Defaults to no logging. */
  logger?: Logger | undefined;
}

/** Most `SYST:ERR?` entries read after a failed query; a full queue has about 100. */
const MAX_DRAINED = 20;
const ERROR_ENTRY = /^[+-]?\d+\s*,/;
const NO_ERROR = /^[+-]?0\s*,/;
const LOGGED_REPLY_CHARS = 200;

/** A reply for the debug log: a block by its header and size, a long line cut short. */
function loggable(reply: string): string {
  const header = /^#([1-9])/.exec(reply);
  if (header) return `${reply.slice(0, 2 + Number(header[1]))} (binary block, ${reply.length} bytes)`;
  return reply.length > LOGGED_REPLY_CHARS ? `${reply.slice(0, LOGGED_REPLY_CHARS)}... (${reply.length} bytes)` : reply;
}

/**
 * Sends queries that already passed the allowlist, one at a time per instrument: a second
 * caller waits for the first reply. After a timeout or link failure it reads the
 * instrument's error queue (`SYST:ERR?`) so the error is reported and the next reply is
 * not someone else's; a link that failed is reopened by the next query.
 */
export class ScpiClient {
  readonly link: InstrumentLink;
  readonly timeoutMs: number;
  readonly #logger: Logger | undefined;
  #tail: Promise<unknown> = Promise.resolve();
  #drainOnOpen = false;
  #closed = false;

  constructor(options: ScpiClientOptions) {
    this.link = options.link;
    this.timeoutMs = options.timeoutMs ?? 3000;
    this.#logger = options.logger;
  }

  /** Sends one query (the wire form from the allowlist) and resolves with its reply line. */
  query(wire: string): Promise<string> {
    return this.#exclusive(() => this.#query(wire));
  }

  /** Sends several queries back to back under one turn, so no other caller interleaves. */
  queryAll(wires: readonly string[]): Promise<string[]> {
    return this.#exclusive(async () => {
      const replies: string[] = [];
      for (const wire of wires) replies.push(await this.#query(wire));
      return replies;
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.#tail.catch(() => undefined);
    await this.link.close().catch(() => undefined);
  }

  #exclusive<T>(run: () => Promise<T>): Promise<T> {
    const result = this.#tail.then(run, run);
    this.#tail = result.catch(() => undefined);
    return result;
  }

  async #ensureOpen(): Promise<void> {
    if (this.#closed) throw new AgentError("IA_ERR_INSTRUMENT_UNREACHABLE", `${this.link.description}: the instrument link is closed`);
    if (this.link.isOpen) return;
    try {
      await this.link.open();
    } catch (error) {
      await this.link.close().catch(() => undefined);
      throw new AgentError(
        "IA_ERR_INSTRUMENT_UNREACHABLE",
        `${this.link.description}: cannot reach the instrument (${(error as Error).message})`,
        { cause: error },
      );
    }
    if (this.#drainOnOpen) {
      this.#drainOnOpen = false;
      const errors = await this.#drainErrors().catch(() => []);
      if (errors.length > 0) this.#logger?.warn({ instrument: this.link.description, errors }, "instrument error queue after reconnect");
    }
  }

  async #query(wire: string): Promise<string> {
    await this.#ensureOpen();
    this.link.discardInput();
    try {
      await this.link.sendLine(wire);
      const reply = await this.link.readLine(this.timeoutMs);
      this.#logger?.debug({ instrument: this.link.description, query: wire, reply: loggable(reply) }, "scpi");
      return reply;
    } catch (error) {
      throw await this.#failed(wire, error);
    }
  }

  async #failed(wire: string, error: unknown): Promise<AgentError> {
    if (error instanceof LinkReplyError) {
      // The instrument answered; only a reply whose end was not found leaves the link unusable.
      if (!error.resynced) await this.link.close().catch(() => undefined);
      this.#logger?.warn({ instrument: this.link.description, query: wire, err: error }, "scpi reply refused");
      return new AgentError("IA_ERR_SCPI_REPLY", `${this.link.description}: the reply to ${wire} ${error.message}`, { cause: error });
    }
    const timedOut = (error as { timedOut?: boolean }).timedOut === true;
    let errors: string[] = [];
    if (timedOut) {
      try {
        errors = await this.#drainErrors();
      } catch {
        // The instrument answers nothing at all: start afresh on the next query.
        await this.link.close().catch(() => undefined);
        this.#drainOnOpen = true;
      }
    } else {
      await this.link.close().catch(() => undefined);
      this.#drainOnOpen = true;
    }
    const queue = errors.length > 0 ? `; instrument error queue: ${errors.join(" | ")}` : "";
    this.#logger?.warn({ instrument: this.link.description, query: wire, err: error, errors }, "scpi query failed");
    return timedOut
      ? new AgentError("IA_ERR_SCPI_TIMEOUT", `${this.link.description}: no reply to ${wire} within ${this.timeoutMs} ms${queue}`, {
          cause: error,
        })
      : new AgentError(
          "IA_ERR_INSTRUMENT_UNREACHABLE",
          `${this.link.description}: ${(error as Error).message} (while sending ${wire}; the link is reopened on the next query)`,
          {
            cause: error,
          },
        );
  }

  /** Reads `SYST:ERR?` until "no error"; skips a late reply that is not an error entry. */
  async #drainErrors(): Promise<string[]> {
    const errors: string[] = [];
    this.link.discardInput();
    for (let asked = 0; asked < MAX_DRAINED; asked++) {
      await this.link.sendLine(":SYST:ERR?");
      let line = await this.link.readLine(this.timeoutMs);
      // A reply to the query that timed out may still arrive first.
      for (let skipped = 0; !ERROR_ENTRY.test(line) && skipped < 3; skipped++) line = await this.link.readLine(this.timeoutMs);
      if (NO_ERROR.test(line)) break;
      errors.push(line);
    }
    return errors;
  }
}
