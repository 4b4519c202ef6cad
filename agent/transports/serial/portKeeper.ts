import { Backoff } from "../../../common/backoff.js";
import { AgentError } from "../../../common/errors.js";
import type { Logger } from "../../../common/logger.js";
import type { SerialLink } from "../../../common/serial/serialLink.js";

export interface PortKeeperOptions {
  link: SerialLink;
  logger: Logger;
  /** For the open log line, e.g. `/dev/ttyUSB0 9600 8N1, flow none`. Defaults to none. */
  lineLabel?: string | undefined;
  /** First wait before reopening, ms; doubles each try. */
  firstMs: number;
  /** Longest wait between tries, ms. */
  maxMs: number;
  /** The port is open (at start or again after it went away). */
  onOpen(): void;
  onData(bytes: Buffer): void;
  /** The port went away while served; the keeper is already waiting to reopen it. */
  onLost(): void;
}

/**
 * Where the port is: `stopped` (before start, after stop), `opening`, `open`, or `waiting` for
 * the next try after it was missing or went away.
 */
export type PortState = "stopped" | "opening" | "open" | "waiting";

/**
 * Keeps the serial port open while the console is served: a port that is missing at start or
 * goes away (USB-serial unplugged) is logged once per kind of failure and reopened with backoff
 * (no jitter: one agent, one port, nobody to fall into step with). The waits are plain timers,
 * so `vi.useFakeTimers()` runs them in tests.
 */
export class PortKeeper {
  readonly #options: PortKeeperOptions;
  readonly #link: SerialLink;
  readonly #log: Logger;
  readonly #backoff: Backoff;
  #state: PortState = "stopped";
  #timer: NodeJS.Timeout | undefined;
  /** Why the last open failed ("went away" after an unplug): said once, then the retries go to debug. */
  #lastError: string | undefined;

  constructor(options: PortKeeperOptions) {
    this.#options = options;
    this.#link = options.link;
    this.#log = options.logger;
    this.#backoff = new Backoff({ firstMs: options.firstMs, maxMs: options.maxMs });
  }

  get state(): PortState {
    return this.#state;
  }

  /** Tries to open at once; a missing port is logged and retried, not fatal. */
  async start(): Promise<void> {
    if (this.#state !== "stopped") return;
    this.#state = "opening";
    await this.#open();
  }

  /** No more reopening; closes the port. */
  async stop(): Promise<void> {
    this.#state = "stopped";
    clearTimeout(this.#timer);
    await this.#link.close();
  }

  async #open(): Promise<void> {
    try {
      await this.#link.open({
        onData: (bytes) => this.#options.onData(bytes),
        onClose: ({ disconnected, error }) => this.#onClose(disconnected, error),
        onError: (error) => this.#log.warn({ err: error, path: this.#link.path }, "serial port error"),
      });
    } catch (error) {
      if (this.#state === "stopped") return;
      this.#failed(error as Error);
      return;
    }
    if (this.#state === "stopped") {
      await this.#link.close();
      return;
    }
    this.#log.info(
      { path: this.#link.path, line: this.#options.lineLabel },
      this.#lastError ? "serial port is back; console open" : "serial console open",
    );
    this.#lastError = undefined;
    this.#backoff.reset();
    this.#state = "open";
    this.#options.onOpen();
  }

  #failed(error: Error): void {
    const message = error.message;
    const agentError = new AgentError(
      "IA_ERR_SERIAL_PORT",
      `serial port ${this.#link.path} cannot be opened (${message}); the agent keeps serving and retries (backoff up to ${this.#options.maxMs / 1000} s) until it appears`,
      { cause: error },
    );
    if (message !== this.#lastError) this.#log.warn({ err: agentError, path: this.#link.path }, agentError.message);
    else this.#log.debug({ path: this.#link.path, retryMs: this.#backoff.pendingMs }, "serial port still cannot be opened");
    this.#lastError = message;
    this.#retryLater();
  }

  #onClose(disconnected: boolean, error: Error | undefined): void {
    if (this.#state === "stopped") return;
    this.#lastError = "went away";
    this.#log.warn(
      { path: this.#link.path, disconnected, err: error },
      `serial port ${this.#link.path} went away; reopening when it comes back`,
    );
    this.#backoff.reset();
    this.#retryLater();
    this.#options.onLost();
  }

  #retryLater(): void {
    this.#state = "waiting";
    clearTimeout(this.#timer);
    // Not unref'd: a missing port is a transport that is still being served.
    this.#timer = setTimeout(() => {
      if (this.#state !== "waiting") return;
      this.#state = "opening";
      void this.#open();
    }, this.#backoff.next());
  }
}
