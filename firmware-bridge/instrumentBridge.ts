import { AgentError } from "../common/errors.js";
import type { Logger } from "../common/logger.js";
import type { SerialLink, SerialLinkOptions } from "../common/serial/serialLink.js";
import { SerialPortLink } from "../common/serial/serialPortLink.js";
import { InstrumentContext } from "./instrumentContext.js";
import type { InstrumentLink } from "./instrumentLink.js";
import { describeAddress, parseInstrumentUri } from "./instrumentUri.js";
import type { InstrumentAddress } from "./instrumentUri.js";
import { ScpiAllowlist } from "./scpiAllowlist.js";
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
 * the SCPI client; the instrument context reads through the same path. Creating it checks
 * the URI and the allowlist and opens nothing: the link opens on the first query.
 */
export class InstrumentBridge {
  readonly description: string;
  readonly allowlist: ScpiAllowlist;
  readonly client: ScpiClient;
  readonly context: InstrumentContext;
  /** The in-process simulator when the URI is `sim`. */
  readonly simulator: SpectrumAnalyzerSimulator | undefined;
  readonly #logger: Logger | undefined;

  constructor(options: InstrumentBridgeOptions) {
    const address = parseInstrumentUri(options.uri);
    if (!address) throw new AgentError("IA_ERR_INSTRUMENT_URI", "--instrument off: no instrument is configured");
    this.allowlist = createAllowlist(options.allow);
    this.description = describeAddress(address);
    this.#logger = options.logger?.child({ component: "instrument" });
    const timeoutMs = options.timeoutMs ?? 3000;
    const link = createLink(address, timeoutMs, options.createSerialLink ?? ((o) => new SerialPortLink(o)));
    this.simulator = link instanceof SimulatorLink ? link.simulator : undefined;
    this.client = new ScpiClient({ link, timeoutMs, logger: this.#logger });
    this.context = new InstrumentContext({
      query: (line) => this.query(line),
      description: this.description,
      cacheMs: options.contextCacheMs ?? 3000,
      logger: this.#logger,
    });
  }

  /**
   * Sends one line if every part is an allowlisted query; `;`-joined queries are sent one
   * by one and their replies joined with `;`. Refusals throw IA_ERR_SCPI_REFUSED (exit 2)
   * before anything is sent.
   */
  async query(line: string): Promise<string> {
    const checked = this.allowlist.check(line);
    if (!checked.ok) {
      this.#logger?.warn({ line, refusals: checked.refusals }, "scpi line refused");
      throw new AgentError("IA_ERR_SCPI_REFUSED", checked.message);
    }
    const replies = await this.client.queryAll(checked.queries.map((q) => q.wire));
    return replies.join(";");
  }

  /** For AnswerService: the instrument summary, never a throw. */
  readonly contextProvider = (): Promise<string> => this.context.render();

  async close(): Promise<void> {
    await this.client.close();
  }
}
