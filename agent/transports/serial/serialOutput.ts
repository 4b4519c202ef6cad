import { codePointWidth, toCharset } from "./serialText.js";
import type { SerialCharset } from "./serialText.js";

export interface SerialOutputOptions {
  /** `ascii` replaces what an ASCII terminal cannot show with `?`. Defaults to `utf8`. */
  charset?: SerialCharset;
  /** Break lines at this many columns; 0 leaves wrapping to the terminal. Defaults to 0. */
  wrap?: number;
}

const TAB_STOP = 8;

/**
 * Turns text (streamed answer deltas, messages) into what goes down the line: CRLF line
 * ends only (a bare LF never reaches the terminal), no control bytes from the model, wrap
 * at N columns counting CJK as two, and ASCII replacement. It remembers the column so a
 * prompt always starts on a fresh line, and a surrogate pair split across deltas is kept whole.
 */
export class SerialOutput {
  readonly #charset: SerialCharset;
  readonly #wrap: number;
  #column = 0;
  #pendingHigh = "";
  #replaced = false;

  constructor(options: SerialOutputOptions = {}) {
    this.#charset = options.charset ?? "utf8";
    this.#wrap = options.wrap ?? 0;
  }

  /** The column the cursor is in (0 at the start of a line). */
  get column(): number {
    return this.#column;
  }

  /** Whether anything was replaced for an ASCII terminal since the last call; resets the flag. */
  takeReplaced(): boolean {
    const replaced = this.#replaced;
    this.#replaced = false;
    return replaced;
  }

  /** Tells the formatter the cursor is at the start of a line (after an echoed Enter). */
  atLineStart(): void {
    this.#column = 0;
  }

  /** `\r\n` when the cursor is not at the start of a line, else nothing. */
  endLine(): string {
    this.#pendingHigh = "";
    if (this.#column === 0) return "";
    this.#column = 0;
    return "\r\n";
  }

  format(input: string): string {
    let text = this.#pendingHigh + input;
    this.#pendingHigh = "";
    const lastUnit = text.charCodeAt(text.length - 1);
    if (lastUnit >= 0xd800 && lastUnit <= 0xdbff) {
      this.#pendingHigh = text.slice(-1);
      text = text.slice(0, -1);
    }
    let out = "";
    for (const char of text) {
      const codePoint = char.codePointAt(0) ?? 0;
      if (char === "\n") {
        out += "\r\n";
        this.#column = 0;
        continue;
      }
      if (char === "\t") {
        const spaces = TAB_STOP - (this.#column % TAB_STOP);
        out += this.#place(" ".repeat(spaces), spaces);
        continue;
      }
      // CR, other C0 and C1 controls, DEL and lone surrogates: the model's, never the terminal's business.
      if (codePoint < 0x20 || (codePoint >= 0x7f && codePoint <= 0x9f) || (codePoint >= 0xd800 && codePoint <= 0xdfff)) continue;
      const shown = toCharset(char, this.#charset);
      if (shown.replaced) this.#replaced = true;
      out += this.#place(shown.text, this.#charset === "ascii" ? 1 : codePointWidth(codePoint));
    }
    return out;
  }

  #place(text: string, width: number): string {
    let prefix = "";
    if (this.#wrap > 0 && width > 0 && this.#column + width > this.#wrap && this.#column > 0) {
      prefix = "\r\n";
      this.#column = 0;
      if (text.trim() === "") return prefix;
    }
    this.#column += width;
    return prefix + text;
  }
}
