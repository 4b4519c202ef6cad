import { describe, expect, it } from "vitest";
import { SpectrumAnalyzerSimulator } from "../../firmware-bridge/simulator.js";
import { encodeTraceBlock, parseFormat, parseTraceData } from "../../firmware-bridge/trace.js";
import { formatDb, formatHz, formatTraceSummary, summarizeTrace } from "../../firmware-bridge/traceSummary.js";
import type { TraceSummary } from "../../firmware-bridge/traceSummary.js";

const START = 0.9e9;
const STOP = 1.1e9;
const N = 1001;

/**
 * The stand-in trace: 1001 points from 0.9 to 1.1 GHz, a -23.45 dBm tone at
 * 1.000 GHz and a -61.2 dBm tone at 1.020 GHz over a -90 dBm floor with +-1.5 dB noise.
 */
function standInTrace(): number[] {
  let seed = 7;
  const noise = () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return (seed / 2 ** 31) * 3 - 1.5;
  };
  const tones = [
    { hz: 1.0e9, dbm: -23.45 },
    { hz: 1.02e9, dbm: -61.2 },
  ];
  const rbw = 1e6;
  return Array.from({ length: N }, (_, i) => {
    const hz = START + (i * (STOP - START)) / (N - 1);
    let mw = 10 ** ((-90 + noise()) / 10);
    for (const tone of tones) mw += 10 ** ((tone.dbm - 3.0103 * ((hz - tone.hz) / (rbw / 2)) ** 2) / 10);
    return 10 * Math.log10(mw);
  });
}

function expectStandInSummary(summary: TraceSummary): void {
  expect(summary.points).toBe(N);
  expect(Math.abs(summary.floorDbm + 90)).toBeLessThan(1);
  expect(summary.peaks).toHaveLength(2);
  const [strong, weak] = summary.peaks;
  expect(strong?.frequencyHz).toBeCloseTo(1.0e9, -3);
  expect(strong?.levelDbm).toBeCloseTo(-23.45, 1);
  expect(weak?.frequencyHz).toBeCloseTo(1.02e9, -3);
  expect(weak?.levelDbm).toBeCloseTo(-61.2, 1);
  expect(strong!.aboveFloorDb).toBeCloseTo(strong!.levelDbm - summary.floorDbm, 9);
  expect(summary.overload).toBe(false);
  const lines = formatTraceSummary(summary);
  expect(lines[0]).toMatch(/^trace: 1001 points, 0\.9 GHz to 1\.1 GHz; floor -(89|90) dBm \(median\)$/);
  expect(lines[1]).toMatch(/^peak 1\.0000 GHz -23\.[45] dBm \(6\d dB above floor\)$/);
  expect(lines[2]).toMatch(/^peak 1\.0200 GHz -61\.[12] dBm \(2\d dB above floor\)$/);
  expect(lines).toHaveLength(3);
}

describe("the trace summary", () => {
  const points = standInTrace();
  const settings = { startHz: START, stopHz: STOP, referenceLevelDbm: 0 };

  it("names both tones of a 1001-point ASCII trace and the floor", () => {
    const ascii = Buffer.from(points.map((p) => p.toFixed(3)).join(",") + "\n");
    expectStandInSummary(summarizeTrace(parseTraceData(ascii, parseFormat("ASC,8", "NORM")), settings));
  });

  it("the same from a REAL,32 little-endian block and a REAL,64 big-endian one", () => {
    const swap32 = encodeTraceBlock(points, "REAL,32", "SWAP");
    expectStandInSummary(summarizeTrace(parseTraceData(swap32, parseFormat("REAL,32", "SWAP")), settings));
    const norm64 = encodeTraceBlock(points, "REAL,64", "NORM");
    expectStandInSummary(summarizeTrace(parseTraceData(norm64, parseFormat("REAL,64", "NORM")), settings));
  });

  it("flags a possible overload within 3 dB of the reference level", () => {
    const hot = [...points];
    hot[500] = -2.5;
    const summary = summarizeTrace(hot, settings);
    expect(summary.overload).toBe(true);
    expect(formatTraceSummary(summary).at(-1)).toBe(
      "possible overload: the highest point, -2.5 dBm, is within 3 dB of the reference level 0.0 dBm",
    );
    expect(summarizeTrace(hot, { ...settings, referenceLevelDbm: 10 }).overload).toBe(false);
    expect(summarizeTrace(hot, { startHz: START, stopHz: STOP }).overload).toBe(false);
  });

  it("keeps at most 5 peaks, strongest first, and one peak per tone", () => {
    const flat = Array.from({ length: 200 }, () => -100);
    for (const [index, level] of [
      [20, -50],
      [40, -40],
      [60, -60],
      [80, -30],
      [100, -70],
      [120, -45],
      [140, -80],
    ] as const) {
      flat[index - 1] = level - 1;
      flat[index] = level;
      flat[index + 1] = level - 2;
    }
    // Two maxima with no 6 dB dip between them are one tone.
    flat[170] = -50;
    flat[171] = -52;
    flat[172] = -49;
    const summary = summarizeTrace(flat, { startHz: 0, stopHz: 199e3 });
    expect(summary.peaks.map((p) => p.levelDbm)).toEqual([-30, -40, -45, -49, -50]);
    expect(summary.peaks.map((p) => p.frequencyHz)).toEqual([80e3, 40e3, 120e3, 172e3, 20e3]);
  });

  it("finds nothing in a flat trace and says so", () => {
    const summary = summarizeTrace([-90, -91, -89, -90, -90.5], { startHz: 1e6, stopHz: 2e6 });
    expect(summary.floorDbm).toBe(-90);
    expect(summary.peaks).toEqual([]);
    expect(formatTraceSummary(summary)).toEqual([
      "trace: 5 points, 1 MHz to 2 MHz; floor -90 dBm (median)",
      "no peak 6 dB above the floor",
    ]);
  });

  it("refuses an empty trace", () => {
    expect(() => summarizeTrace([], settings)).toThrow(expect.objectContaining({ code: "IA_ERR_SCPI_REPLY" }) as Error);
  });

  it("rounds dB half away from zero after 0.001 dB, so ASCII and REAL,32 values agree", () => {
    expect([-23.45, Math.fround(-23.45), -23.449, -61.2, Math.fround(-61.2), 0.05, -0.04].map((v) => formatDb(v, 1))).toEqual([
      "-23.5",
      "-23.5",
      "-23.4",
      "-61.2",
      "-61.2",
      "0.1",
      "0.0",
    ]);
    expect([-90.02, -89.5, -90.49, Math.fround(-89.6)].map((v) => formatDb(v, 0))).toEqual(["-90", "-90", "-90", "-90"]);
  });

  it("writes frequencies in Hz, kHz, MHz or GHz", () => {
    expect(formatHz(1e9)).toBe("1 GHz");
    expect(formatHz(2.5e6)).toBe("2.5 MHz");
    expect(formatHz(999)).toBe("999 Hz");
    expect(formatHz(12_345, { decimals: 3 })).toBe("12.345 kHz");
    expect(formatHz(0.9e9, { unitOf: 1.1e9 })).toBe("0.9 GHz");
  });
});

describe("the simulator's trace", () => {
  const read = (sim: SpectrumAnalyzerSimulator) => {
    const format = parseFormat(sim.receive(":FORM?")!, sim.receive(":FORM:BORD?")!);
    const points = parseTraceData(Buffer.from(sim.receive(":TRAC:DATA? TRACE1")!, "latin1"), format);
    const startHz = Number(sim.receive(":FREQ:STAR?"));
    const stopHz = Number(sim.receive(":FREQ:STOP?"));
    return summarizeTrace(points, { startHz, stopHz, referenceLevelDbm: Number(sim.receive(":DISP:WIND:TRAC:Y:RLEV?")) });
  };

  it.each([
    ["ASC", "NORM"],
    ["REAL,32", "NORM"],
    ["REAL,32", "SWAP"],
    ["REAL,64", "SWAP"],
  ])("parses in %s %s and summarises to its own tones", (form, bord) => {
    const sim = new SpectrumAnalyzerSimulator();
    sim.receive(`:FORM ${form};:FORM:BORD ${bord}`);
    const summary = read(sim);
    expect(summary.points).toBe(1001);
    expect(Math.abs(summary.floorDbm + 90)).toBeLessThan(1);
    expect(summary.peaks.map((p) => [p.frequencyHz, Number(p.levelDbm.toFixed(1))])).toEqual([
      [1e9, -20],
      [1.025e9, -60],
    ]);
    expect(summary.overload).toBe(false);
  });
});
