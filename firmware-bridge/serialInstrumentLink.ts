import type { SerialLink } from "../common/serial/serialLink.js";
import { LineReader, LinkClosedError } from "./instrumentLink.js";
import type { InstrumentLink } from "./instrumentLink.js";

export interface SerialInstrumentLinkOptions {
  /** The serial line, not yet open (a `SerialPortLink`, or a fake in tests). */
  serial: SerialLink;
  /** For messages. Defaults to `serial://<path>`. */
  description?: string;
}

/**
 * SCPI over a serial line: LF-terminated lines both ways. Also the base of the Prologix
 * link, which adds its `++` commands on the same line.
 */
export class SerialInstrumentLink implements InstrumentLink {
  readonly description: string;
  protected readonly serial: SerialLink;
  protected readonly reader = new LineReader();

  constructor(options: SerialInstrumentLinkOptions) {
    this.serial = options.serial;
    this.description = options.description ?? `serial://${options.serial.path}`;
  }

  get isOpen(): boolean {
    return this.serial.isOpen;
  }

  async open(): Promise<void> {
    if (this.serial.isOpen) return;
    this.reader.reset();
    await this.serial.open({
      onData: (bytes) => this.reader.push(bytes),
      onClose: ({ disconnected }) =>
        this.reader.fail(new LinkClosedError(`${this.description}: the port closed${disconnected ? " (device gone)" : ""}`)),
      onError: (error) => this.reader.fail(new LinkClosedError(`${this.description}: ${error.message}`, { cause: error })),
    });
  }

  async sendLine(line: string): Promise<void> {
    await this.writeRaw(`${line}\n`);
  }

  readLine(timeoutMs: number): Promise<string> {
    return this.reader.read(timeoutMs);
  }

  discardInput(): void {
    this.reader.discard();
  }

  async close(): Promise<void> {
    await this.serial.close();
  }

  protected async writeRaw(text: string): Promise<void> {
    if (!this.serial.isOpen) throw new LinkClosedError(`${this.description}: the port is not open`);
    try {
      await this.serial.write(Buffer.from(text, "latin1"));
    } catch (error) {
      throw new LinkClosedError(`${this.description}: ${(error as Error).message}`, { cause: error });
    }
  }
}

/** Prologix escapes: CR, LF, ESC and '+' in data bound for the instrument get an ESC before them. */
export function escapePrologix(data: string): string {
  return data.replace(/[\r\n\u001b+]/g, (c) => `\u001b${c}`);
}

export interface PrologixInstrumentLinkOptions extends SerialInstrumentLinkOptions {
  /** GPIB primary address of the instrument, 0..30. */
  gpibAddress: number;
}

/**
 * A Prologix-style GPIB-USB adapter in controller mode: on open it sends `++mode 1`,
 * `++addr N`, `++auto 0` (the adapter reads only when told to), `++eoi 1` and `++eos 2`
 * (LF to the instrument); each read sends `++read eoi` first.
 */
export class PrologixInstrumentLink extends SerialInstrumentLink {
  readonly gpibAddress: number;

  constructor(options: PrologixInstrumentLinkOptions) {
    super({ ...options, description: options.description ?? `prologix://${options.serial.path}?addr=${options.gpibAddress}` });
    this.gpibAddress = options.gpibAddress;
  }

  override async open(): Promise<void> {
    if (this.serial.isOpen) return;
    await super.open();
    for (const command of ["++mode 1", `++addr ${this.gpibAddress}`, "++auto 0", "++eoi 1", "++eos 2"]) await this.writeRaw(`${command}\n`);
  }

  override async sendLine(line: string): Promise<void> {
    await this.writeRaw(`${escapePrologix(line)}\n`);
  }

  override async readLine(timeoutMs: number): Promise<string> {
    await this.writeRaw("++read eoi\n");
    return this.reader.read(timeoutMs);
  }
}
