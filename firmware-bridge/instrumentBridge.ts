import { AgentError, toAgentError } from "../common/errors.js";
import type { Logger } from "../common/logger.js";
import type { SerialLink, SerialLinkOptions } from "../common/serial/serialLink.js";
import { SerialPortLink } from "../common/serial/serialPortLink.js";
import { InstrumentContext } from "./instrumentContext.js";
import type { InstrumentLink } from "./instrumentLink.js";
import { describeAddress, parseInstrumentUri } from "./instrumentUri.js";
import type { InstrumentAddress } from "./instrumentUri.js";
import { ScpiAllowlist } from "./scpiAllowlist.js";
import type { ScpiQuery } from "./scpiAllowlist.js";
import { ScpiAuditLog } from "./scpiAudit.js";
import type { ScpiCounts, ScpiOrigin } from "./scpiAudit.js";
import { ScpiClient } from "./scpiClient.js";
import { PrologixInstrumentLink, SerialInstrumentLink } from "./serialInstrumentLink.js";
import { SpectrumAnalyzerSimulator } from "./simulator.js";
import { SimulatorLink } from "./simulatorLink.js";
import { TcpInstrumentLink } from "./tcpInstrumentLink.js";

export interface InstrumentBridgeOptions {
  /** `tcp://...`, `serial://...`, `prologix://...` or `sim` (not `off`). */
  uri: string;
  /** Extra read-only queries for the allowlist. Defaults to none. */
  allow?: readonly string[];
  /** Reply timeout per query, ms. Defaults to 3000. */
  timeoutMs?: number;
  /** How long an instrument snapshot is reused, ms. Defaults to 3000. */
  contextCacheMs?: number;
  /** `--scpi-audit`: append one JSON line per query sent and per refusal to this file. Defaults to none. */
  auditFile?: string | undefined;
  logger?: Logger | undefined;
  /** Makes serial lines (tests may hand in fakes). Defaults to `SerialPortLink`. */
  createSerialLink?: (options: SerialLinkOptions) => SerialLink;
}

/** Builds the allowlist, naming the bad entry in a config error. */
export function createAllowlist(allow: readonly string[] = []): ScpiAllowlist {
  try {
    return new ScpiAllowlist(allow);
  } catch (error) {
    throw new AgentError("IA_ERR_CONFIG", `scpiAllow: ${(error as Error).message}`, { cause: error });
  }
}

function createLink(
  address: InstrumentAddress,
  timeoutMs: number,
  createSerialLink: (options: SerialLinkOptions) => SerialLink,
): InstrumentLink {
  switch (address.kind) {
    case "tcp":
      return new TcpInstrumentLink({ host: address.host, port: address.port, connectTimeoutMs: timeoutMs });
    case "serial":
      return new SerialInstrumentLink({
        serial: createSerialLink({ path: address.path, baudRate: address.baudRate }),
        description: describeAddress(address),
      });
    case "prologix":
      return new PrologixInstrumentLink({
        serial: createSerialLink({ path: address.path, baudRate: address.baudRate }),
        gpibAddress: address.gpibAddress,
        description: describeAddress(address),
      });
    case "sim":
      return new SimulatorLink(new SpectrumAnalyzerSimulator());
  }
}

/**
 * The firmware bridge as the agent uses it: every line goes through the allowlist, then
 * the SCPI client; the instrument context reads through the same path. Every line is
 * counted and, with an audit file, logged under the origin that asked. Creating it checks
 * the URI and the allowlist and opens the audit file; the link opens on the first query.
 */
export class InstrumentBridge {
  readonly description: string;
  /** Whether readings before an answer (and the web page's) include the trace: not over serial links. */
  readonly readsTrace: boolean;
  readonly allowlist: ScpiAllowlist;
  readonly client: ScpiClient;
  readonly context: InstrumentContext;
  /** The in-process simulator when the URI is `sim`. */
  readonly simulator: SpectrumAnalyzerSimulator | undefined;
  readonly #logger: Logger | undefined;
  readonly #audit: ScpiAuditLog | undefined;
  readonly #counts = { sent: 0, refused: 0, failed: 0 };
  #turn: Promise<unknown> = Promise.resolve();

  constructor(options: InstrumentBridgeOptions) {
    const address = parseInstrumentUri(options.uri);
    if (!address) throw new AgentError("IA_ERR_INSTRUMENT_URI", "--instrument off: no instrument is configured");
    // LAN and the simulator carry a trace in milliseconds; a serial line takes seconds.
    this.readsTrace = address.kind === "tcp" || address.kind === "sim";
    this.allowlist = createAllowlist(options.allow);
    this.description = describeAddress(address);
    this.#logger = options.logger?.child({ component: "instrument" });
    this.#audit = options.auditFile === undefined ? undefined : ScpiAuditLog.open({ file: options.auditFile, logger: this.#logger });
    const timeoutMs = options.timeoutMs ?? 3000;
    const link = createLink(address, timeoutMs, options.createSerialLink ?? ((o) => new SerialPortLink(o)));
    this.simulator = link instanceof SimulatorLink ? link.simulator : undefined;
    this.client = new ScpiClient({ link, timeoutMs, logger: this.#logger });
    this.context = new InstrumentContext({
      query: (line) => this.query(line, "context"),
      description: this.description,
      cacheMs: options.contextCacheMs ?? 3000,
      logger: this.#logger,
      readTrace: this.readsTrace,
    });
  }

  /**
   * Sends one line if every part is an allowlisted query; `;`-joined queries are sent one
   * by one, with no other caller's query between them, and their replies joined with `;`.
   * Refusals throw IA_ERR_SCPI_REFUSED (exit 2) before anything is sent. `origin` says who
   * asked: it goes into the audit log (one line per query sent, one per refused line) and
   * the log. A tool call of the model passes `"model"`.
   */
  async query(line: string, origin: ScpiOrigin): Promise<string> {
    const checked = this.allowlist.check(line);
    if (!checked.ok) {
      this.#counts.refused++;
      const error = new AgentError("IA_ERR_SCPI_REFUSED", checked.message);
      this.#audit?.write({ line, origin, error: { code: error.code, message: error.message } });
      this.#logger?.warn({ line, origin, refusals: checked.refusals }, "scpi line refused");
      throw error;
    }
    const run = async () => {
      const replies: string[] = [];
      for (const query of checked.queries) replies.push(await this.#send(query, origin));
      return replies.join(";");
    };
    const result = this.#turn.then(run, run);
    this.#turn = result.catch(() => undefined);
    return result;
  }

  async #send(query: ScpiQuery, origin: ScpiOrigin): Promise<string> {
    try {
      const reply = await this.client.query(query.wire);
      this.#counts.sent++;
      // Replies are latin1 strings, one character per byte.
      this.#audit?.write({ line: query.text, origin, wire: query.wire, replyBytes: reply.length });
      return reply;
    } catch (error) {
      this.#counts.failed++;
      const agentError = toAgentError(error);
      this.#audit?.write({ line: query.text, origin, wire: query.wire, error: { code: agentError.code, message: agentError.message } });
      throw error;
    }
  }

  /** Queries answered, lines refused, queries failed since start (and audit lines lost, with an audit file). */
  get counts(): ScpiCounts {
    return { ...this.#counts, ...(this.#audit ? { auditWriteErrors: this.#audit.writeErrors } : {}) };
  }

  /** For AnswerService: the instrument summary, never a throw. */
  readonly contextProvider = (): Promise<string> => this.context.render();

  async close(): Promise<void> {
    await this.client.close();
    this.#audit?.close();
  }
}
