import net from "node:net";
import { afterEach, describe, expect, it, vi } from "vitest";
import { LineReader, LinkReplyError, MAX_REPLY_BYTES } from "../../firmware-bridge/instrumentLink.js";
import { ScpiClient } from "../../firmware-bridge/scpiClient.js";
import { formatScpiReal, SpectrumAnalyzerSimulator } from "../../firmware-bridge/simulator.js";
import { SimulatorLink } from "../../firmware-bridge/simulatorLink.js";
import { TcpInstrumentLink } from "../../firmware-bridge/tcpInstrumentLink.js";
import { encodeTraceBlock, parseTraceData } from "../../firmware-bridge/trace.js";

/** Four REAL,32 values whose little-endian bytes hold LF and CR: 0x0a0d0a0d, 0x0d0a..., and so on. */
const BODY = Buffer.from([0x0a, 0x0d, 0x0a, 0x40, 0x0d, 0x0a, 0x0d, 0xc0, 0x0a, 0x0a, 0x0a, 0x41, 0x23, 0x0d, 0x0d, 0xc1]);
const BLOCK = Buffer.concat([Buffer.from("#216", "latin1"), BODY]);
const VALUES = [0, 4, 8, 12].map((offset) => BODY.readFloatLE(offset));
/** The block with its terminator, then the next reply. */
const STREAM = Buffer.concat([BLOCK, Buffer.from('\n+0,"No error"\n', "latin1")]);

const latin1 = (reply: string) => Buffer.from(reply, "latin1");

async function readAll(reader: LineReader, count: number): Promise<string[]> {
  const replies: string[] = [];
  for (let i = 0; i < count; i++) replies.push(await reader.read(100));
  return replies;
}

describe("the line reader with binary blocks", () => {
  it("the block's bytes contain LF and CR", () => {
    expect([...BODY].filter((byte) => byte === 0x0a).length).toBeGreaterThan(3);
    expect([...BODY].filter((byte) => byte === 0x0d).length).toBeGreaterThan(3);
    expect(VALUES.every(Number.isFinite)).toBe(true);
  });

  it.each([...Array(STREAM.length - 1).keys()].map((i) => i + 1))("reads the block intact when cut at byte %i", async (cut) => {
    const reader = new LineReader();
    reader.push(STREAM.subarray(0, cut));
    reader.push(STREAM.subarray(cut));
    const [block = "", next] = await readAll(reader, 2);
    expect(latin1(block)).toEqual(BLOCK);
    expect(parseTraceData(latin1(block), { form: "REAL,32", byteOrder: "SWAP" })).toEqual(VALUES);
    expect(next).toBe('+0,"No error"');
  });

  it("reads it one byte at a time, with a read already waiting", async () => {
    const reader = new LineReader();
    const first = reader.read(1000);
    for (const byte of STREAM) reader.push(Buffer.from([byte]));
    expect(latin1(await first)).toEqual(BLOCK);
    expect(await reader.read(100)).toBe('+0,"No error"');
  });

  it("times out on silence, not on a long reply: each chunk starts the wait again", async () => {
    vi.useFakeTimers();
    try {
      const reader = new LineReader();
      const slow = reader.read(100);
      // A trace trickling in over a slow serial line: 10 chunks 80 ms apart, 800 ms in all.
      const chunks = [...STREAM.subarray(0, BLOCK.length + 1)];
      for (const byte of chunks) {
        await vi.advanceTimersByTimeAsync(80);
        reader.push(Buffer.from([byte]));
      }
      expect(latin1(await slow)).toEqual(BLOCK);
      const silent = reader.read(100);
      const failure = expect(silent).rejects.toMatchObject({ timedOut: true });
      await vi.advanceTimersByTimeAsync(101);
      await failure;
    } finally {
      vi.useRealTimers();
    }
  });

  it("takes CR LF, LF or nothing after a block, even when the terminator comes after a discard", async () => {
    const reader = new LineReader();
    reader.push(Buffer.concat([BLOCK, Buffer.from("\r\n1001\n", "latin1"), BLOCK]));
    expect(latin1(await reader.read(100))).toEqual(BLOCK);
    expect(await reader.read(100)).toBe("1001");
    expect(latin1(await reader.read(100))).toEqual(BLOCK);
    reader.discard();
    reader.push("\n+1.0E+009\n");
    expect(await reader.read(100)).toBe("+1.0E+009");
  });

  it("reads a # that does not start a block as a line (#H1F is a hexadecimal number)", async () => {
    const reader = new LineReader();
    reader.push("#H1F\n#\n");
    expect(await readAll(reader, 2)).toEqual(["#H1F", "#"]);
  });

  it("refuses an indefinite block (#0) and a header whose length is not digits, and cannot say where they end", async () => {
    const reader = new LineReader();
    reader.push("#0\x01\x02\n");
    await expect(reader.read(100)).rejects.toMatchObject({ badReply: true, resynced: false, message: expect.stringContaining("#0") });
    reader.reset();
    reader.push("#3x12abc\n");
    await expect(reader.read(100)).rejects.toMatchObject({ resynced: false, message: expect.stringContaining('"x12"') });
  });

  it("refuses a block larger than the limit by its announced size, skips its bytes and reads the next reply", async () => {
    const reader = new LineReader();
    const length = MAX_REPLY_BYTES;
    const header = `#7${length}`;
    reader.push(header);
    await expect(reader.read(100)).rejects.toThrow(`is a block of ${header.length + length} bytes, more than the ${MAX_REPLY_BYTES} bytes`);
    const body = Buffer.alloc(length, 0x0a);
    for (let offset = 0; offset < length; offset += 65_536) reader.push(body.subarray(offset, offset + 65_536));
    reader.push("\n1001\n");
    expect(await reader.read(100)).toBe("1001");
  });

  it("refuses a line longer than the limit, then reads the next one", async () => {
    const reader = new LineReader();
    const chunk = "-9.00000000E+001,".repeat(4096);
    for (let sent = 0; sent <= MAX_REPLY_BYTES; sent += chunk.length) reader.push(chunk);
    const failure = await reader.read(100).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(LinkReplyError);
    expect((failure as LinkReplyError).message).toBe(
      `has no line end in its first ${MAX_REPLY_BYTES} bytes, more than the ${MAX_REPLY_BYTES} bytes (2 MiB) a reply may hold`,
    );
    expect((failure as LinkReplyError).resynced).toBe(true);
    reader.push(chunk + '\n+0,"No error"\n');
    expect(await reader.read(100)).toBe('+0,"No error"');
  });

  it("keeps a 40001-point ASCII trace whole, in the X-Series' 19-character form", async () => {
    const reader = new LineReader();
    const text = Array.from({ length: 40_001 }, (_, i) => formatScpiReal(-90 + (i % 7) / 10)).join(",");
    expect(text.length).toBeGreaterThan(40_001 * 19);
    const bytes = Buffer.from(`${text}\n`, "latin1");
    for (let offset = 0; offset < bytes.length; offset += 65_536) reader.push(bytes.subarray(offset, offset + 65_536));
    const reply = await reader.read(100);
    expect(parseTraceData(latin1(reply), { form: "ASC", byteOrder: "NORM" })).toHaveLength(40_001);
  });
});

let server: net.Server | undefined;
afterEach(async () => {
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  server = undefined;
});

/** A TCP instrument that answers every line with `reply(line)`, written a few bytes at a time. */
async function trickleServer(reply: (line: string) => Buffer): Promise<number> {
  server = net.createServer((socket) => {
    socket.on("data", (bytes) => {
      for (const line of bytes.toString("latin1").split("\n").filter(Boolean)) {
        const answer = reply(line);
        for (let offset = 0; offset < answer.length; offset += 3) socket.write(answer.subarray(offset, offset + 3));
      }
    });
    socket.on("error", () => socket.destroy());
  });
  await new Promise<void>((resolve) => server!.listen(0, "127.0.0.1", resolve));
  return (server.address() as net.AddressInfo).port;
}

describe("the SCPI client reading blocks", () => {
  it("hands a REAL,32 block from a TCP instrument on intact, and reads the next reply after it", async () => {
    const points = [-90, -23.45, 10.5, -61.2, 2.5e-38];
    const block = encodeTraceBlock(points, "REAL,32", "SWAP");
    const port = await trickleServer((line) =>
      line.startsWith(":TRAC") ? Buffer.concat([block, Buffer.from("\n")]) : Buffer.from("+1.0E+009\n"),
    );
    const client = new ScpiClient({ link: new TcpInstrumentLink({ host: "127.0.0.1", port }), timeoutMs: 2000 });
    const reply = await client.query(":TRAC:DATA? TRACE1");
    expect(latin1(reply)).toEqual(block);
    expect(parseTraceData(latin1(reply), { form: "REAL,32", byteOrder: "SWAP" })).toEqual(points.map(Math.fround));
    expect(await client.query(":FREQ:CENT?")).toBe("+1.0E+009");
    await client.close();
  });

  it("refuses #0 with IA_ERR_SCPI_REPLY, reopens the link and reads the next query", async () => {
    let connections = 0;
    const port = await trickleServer((line) => Buffer.from(line.startsWith(":TRAC") ? "#0\x00\x00\xb4\xc2\n" : "1001\n", "latin1"));
    server!.on("connection", () => (connections += 1));
    const client = new ScpiClient({ link: new TcpInstrumentLink({ host: "127.0.0.1", port }), timeoutMs: 2000 });
    await expect(client.query(":TRAC:DATA? TRACE1")).rejects.toMatchObject({
      code: "IA_ERR_SCPI_REPLY",
      message: expect.stringContaining(`tcp://127.0.0.1:${port}: the reply to :TRAC:DATA? TRACE1 is an indefinite-length block (#0)`),
    });
    expect(await client.query(":SWE:POIN?")).toBe("1001");
    expect(connections).toBe(2);
    await client.close();
  });

  it("reads the simulator's REAL,32 and REAL,64 traces through its link, both byte orders", async () => {
    const simulator = new SpectrumAnalyzerSimulator();
    const client = new ScpiClient({ link: new SimulatorLink(simulator) });
    for (const [form, byteOrder] of [
      ["REAL,32", "SWAP"],
      ["REAL,64", "NORM"],
    ] as const) {
      simulator.receive(`:FORM ${form};:FORM:BORD ${byteOrder}`);
      const reply = await client.query(":TRAC:DATA? TRACE1");
      expect(latin1(reply)).toEqual(Buffer.from(simulator.receive(":TRAC:DATA? TRACE1")!, "latin1"));
      const points = parseTraceData(latin1(reply), { form, byteOrder });
      expect(points).toHaveLength(1001);
      expect(Math.max(...points)).toBeCloseTo(-20, 0);
    }
    await client.close();
  });
});
