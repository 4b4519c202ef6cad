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
  /**
   * The next reply without its terminator: a line, or a whole definite-length block (latin1,
   * one character per byte). Rejects with a `LinkTimeoutError` after `timeoutMs` without a byte
   * (the wait starts again with each chunk that arrives), or a
   * `LinkReplyError` for a reply it cannot hand on.
   */
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

/** A reply the link received but cannot hand on (too long, or a block it cannot delimit). */
export class LinkReplyError extends Error {
  readonly badReply = true;
  /** Whether the reader found the reply's end, so the next reply is read correctly; if not, reopen the link. */
  readonly resynced: boolean;
  constructor(message: string, resynced: boolean) {
    super(message);
    this.name = "LinkReplyError";
    this.resynced = resynced;
  }
}

/**
 * Longest reply kept, line or block: a 40001-point ASCII trace at up to 50 characters a
 * point fits, and so does a 100001-point REAL,64 block.
 */
export const MAX_REPLY_BYTES = 2 << 20;

const tooLong = (what: string) => `${what}, more than the ${MAX_REPLY_BYTES} bytes (2 MiB) a reply may hold`;

/**
 * Splits incoming bytes into replies for one reader at a time: lines ending in LF (with an
 * optional CR before it), and IEEE 488.2 definite-length blocks (`#<n><len><bytes>`, whose
 * bytes may hold LF) read as the header and exactly `len` bytes, the LF after them dropped.
 * Replies are latin1 strings, one character per byte, so a block's bytes arrive intact.
 */
export class LineReader {
  #buffer = "";
  #replies: (string | LinkReplyError)[] = [];
  /** Bytes of a refused block still to come, dropped as they arrive. */
  #skipBytes = 0;
  /** Drop everything up to the next LF (the rest of a refused reply). */
  #skipLine = false;
  /** A block was just read: an LF (or CR LF) next is its terminator. */
  #afterBlock = false;
  #failure: Error | undefined;
  #waiter: { resolve: (line: string) => void; reject: (error: Error) => void; timer: NodeJS.Timeout } | undefined;

  push(bytes: Buffer | string): void {
    this.#buffer += typeof bytes === "string" ? bytes : bytes.toString("latin1");
    // The timeout is for silence, not for the whole reply: a long trace on a slow serial
    // line keeps its read alive as long as bytes keep coming (the 2 MiB cap bounds it).
    this.#waiter?.timer.refresh();
    while (this.#buffer !== "" && this.#next()) {
      // #next took one reply, or skipped bytes, off the buffer.
    }
    this.#deliver();
  }

  /** Takes one step off the buffer; false when it needs more bytes. */
  #next(): boolean {
    if (this.#skipBytes > 0) {
      const dropped = Math.min(this.#skipBytes, this.#buffer.length);
      this.#skipBytes -= dropped;
      this.#buffer = this.#buffer.slice(dropped);
      this.#afterBlock = this.#skipBytes === 0;
      return this.#skipBytes === 0;
    }
    if (this.#skipLine) {
      const newline = this.#buffer.indexOf("\n");
      this.#buffer = newline < 0 ? "" : this.#buffer.slice(newline + 1);
      this.#skipLine = newline < 0;
      return newline >= 0;
    }
    if (this.#afterBlock) {
      if (this.#buffer === "\r") return false;
      this.#afterBlock = false;
      const terminator = this.#buffer.startsWith("\r\n") ? 2 : this.#buffer.startsWith("\n") ? 1 : 0;
      this.#buffer = this.#buffer.slice(terminator);
      return true;
    }
    if (this.#buffer[0] === "#" && this.#buffer.length < 2) return false;
    if (this.#buffer[0] === "#" && /[0-9]/.test(this.#buffer[1]!)) return this.#block();
    const newline = this.#buffer.indexOf("\n");
    if (newline > MAX_REPLY_BYTES || (newline < 0 && this.#buffer.length > MAX_REPLY_BYTES)) {
      this.#refuse(tooLong(`has no line end in its first ${MAX_REPLY_BYTES} bytes`), true);
      this.#skipLine = true;
      return true;
    }
    if (newline < 0) return false;
    this.#replies.push(this.#buffer.slice(0, newline).replace(/\r$/, ""));
    this.#buffer = this.#buffer.slice(newline + 1);
    return true;
  }

  /** The buffer starts with `#` and a digit: a binary block. */
  #block(): boolean {
    const digits = Number(this.#buffer[1]);
    if (digits === 0) {
      // Its end is an LF with EOI, which a byte stream does not carry: nothing after it can be trusted.
      this.#refuse("is an indefinite-length block (#0); only definite-length blocks (#<n><len>) are read", false);
      this.#skipLine = true;
      return true;
    }
    if (this.#buffer.length < 2 + digits) return false;
    const lengthText = this.#buffer.slice(2, 2 + digits);
    if (!/^\d+$/.test(lengthText)) {
      this.#refuse(`has a block header whose length ${JSON.stringify(lengthText)} is not ${digits} decimal digits`, false);
      this.#skipLine = true;
      return true;
    }
    const total = 2 + digits + Number(lengthText);
    if (total > MAX_REPLY_BYTES) {
      this.#refuse(tooLong(`is a block of ${total} bytes`), true);
      this.#skipBytes = total;
      return true;
    }
    if (this.#buffer.length < total) return false;
    this.#replies.push(this.#buffer.slice(0, total));
    this.#buffer = this.#buffer.slice(total);
    this.#afterBlock = true;
    return true;
  }

  #refuse(message: string, resynced: boolean): void {
    this.#replies.push(new LinkReplyError(message, resynced));
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

  /** Forgets everything, the rest of a refused reply included: the link was reopened. */
  reset(): void {
    this.#failure = undefined;
    this.#skipBytes = 0;
    this.#skipLine = false;
    this.#afterBlock = false;
    this.discard();
  }

  /** Forgets what arrived and was not read; the rest of a reply already being skipped is still skipped. */
  discard(): void {
    this.#buffer = "";
    this.#replies = [];
  }

  read(timeoutMs: number): Promise<string> {
    const ready = this.#replies.shift();
    if (ready !== undefined) return typeof ready === "string" ? Promise.resolve(ready) : Promise.reject(ready);
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
    const reply = this.#replies.shift();
    if (reply === undefined) return;
    this.#waiter = undefined;
    clearTimeout(waiter.timer);
    if (typeof reply === "string") waiter.resolve(reply);
    else waiter.reject(reply);
  }
}
