/**
 * Text as a serial terminal shows it: column widths (CJK is two columns wide), whole
 * characters (grapheme clusters) and what an ASCII-only terminal can show.
 */

export type SerialCharset = "utf8" | "ascii";

/** Code points a terminal draws two columns wide (East Asian Wide and Fullwidth, emoji). */
const WIDE_RANGES: readonly (readonly [number, number])[] = [
  [0x1100, 0x115f],
  [0x231a, 0x231b],
  [0x2329, 0x232a],
  [0x23e9, 0x23ec],
  [0x25fd, 0x25fe],
  [0x2614, 0x2615],
  [0x2e80, 0x303e],
  [0x3041, 0x33ff],
  [0x3400, 0x4dbf],
  [0x4e00, 0x9fff],
  [0xa000, 0xa4cf],
  [0xa960, 0xa97f],
  [0xac00, 0xd7a3],
  [0xf900, 0xfaff],
  [0xfe10, 0xfe19],
  [0xfe30, 0xfe6f],
  [0xff00, 0xff60],
  [0xffe0, 0xffe6],
  [0x1f300, 0x1f64f],
  [0x1f680, 0x1f6ff],
  [0x1f900, 0x1f9ff],
  [0x20000, 0x2fffd],
  [0x30000, 0x3fffd],
];

/** Combining marks, zero-width joiners and variation selectors take no column of their own. */
const ZERO_WIDTH = /^[\p{Mn}\p{Me}\u200b-\u200f\u2060\ufe00-\ufe0f\ufeff]$/u;

export function codePointWidth(codePoint: number): 0 | 1 | 2 {
  const char = String.fromCodePoint(codePoint);
  if (ZERO_WIDTH.test(char)) return 0;
  for (const [low, high] of WIDE_RANGES) {
    if (codePoint < low) break;
    if (codePoint <= high) return 2;
  }
  return 1;
}

/** Columns a piece of text takes on the terminal, after ASCII replacement when the charset asks for it. */
export function displayWidth(text: string, charset: SerialCharset): number {
  let width = 0;
  for (const char of text) {
    const codePoint = char.codePointAt(0) ?? 0;
    width += charset === "ascii" ? 1 : codePointWidth(codePoint);
  }
  return width;
}

/** What the terminal can show: with `ascii`, each code point outside printable ASCII becomes `?`. */
export function toCharset(text: string, charset: SerialCharset): { text: string; replaced: boolean } {
  if (charset === "utf8") return { text, replaced: false };
  let replaced = false;
  const shown = text.replace(/[^\x20-\x7e\r\n\t\b]/gu, () => {
    replaced = true;
    return "?";
  });
  return { text: shown, replaced };
}

const segmenter = new Intl.Segmenter(undefined, { granularity: "grapheme" });

/** The last whole character (grapheme cluster) of `text`, e.g. `e` plus its combining accent. */
export function lastGrapheme(text: string): string {
  let last = "";
  // Only the tail can hold the last cluster; keep the scan short on long lines.
  for (const { segment } of segmenter.segment(text.slice(-32))) last = segment;
  return last;
}

/** The Backspace sequence that erases `columns` columns on a plain terminal: `\b\b  \b\b` for one CJK character. */
export function eraseColumns(columns: number): string {
  if (columns <= 0) return "";
  return "\b".repeat(columns) + " ".repeat(columns) + "\b".repeat(columns);
}
