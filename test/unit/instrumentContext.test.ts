import { describe, expect, it } from "vitest";
import { InstrumentContext, SNAPSHOT_QUERIES, renderSnapshot, traceLines } from "../../firmware-bridge/instrumentContext.js";
import { createAllowlist } from "../../firmware-bridge/instrumentBridge.js";
import { ScpiClient } from "../../firmware-bridge/scpiClient.js";
import { SpectrumAnalyzerSimulator } from "../../firmware-bridge/simulator.js";
import { SimulatorLink } from "../../firmware-bridge/simulatorLink.js";
import { encodeTraceBlock } from "../../firmware-bridge/trace.js";

/** The context reading the simulator through the allowlist and the SCPI client, as the bridge does. */
function simulatorContext(simulator = new SpectrumAnalyzerSimulator(), fail?: (line: string) => string | undefined) {
  const allowlist = createAllowlist();
  const client = new ScpiClient({ link: new SimulatorLink(simulator), timeoutMs: 200 });
  const query = async (line: string) => {
    const why = fail?.(line);
    if (why !== undefined) throw new Error(why);
    const checked = allowlist.check(line);
    if (!checked.ok) throw new Error(checked.message);
    return (await client.queryAll(checked.queries.map((q) => q.wire))).join(";");
  };
  return { simulator, context: new InstrumentContext({ query, description: "sim" }) };
}

const SETTINGS_READ = { idn: "Keysight,N9020A,1,A", center: "+1.01E+009", span: "+1.0E+008", points: "5", refLevel: "0" };

describe("the instrument context's trace", () => {
  it("reads the trace after the settings, asks its format and never sets it, and appends its summary", async () => {
    const { simulator, context } = simulatorContext();
    const text = await context.render();
    expect(simulator.received).toEqual(Object.values(SNAPSHOT_QUERIES).map((q) => q.replace("MARK1", "MARK")));
    expect(simulator.received.slice(-3)).toEqual([":FORM?", ":FORM:BORD?", ":TRAC:DATA? TRACE1"]);
    const lines = text.split("\n");
    expect(lines[0]).toContain("Live instrument settings, just read from Keysight Technologies N9020A");
    expect(lines.slice(1)).toEqual([
      "trace: 1001 points, 0.95 GHz to 1.05 GHz; floor -90 dBm (median)",
      "peak 1.0000 GHz -20.0 dBm (70 dB above floor)",
      "peak 1.0250 GHz -60.0 dBm (30 dB above floor)",
    ]);
  });

  it("gives the same summary from a REAL,32 little-endian block", async () => {
    const { simulator, context } = simulatorContext();
    simulator.receive(":FORM REAL,32;:FORM:BORD SWAP");
    const lines = (await context.render()).split("\n");
    expect(lines.slice(1)).toEqual([
      "trace: 1001 points, 0.95 GHz to 1.05 GHz; floor -90 dBm (median)",
      "peak 1.0000 GHz -20.0 dBm (70 dB above floor)",
      "peak 1.0250 GHz -60.0 dBm (30 dB above floor)",
    ]);
  });

  it("keeps the settings and says in one line why when the trace cannot be read", async () => {
    const { context } = simulatorContext(undefined, (line) => (line.startsWith(":TRAC") ? "no reply within 200 ms" : undefined));
    const lines = (await context.render()).split("\n");
    expect(lines).toHaveLength(2);
    expect(lines[0]).toContain("center 1 GHz, span 100 MHz");
    expect(lines[1]).toBe("trace: could not be read (no reply within 200 ms)");
    expect(context.lastReadable).toBe(true);
  });

  it("over a serial link (readTrace false) reads the settings only, and says the trace was left for read_trace", async () => {
    const simulator = new SpectrumAnalyzerSimulator();
    const client = new ScpiClient({ link: new SimulatorLink(simulator), timeoutMs: 200 });
    const context = new InstrumentContext({ query: (line) => client.query(line), description: "serial", readTrace: false });
    const lines = (await context.render()).split("\n");
    expect(simulator.received.filter((line) => line.startsWith(":TRAC") || line.startsWith(":FORM"))).toEqual([]);
    expect(lines).toHaveLength(2);
    expect(lines[1]).toBe("trace: not read before each answer over a serial link (too slow); the read_trace tool reads it");
    expect(context.lastReadable).toBe(true);
  });

  it("keeps the bytes of a block that end in white space (LF, CR, space, 0xA0 are data, not padding)", () => {
    const points = [-90, -90, -23.45, -90, -90];
    const block = encodeTraceBlock(points, "REAL,32", "SWAP");
    // A last value whose final bytes are white space in latin1.
    const tail = Buffer.from([0x0a, 0x0d, 0x20, 0xa0]);
    const edited = Buffer.concat([block.subarray(0, block.length - 4), tail]).toString("latin1");
    const snapshot = { replies: { ...SETTINGS_READ, traceForm: "REAL,32", traceByteOrder: "SWAP", trace: edited } };
    expect(traceLines(snapshot)[0]).toBe("trace: 5 points, 0.96 GHz to 1.06 GHz; floor -90 dBm (median)");
  });

  it("says why the trace cannot be parsed, and notes a point count that differs from :SWE:POIN?", () => {
    const replies = { ...SETTINGS_READ, traceForm: "INT,32", traceByteOrder: "NORM", trace: "1,2,3" };
    expect(traceLines({ replies })).toEqual(['trace: could not be read (:FORM? replied "INT,32"; expected ASC, REAL,32 or REAL,64)']);
    const indefinite = { ...replies, traceForm: "REAL,32", trace: "#0\x00\x00" };
    expect(traceLines({ replies: indefinite })[0]).toMatch(/^trace: could not be read \(the trace reply is an indefinite-length block/);
    const ascii = { ...replies, traceForm: "ASC,8", trace: "-90,-90,-23.45,-90" };
    expect(traceLines({ replies: ascii })).toEqual([
      "trace: 4 points, 0.96 GHz to 1.06 GHz; floor -90 dBm (median)",
      "peak 1.027 GHz -23.5 dBm (67 dB above floor)",
      "note: the trace has 4 points, :SWE:POIN? says 5",
    ]);
    expect(traceLines({ replies: { ...ascii, span: "?" } })).toEqual(["trace: could not be read (center or span unknown)"]);
  });

  it("does not read the trace when the settings stopped early, and says so", async () => {
    const { simulator, context } = simulatorContext(undefined, (line) => (line === ":SWE:TIME?" ? "link closed" : undefined));
    const text = await context.render();
    expect(simulator.received).not.toContain(":TRAC:DATA? TRACE1");
    expect(text).toContain("Other settings could not be read (link closed).");
    expect(text.split("\n").at(-1)).toBe("trace: not read (the settings could not be read)");
    expect(renderSnapshot({ replies: {}, error: "refused" }, "x")).toContain("could not be read (refused)");
  });
});
