import type { SerialLink, SerialLinkEvents, SerialLinkOptions } from "./serialLink.js";

/**
 * The one module that imports `serialport`. It is imported lazily: hosts without a serial
 * console or serial instrument never load the native binding.
 */

type SerialPortModule = typeof import("serialport");
type SerialPortInstance = InstanceType<SerialPortModule["SerialPort"]>;

let serialPortModule: Promise<SerialPortModule> | undefined;
function loadSerialPort(): Promise<SerialPortModule> {
  serialPortModule ??= import("serialport");
  return serialPortModule;
}

function callbackPromise(run: (done: (error?: Error | null) => void) => void): Promise<void> {
  return new Promise((resolve, reject) => run((error) => (error ? reject(error) : resolve())));
}

export class SerialPortLink implements SerialLink {
  readonly path: string;
  readonly #options: SerialLinkOptions;
  #port: SerialPortInstance | undefined;

  constructor(options: SerialLinkOptions) {
    this.path = options.path;
    this.#options = options;
  }

  get isOpen(): boolean {
    return this.#port?.isOpen ?? false;
  }

  async open(events: SerialLinkEvents): Promise<void> {
    const { SerialPort } = await loadSerialPort();
    const flow = this.#options.flowControl ?? "none";
    const port = new SerialPort({
      path: this.path,
      baudRate: this.#options.baudRate ?? 115200,
      dataBits: this.#options.dataBits ?? 8,
      parity: this.#options.parity ?? "none",
      stopBits: this.#options.stopBits ?? 1,
      rtscts: flow === "rtscts",
      xon: flow === "xonxoff",
      xoff: flow === "xonxoff",
      autoOpen: false,
      // Another program holding the port would garble both conversations.
      lock: true,
    });
    await callbackPromise((done) => port.open(done));
    this.#port = port;
    port.on("data", (bytes: Buffer) => safely(() => events.onData?.(bytes)));
    port.on("error", (error: Error) => safely(() => events.onError?.(error)));
    port.on("close", (error?: Error & { disconnected?: boolean }) => {
      if (this.#port === port) this.#port = undefined;
      safely(() => events.onClose?.({ disconnected: Boolean(error?.disconnected), ...(error ? { error } : {}) }));
    });
  }

  async write(bytes: Buffer | string): Promise<void> {
    const port = this.#port;
    if (!port?.isOpen) throw new Error(`serial port ${this.path} is not open`);
    await callbackPromise((done) => port.write(bytes, (error) => done(error ?? null)));
    await callbackPromise((done) => port.drain(done));
  }

  async flushOutput(): Promise<void> {
    const port = this.#port;
    if (!port?.isOpen) return;
    await callbackPromise((done) => port.flush(done));
  }

  async close(): Promise<void> {
    const port = this.#port;
    this.#port = undefined;
    if (!port?.isOpen) return;
    await callbackPromise((done) => port.close(done)).catch(() => undefined);
  }
}

/** Listener failures must never reach serialport's emitter (an uncaught throw there ends the process). */
function safely(run: () => void): void {
  try {
    run();
  } catch {
    // deliberately ignored: the link outlives any one listener
  }
}
