import net from "node:net";
import { LineReader, LinkClosedError } from "./instrumentLink.js";
import type { InstrumentLink } from "./instrumentLink.js";

export interface TcpInstrumentLinkOptions {
  host: string;
  /** Defaults to 5025, the SCPI raw socket. */
  port?: number;
  /** How long connecting may take. Defaults to 3000 ms. */
  connectTimeoutMs?: number;
}

/** SCPI over a raw socket (X-Series analyzers listen on port 5025). Lines end with LF. */
export class TcpInstrumentLink implements InstrumentLink {
  readonly description: string;
  readonly #options: TcpInstrumentLinkOptions;
  readonly #reader = new LineReader();
  #socket: net.Socket | undefined;

  constructor(options: TcpInstrumentLinkOptions) {
    this.#options = options;
    this.description = `tcp://${options.host}:${options.port ?? 5025}`;
  }

  get isOpen(): boolean {
    return this.#socket !== undefined && !this.#socket.destroyed;
  }

  async open(): Promise<void> {
    if (this.isOpen) return;
    this.#reader.reset();
    const socket = net.createConnection({ host: this.#options.host, port: this.#options.port ?? 5025 });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`connecting took longer than ${this.#options.connectTimeoutMs ?? 3000} ms`));
      }, this.#options.connectTimeoutMs ?? 3000);
      socket.once("connect", () => {
        clearTimeout(timer);
        resolve();
      });
      socket.once("error", (error) => {
        clearTimeout(timer);
        reject(error);
      });
    });
    socket.setNoDelay(true);
    socket.on("data", (bytes: Buffer) => this.#reader.push(bytes));
    socket.on("error", (error) => this.#reader.fail(new LinkClosedError(`${this.description}: ${error.message}`, { cause: error })));
    socket.on("close", () => {
      this.#reader.fail(new LinkClosedError(`${this.description}: the instrument closed the connection`));
      if (this.#socket === socket) this.#socket = undefined;
    });
    this.#socket = socket;
  }

  async sendLine(line: string): Promise<void> {
    const socket = this.#socket;
    if (!socket || socket.destroyed) throw new LinkClosedError(`${this.description}: not connected`);
    await new Promise<void>((resolve, reject) =>
      socket.write(`${line}\n`, "latin1", (error) => (error ? reject(new LinkClosedError(error.message, { cause: error })) : resolve())),
    );
  }

  readLine(timeoutMs: number): Promise<string> {
    return this.#reader.read(timeoutMs);
  }

  discardInput(): void {
    this.#reader.discard();
  }

  async close(): Promise<void> {
    const socket = this.#socket;
    this.#socket = undefined;
    if (!socket || socket.destroyed) return;
    await new Promise<void>((resolve) => {
      socket.once("close", () => resolve());
      socket.end();
      setTimeout(() => socket.destroy(), 500).unref();
    });
  }
}
