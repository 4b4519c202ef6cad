import { describe, expect, it } from "vitest";
import { LineDiscipline } from "../../agent/transports/serial/lineDiscipline.js";
import type { LineEvent } from "../../agent/transports/serial/lineDiscipline.js";
import { SerialOutput } from "../../agent/transports/serial/serialOutput.js";

const bytes = (text: string) => Buffer.from(text, "utf8");
const echoOf = (events: LineEvent[]) =>
  events
    .filter((e) => e.kind === "echo")
    .map((e) => e.text)
    .join("");
const linesOf = (events: LineEvent[]) => events.filter((e) => e.kind === "line").map((e) => e.text);

function feedAll(discipline: LineDiscipline, chunks: (string | Buffer)[]): LineEvent[] {
  return chunks.flatMap((chunk) => discipline.feed(typeof chunk === "string" ? bytes(chunk) : chunk));
}

describe("LineDiscipline", () => {
  it("echoes what is typed and submits on CR, LF and CRLF exactly once each", () => {
    const d = new LineDiscipline();
    expect(echoOf(d.feed(bytes("ab")))).toBe("ab");
    expect(linesOf(feedAll(d, ["\r", "cr\r", "lf\n", "crlf\r\n", "split\r", "\n", "\r\r"]))).toEqual([
      "ab",
      "cr",
      "lf",
      "crlf",
      "split",
      "",
      "",
    ]);
    // LF LF is two Enters; only a CR followed by LF is one.
    expect(linesOf(d.feed(bytes("x\n\n")))).toEqual(["x", ""]);
    expect(echoOf(d.feed(bytes("q\r\n")))).toBe("q\r\n");
  });

  it("decodes UTF-8 split across chunks and echoes a character only when it is whole", () => {
    const d = new LineDiscipline();
    const ni = bytes("你");
    expect(d.feed(ni.subarray(0, 1))).toEqual([]);
    expect(d.feed(ni.subarray(1, 2))).toEqual([]);
    expect(echoOf(d.feed(ni.subarray(2)))).toBe("你");
    expect(linesOf(d.feed(bytes("好\r")))).toEqual(["你好"]);
  });

  it("Backspace and DEL erase one whole character: two columns for CJK, one for a letter with its accent", () => {
    const d = new LineDiscipline();
    d.feed(bytes("a你"));
    expect(echoOf(d.feed(Buffer.from([0x08])))).toBe("\b\b  \b\b");
    expect(d.line).toBe("a");
    expect(echoOf(d.feed(Buffer.from([0x7f])))).toBe("\b \b");
    expect(d.line).toBe("");
    expect(echoOf(d.feed(Buffer.from([0x7f])))).toBe("");
    d.feed(bytes("xe\u0301"));
    expect(echoOf(d.feed(Buffer.from([0x7f])))).toBe("\b \b");
    expect(d.line).toBe("x");
  });

  it("Ctrl-U clears the line, Ctrl-W the last word, and only what is left is submitted", () => {
    const d = new LineDiscipline();
    d.feed(bytes("wrong 你"));
    expect(echoOf(d.feed(Buffer.from([0x15])))).toBe(`${"\b".repeat(8)}${" ".repeat(8)}${"\b".repeat(8)}`);
    d.feed(bytes("first second  "));
    expect(echoOf(d.feed(Buffer.from([0x17])))).toBe(`${"\b".repeat(8)}${" ".repeat(8)}${"\b".repeat(8)}`);
    expect(linesOf(d.feed(bytes("third\r")))).toEqual(["first third"]);
  });

  it("ignores cursor keys and control bytes, turns Tab into a space, and Ctrl-C interrupts and drops the line", () => {
    const d = new LineDiscipline();
    const events = d.feed(bytes("\u001b[A\u001b[1;5C\u001bOBh\u0001\u0004i\tthere\r"));
    expect(linesOf(events)).toEqual(["hi there"]);
    expect(echoOf(events)).toBe("hi there\r\n");
    const interrupted = d.feed(bytes("half\u0003whole\r"));
    expect(interrupted.map((e) => e.kind)).toEqual(["echo", "interrupt", "echo", "line"]);
    expect(linesOf(interrupted)).toEqual(["whole"]);
  });

  it("refuses a line with invalid UTF-8, naming the byte, and never echoes the bad bytes", () => {
    const d = new LineDiscipline();
    const events = d.feed(Buffer.from([0x61, 0x62, 0xff, 0x63, 0x0d]));
    expect(echoOf(events)).toBe("abc\r\n");
    expect(events.at(-1)).toMatchObject({ kind: "refused", reason: "invalid-utf8" });
    expect(JSON.stringify(events.at(-1))).toContain("0xff at character 3");
    // A sequence cut short, an overlong form and a UTF-16 surrogate are each refused.
    for (const bad of [
      [0xe4, 0xbd, 0x78],
      [0xc0, 0x80],
      [0xed, 0xa0, 0x80],
      [0xf4, 0x90, 0x80, 0x80],
    ]) {
      const result = d.feed(Buffer.from([...bad, 0x0d]));
      expect(result.at(-1), `bytes ${bad.join(",")}`).toMatchObject({ kind: "refused", reason: "invalid-utf8" });
    }
    expect(linesOf(d.feed(bytes("fine\r")))).toEqual(["fine"]);
  });

  it("refuses a line over the limit with a bell once, and Backspace below the limit makes it acceptable again", () => {
    const d = new LineDiscipline({ maxChars: 16 });
    const typed = d.feed(bytes("x".repeat(20)));
    expect(echoOf(typed)).toBe(`${"x".repeat(16)}\u0007`);
    const refused = d.feed(bytes("\r"));
    expect(refused.at(-1)).toMatchObject({ kind: "refused", reason: "too-long" });
    expect(JSON.stringify(refused.at(-1))).toContain("20 characters; the limit is 16");
    d.feed(bytes("y".repeat(18)));
    d.feed(Buffer.from([0x7f, 0x7f]));
    expect(linesOf(d.feed(bytes("\r")))).toEqual(["y".repeat(16)]);
  });

  it("with charset ascii echoes ? for what the terminal cannot show and erases one column for it", () => {
    const d = new LineDiscipline({ charset: "ascii" });
    expect(echoOf(d.feed(bytes("a你")))).toBe("a?");
    expect(echoOf(d.feed(Buffer.from([0x08])))).toBe("\b \b");
  });

  it("survives 64 KB of random bytes: every event is well formed and lines stay within the limit", () => {
    let seed = 12345;
    const random = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) >> 16) & 0xff;
    const d = new LineDiscipline({ maxChars: 100 });
    const events: LineEvent[] = [];
    for (let i = 0; i < 64; i++) events.push(...d.feed(Buffer.from(Array.from({ length: 1024 }, random))));
    expect(events.length).toBeGreaterThan(100);
    for (const event of events) {
      if (event.kind === "line") {
        expect([...event.text].length).toBeLessThanOrEqual(100);
        expect(event.text).not.toMatch(/[\u0000-\u001f\u007f-\u009f]/);
      }
    }
    expect(events.some((e) => e.kind === "refused")).toBe(true);
    d.feed(Buffer.from([0x15]));
    expect(linesOf(d.feed(bytes("\rstill works\r")))).toContain("still works");
  });
});

describe("SerialOutput", () => {
  it("sends CRLF line ends only and drops CR and control bytes from the model", () => {
    const out = new SerialOutput();
    const text = out.format("one\ntwo\r\nthree\u001b[31m\u0007\u0085\n");
    expect(text).toBe("one\r\ntwo\r\nthree[31m\r\n");
    expect(text.replace(/\r\n/g, "")).not.toMatch(/[\r\n]/);
  });

  it("wraps at N columns counting CJK as two, and ends a partial line before a prompt", () => {
    const out = new SerialOutput({ wrap: 6 });
    expect(out.format("abcde你好")).toBe("abcde\r\n你好");
    expect(out.column).toBe(4);
    expect(out.format("ab cd")).toBe("ab\r\ncd");
    expect(out.endLine()).toBe("\r\n");
    expect(out.endLine()).toBe("");
  });

  it("with charset ascii replaces what the terminal cannot show and says it did", () => {
    const out = new SerialOutput({ charset: "ascii" });
    expect(out.format("RBW 带宽 ok")).toBe("RBW ?? ok");
    expect(out.takeReplaced()).toBe(true);
    expect(out.takeReplaced()).toBe(false);
  });

  it("keeps a surrogate pair whole when a delta ends between its halves", () => {
    const out = new SerialOutput();
    const smile = "😀";
    expect(out.format(`a${smile[0]!}`)).toBe("a");
    expect(out.format(`${smile[1]!}b`)).toBe(`${smile}b`);
  });
});
