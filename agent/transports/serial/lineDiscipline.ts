import { displayWidth, eraseColumns, lastGrapheme, toCharset } from "./serialText.js";
import type { SerialCharset } from "./serialText.js";

export interface LineDisciplineOptions {
  /** Most characters (code points) in one line; a longer line is refused at Enter. Defaults to 1000. */
  maxChars?: number;
  /** `ascii` echoes `?` for what an ASCII terminal cannot show. Defaults to `utf8`. */
  charset?: SerialCharset;
}

/** What a burst of input bytes means, in order. */
export type LineEvent =
  /** Bytes to send back so the terminal shows what was typed (or erased). */
  | { kind: "echo"; text: string }
  /** Enter on a good line. */
  | { kind: "line"; text: string }
  /** Enter on a line that cannot be used; `detail` says why, naming the byte or the length. */
  | { kind: "refused"; reason: "too-long" | "invalid-utf8"; detail: string }
  /** Ctrl-C; the line typed so far is discarded. */
  | { kind: "interrupt" };

const CTRL_C = 0x03;
const BACKSPACE = 0x08;
const TAB = 0x09;
const LF = 0x0a;
const CR = 0x0d;
const CTRL_U = 0x15;
const CTRL_W = 0x17;
const ESC = 0x1b;
const DEL = 0x7f;
const BELL = "\u0007";

type EscapeState = "none" | "esc" | "csi" | "ss3";

/**
 * The line discipline of a serial console for a person at a terminal, as a pure state
 * machine: bytes in, events out. UTF-8 is decoded across chunk boundaries; Backspace and
 * DEL erase one whole character (two columns for CJK); Ctrl-U clears the line, Ctrl-W the
 * last word; CR, LF and CRLF each end a line exactly once (also when CR and LF arrive in
 * different chunks); cursor-key escape sequences and other control bytes are ignored.
 * Invalid UTF-8 is never echoed; the line it was in is refused at Enter.
 */
export class LineDiscipline {
  readonly #maxChars: number;
  readonly #charset: SerialCharset;
  #line = "";
  #chars = 0;
  /** Characters typed past the limit: not stored, not echoed, but counted so Backspace can undo them. */
  #overflow = 0;
  #badByte: { byte: number; at: number } | undefined;
  #afterCr = false;
  #escape: EscapeState = "none";
  #utf8Need = 0;
  #utf8CodePoint = 0;
  #utf8Min = 0;
  #utf8Lead = 0;

  constructor(options: LineDisciplineOptions = {}) {
    this.#maxChars = options.maxChars ?? 1000;
    this.#charset = options.charset ?? "utf8";
  }

  /** The line typed so far. */
  get line(): string {
    return this.#line;
  }

  /** Forgets the line typed so far (and any half-received character or escape sequence). */
  clearLine(): void {
    this.#line = "";
    this.#chars = 0;
    this.#overflow = 0;
    this.#badByte = undefined;
    this.#escape = "none";
    this.#utf8Need = 0;
  }

  feed(bytes: Uint8Array): LineEvent[] {
    const events: LineEvent[] = [];
    const echo = (text: string) => {
      if (text === "") return;
      const last = events.at(-1);
      if (last?.kind === "echo") last.text += text;
      else events.push({ kind: "echo", text });
    };
    for (const byte of bytes) this.#byte(byte, events, echo);
    return events;
  }

  #byte(byte: number, events: LineEvent[], echo: (text: string) => void): void {
    if (this.#utf8Need > 0) {
      if ((byte & 0xc0) === 0x80) {
        this.#utf8CodePoint = (this.#utf8CodePoint << 6) | (byte & 0x3f);
        if (--this.#utf8Need === 0) this.#codePoint(this.#utf8CodePoint, echo);
        return;
      }
      // The sequence was cut short: its lead byte is the bad one; this byte starts afresh.
      this.#markBad(this.#utf8Lead);
      this.#utf8Need = 0;
    }
    const afterCr = this.#afterCr;
    this.#afterCr = false;
    if (byte === CR || byte === LF) {
      this.#escape = "none";
      if (byte === LF && afterCr) return;
      this.#afterCr = byte === CR;
      this.#enter(events, echo);
      return;
    }
    if (byte === 0) {
      // Telnet-style CR NUL is one Enter too.
      this.#afterCr = afterCr;
      return;
    }
    if (this.#escape !== "none" && this.#inEscape(byte)) return;
    if (byte < 0x20 || byte === DEL) {
      this.#control(byte, events, echo);
      return;
    }
    if (byte < 0x80) {
      this.#codePoint(byte, echo);
      return;
    }
    if (byte >= 0xc2 && byte <= 0xdf) this.#startSequence(byte, 1, byte & 0x1f, 0x80);
    else if (byte >= 0xe0 && byte <= 0xef) this.#startSequence(byte, 2, byte & 0x0f, 0x800);
    else if (byte >= 0xf0 && byte <= 0xf4) this.#startSequence(byte, 3, byte & 0x07, 0x10000);
    else this.#markBad(byte);
  }

  #startSequence(lead: number, need: number, bits: number, min: number): void {
    this.#utf8Lead = lead;
    this.#utf8Need = need;
    this.#utf8CodePoint = bits;
    this.#utf8Min = min;
  }

  /** Swallows cursor keys and other escape sequences; returns false when `byte` ends the sequence abnormally. */
  #inEscape(byte: number): boolean {
    if (byte < 0x20 || byte >= 0x7f) {
      this.#escape = "none";
      return false;
    }
    if (this.#escape === "esc") this.#escape = byte === 0x5b ? "csi" : byte === 0x4f ? "ss3" : "none";
    else if (this.#escape === "ss3") this.#escape = "none";
    else if (byte >= 0x40) this.#escape = "none";
    return true;
  }

  #control(byte: number, events: LineEvent[], echo: (text: string) => void): void {
    switch (byte) {
      case CTRL_C:
        this.clearLine();
        events.push({ kind: "interrupt" });
        return;
      case BACKSPACE:
      case DEL:
        echo(this.#eraseOne());
        return;
      case CTRL_U:
        echo(this.#eraseWhile(() => true));
        return;
      case CTRL_W: {
        let seenWord = false;
        echo(
          this.#eraseWhile((char) => {
            if (char.trim() !== "") seenWord = true;
            else if (seenWord) return false;
            return true;
          }),
        );
        return;
      }
      case TAB:
        this.#codePoint(0x20, echo);
        return;
      case ESC:
        this.#escape = "esc";
        return;
      default:
      // Other control bytes (Ctrl-D, XON/XOFF arriving as data, NUL) mean nothing to a line.
    }
  }

  #codePoint(codePoint: number, echo: (text: string) => void): void {
    if (codePoint > 0x7f) {
      const lead = this.#utf8Lead;
      if (codePoint < this.#utf8Min || codePoint > 0x10ffff || (codePoint >= 0xd800 && codePoint <= 0xdfff)) {
        this.#markBad(lead);
        return;
      }
      // C1 controls are as meaningless to a line as C0 ones.
      if (codePoint <= 0x9f) return;
    }
    if (this.#chars >= this.#maxChars) {
      if (this.#overflow === 0) echo(BELL);
      this.#overflow += 1;
      return;
    }
    const char = String.fromCodePoint(codePoint);
    this.#line += char;
    this.#chars += 1;
    echo(toCharset(char, this.#charset).text);
  }

  #markBad(byte: number): void {
    this.#badByte ??= { byte, at: this.#chars + this.#overflow + 1 };
  }

  #eraseOne(): string {
    if (this.#overflow > 0) {
      this.#overflow -= 1;
      return "";
    }
    const last = lastGrapheme(this.#line);
    if (last === "") return "";
    this.#line = this.#line.slice(0, -last.length);
    this.#chars -= [...last].length;
    return eraseColumns(displayWidth(toCharset(last, this.#charset).text, this.#charset));
  }

  /** Erases whole characters from the end while `keep` says so; Ctrl-U also forgets bad bytes. */
  #eraseWhile(erase: (char: string) => boolean): string {
    this.#overflow = 0;
    let columns = 0;
    for (;;) {
      const last = lastGrapheme(this.#line);
      if (last === "" || !erase(last)) break;
      this.#line = this.#line.slice(0, -last.length);
      this.#chars -= [...last].length;
      columns += displayWidth(toCharset(last, this.#charset).text, this.#charset);
    }
    if (this.#line === "") this.#badByte = undefined;
    return eraseColumns(columns);
  }

  #enter(events: LineEvent[], echo: (text: string) => void): void {
    if (this.#utf8Need > 0) this.#markBad(this.#utf8Lead);
    echo("\r\n");
    const typed = this.#chars + this.#overflow;
    const bad = this.#badByte;
    const line = this.#line;
    this.clearLine();
    if (bad) {
      const hex = `0x${bad.byte.toString(16).padStart(2, "0")}`;
      events.push({
        kind: "refused",
        reason: "invalid-utf8",
        detail: `byte ${hex} at character ${bad.at} is not UTF-8; set the terminal to UTF-8 (or start the agent with --serial-charset ascii and type ASCII)`,
      });
    } else if (typed > this.#maxChars) {
      events.push({
        kind: "refused",
        reason: "too-long",
        detail: `the line has ${typed} characters; the limit is ${this.#maxChars} (--serial-line-limit)`,
      });
    } else {
      events.push({ kind: "line", text: line });
    }
  }
}
