import { within } from "../../../common/async.js";
import type { Logger } from "../../../common/logger.js";
import type { SerialLink } from "../../../common/serial/serialLink.js";

/** Bytes per write: small, so a cancel at 9600 baud leaves little already in flight (about 0.1 s). */
const WRITE_CHUNK = 128;

/**
 * What goes down one open port: text is queued here and written one small chunk at a time,
 * each awaited until drained, so a slow line holds its backlog in the agent (where Ctrl-C can
 * drop it) and little in the OS. One pump serves one open port: when the port goes away it is
 * closed and a reopened port gets a new pump, so a write stuck on the vanished port cannot hold
 * up the new one.
 */
export class OutputPump {
  readonly #link: SerialLink;
  readonly #log: Logger;
  #pending: Buffer[] = [];
  /** The write loop while it runs; undefined when everything queued has been written. */
  #running: Promise<void> | undefined;
  #inFlight: Promise<void> | undefined;
  #closed = false;
  #whenClosed: Promise<void>;
  #markClosed!: () => void;

  constructor(link: SerialLink, log: Logger) {
    this.#link = link;
    this.#log = log;
    this.#whenClosed = new Promise((resolve) => (this.#markClosed = resolve));
  }

  /** Queues text; nothing once the pump is closed or the port is not open. */
  send(text: string): void {
    if (text === "" || this.#closed || !this.#link.isOpen) return;
    this.#pending.push(Buffer.from(text, "utf8"));
    this.#running ??= this.#run().finally(() => (this.#running = undefined));
  }

  /** Resolves once everything queued has gone out, or the pump was closed. */
  async drained(): Promise<void> {
    while (this.#running && !this.#closed) await Promise.race([this.#running, this.#whenClosed]);
  }

  /** Drops what is queued here (not what the OS holds already). */
  dropQueued(): void {
    this.#pending = [];
  }

  /**
   * Ctrl-C: drops what waits here and in the OS. The chunk in flight finishes into the emptied
   * OS buffer, so the OS is flushed once more after it (waiting at most `inFlightWaitMs`), and
   * nothing of the old backlog trails the notice that follows.
   */
  async discardBacklog(inFlightWaitMs: number): Promise<void> {
    this.dropQueued();
    await this.#link.flushOutput().catch(() => undefined);
    if (this.#inFlight) await within(this.#inFlight, inFlightWaitMs);
    this.dropQueued();
    await this.#link.flushOutput().catch(() => undefined);
  }

  /** The port went away or is closing for good: drops the backlog and writes nothing more. */
  close(): void {
    this.#closed = true;
    this.#pending = [];
    this.#markClosed();
  }

  async #run(): Promise<void> {
    while (this.#pending.length > 0 && this.#link.isOpen && !this.#closed) {
      const all = Buffer.concat(this.#pending);
      const chunk = all.subarray(0, WRITE_CHUNK);
      this.#pending = all.length > WRITE_CHUNK ? [all.subarray(WRITE_CHUNK)] : [];
      this.#inFlight = this.#link.write(chunk).catch((error: unknown) => this.#log.debug({ err: error }, "serial write failed"));
      await this.#inFlight;
      this.#inFlight = undefined;
    }
  }
}
