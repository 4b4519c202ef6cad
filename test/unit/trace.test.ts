import { describe, expect, it } from "vitest";
import { encodeTraceBlock, parseFormat, parseTraceData } from "../../firmware-bridge/trace.js";
import type { TraceFormat } from "../../firmware-bridge/trace.js";

const ASC: TraceFormat = { form: "ASC", byteOrder: "NORM" };
const refused = (why: string) => expect.objectContaining({ code: "IA_ERR_SCPI_REPLY", message: expect.stringContaining(why) }) as Error;

/** A block by hand: header, body and terminator as given. */
function block(header: string, body: Buffer, tail = "\n"): Buffer {
  return Buffer.concat([Buffer.from(header, "latin1"), body, Buffer.from(tail, "latin1")]);
}

describe("trace format replies", () => {
  it.each([
    ["ASC,8", "NORM", { form: "ASC", byteOrder: "NORM" }],
    ["ASC", "SWAP", { form: "ASC", byteOrder: "SWAP" }],
    ["REAL,32\n", "SWAP\n", { form: "REAL,32", byteOrder: "SWAP" }],
    [" real, 64", "norm", { form: "REAL,64", byteOrder: "NORM" }],
    ["REAL", "NORMal", { form: "REAL,32", byteOrder: "NORM" }],
  ])("reads :FORM? %j and :FORM:BORD? %j", (form, bord, expected) => {
    expect(parseFormat(form, bord)).toEqual(expected);
  });

  it.each([
    ["INT,32", "NORM", ":FORM? replied"],
    ["", "NORM", ":FORM? replied"],
    ["ASC,8", "BIG", ":FORM:BORD? replied"],
  ])("refuses :FORM? %j / :FORM:BORD? %j", (form, bord, why) => {
    expect(() => parseFormat(form, bord)).toThrow(refused(why));
  });
});

describe("trace data", () => {
  it("parses ASCII, tolerant of spaces and line ends", () => {
    expect(parseTraceData(Buffer.from("-9.00000000000E+001, -2.345E+001,\n-61.2\r\n"), ASC)).toEqual([-90, -23.45, -61.2]);
    expect(parseTraceData(Buffer.from("  -90  "), ASC)).toEqual([-90]);
  });

  it.each([
    ["", "empty"],
    ["-90,,-80", 'trace point 1 is ""'],
    ["-90,abc", 'trace point 1 is "abc"'],
    ["#14abcd", "binary block but :FORM? said ASC"],
    ["-90,NaN", "not a number"],
  ])("refuses the ASCII reply %j", (text, why) => {
    expect(() => parseTraceData(Buffer.from(text, "latin1"), ASC)).toThrow(refused(why));
  });

  it.each([
    ["REAL,32", "NORM"],
    ["REAL,32", "SWAP"],
    ["REAL,64", "NORM"],
    ["REAL,64", "SWAP"],
  ] as const)("round-trips a %s %s block, with or without a terminator", (form, byteOrder) => {
    const points = [-90, -23.5, -61.25, 0, 10.5];
    const encoded = encodeTraceBlock(points, form, byteOrder);
    expect(parseTraceData(encoded, { form, byteOrder })).toEqual(points);
    expect(parseTraceData(Buffer.concat([encoded, Buffer.from("\r\n")]), { form, byteOrder })).toEqual(points);
  });

  it("NORM is big-endian and SWAP little-endian", () => {
    const big = Buffer.alloc(4);
    big.writeFloatBE(-23.5);
    const little = Buffer.alloc(8);
    little.writeDoubleLE(-61.2);
    expect(parseTraceData(block("#14", big), { form: "REAL,32", byteOrder: "NORM" })).toEqual([-23.5]);
    expect(parseTraceData(block("#18", little), { form: "REAL,64", byteOrder: "SWAP" })).toEqual([-61.2]);
    expect(parseTraceData(block("#14", big), { form: "REAL,32", byteOrder: "SWAP" })).not.toEqual([-23.5]);
  });

  it("reads a block whose data holds newline bytes", () => {
    const body = Buffer.from([0x0a, 0x0a, 0x0a, 0x0a]);
    expect(parseTraceData(block("#14", body), { form: "REAL,32", byteOrder: "NORM" })).toEqual([body.readFloatBE()]);
  });

  const f32 = Buffer.alloc(8);
  it.each([
    [Buffer.from("#0" + "\u0000".repeat(8) + "\n", "latin1"), "indefinite-length block (#0)"],
    [block("#18", f32.subarray(0, 6)), "says 8 bytes but only 7 arrived (truncated)"],
    [block("#16", f32), "says 6 bytes but 9 arrived (3 bytes after the block)"],
    [block("#16", f32.subarray(0, 6)), "not a whole number of REAL,32 values"],
    [block("#2x8", f32), 'length "x8" is not 2 decimal digits'],
    [block("#A8", f32), 'digit count is "A"'],
    [Buffer.from("-90,-80"), "does not start with '#'"],
    [Buffer.alloc(0), "empty"],
    [block("#14", Buffer.from([0x7f, 0xc0, 0, 0])), "not a finite number"],
  ])("refuses a bad REAL,32 block (%#) naming what is wrong", (data, why) => {
    expect(() => parseTraceData(data, { form: "REAL,32", byteOrder: "NORM" })).toThrow(refused(why));
  });
});
