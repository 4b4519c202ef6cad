/**
 * One way of exchanging SCPI lines with an instrument: a raw socket, a serial line, a
 * Prologix GPIB-USB adapter, or the in-process simulator. The SCPI client talks to this
 * only; it adds the allowlist, one query in flight, timeouts, reconnect and error drain.
 */
export interface InstrumentLink {
  /** For messages: `tcp://10.0.0.5:5025`, `serial:///dev/ttyUSB0`. */
  readonly description: string;
  readonly isOpen: boolean;
  /** Connects or opens the port; rejects with the OS reason. */
  open(): Promise<void>;
  /** Sends one program message; the link adds the line terminator. */
  sendLine(line: string): Promise<void>;
  /** The next reply line without its terminator; rejects with a `LinkTimeoutError` after `timeoutMs`. */
  readLine(timeoutMs: number): Promise<string>;
  /** Forgets bytes received but not yet read (a reply that arrived after its timeout). */
  discardInput(): void;
  /** Closes; idempotent. */
  close(): Promise<void>;
}

/** No reply line within the timeout; the link itself may still be fine. */
export class LinkTimeoutError extends Error {
  readonly timedOut = true;
  constructor(timeoutMs: number) {
    super(`no reply within ${timeoutMs} ms`);
    this.name = "LinkTimeoutError";
  }
}

/** The link went away (socket closed, port removed): reopen before the next query. */
export class LinkClosedError extends Error {
  readonly disconnected = true;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "LinkClosedError";
  }
}

/** Longest reply line kept; a trace dump is not something the agent asks for. */
const MAX_LINE_BYTES = 1 << 20;

/** Splits incoming bytes into lines (LF, with an optional CR before it) for one reader at a time. */
export class LineReader {
  #buffer = "";
  #lines: string[] = [];
  #failure: Error | undefined;
  #waiter: { resolve: (line: string) => void; reject: (error: Error) => void; timer: NodeJS.Timeout } | undefined;

  push(bytes: Buffer | string): void {
    this.#buffer += typeof bytes === "string" ? bytes : bytes.toString("latin1");
    let newline = this.#buffer.indexOf("\n");
    while (newline >= 0) {
      this.#lines.push(this.#buffer.slice(0, newline).replace(/\r$/, ""));
      this.#buffer = this.#buffer.slice(newline + 1);
      newline = this.#buffer.indexOf("\n");
    }
    if (this.#buffer.length > MAX_LINE_BYTES) this.#buffer = "";
    this.#deliver();
  }

  /** Every later read fails with this error until `reset()`. */
  fail(error: Error): void {
    this.#failure ??= error;
    const waiter = this.#waiter;
    if (!waiter) return;
    this.#waiter = undefined;
    clearTimeout(waiter.timer);
    waiter.reject(error);
  }

  reset(): void {
    this.#failure = undefined;
    this.discard();
  }

  discard(): void {
    this.#buffer = "";
    this.#lines = [];
  }

  read(timeoutMs: number): Promise<string> {
    const ready = this.#lines.shift();
    if (ready !== undefined) return Promise.resolve(ready);
    if (this.#failure) return Promise.reject(this.#failure);
    if (this.#waiter) return Promise.reject(new Error("another read is already waiting on this link"));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiter = undefined;
        reject(new LinkTimeoutError(timeoutMs));
      }, timeoutMs);
      this.#waiter = { resolve, reject, timer };
    });
  }

  #deliver(): void {
    const waiter = this.#waiter;
    if (!waiter) return;
    const line = this.#lines.shift();
    if (line === undefined) return;
    this.#waiter = undefined;
    clearTimeout(waiter.timer);
    waiter.resolve(line);
  }
}
