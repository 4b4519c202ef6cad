import { describe, expect, it } from "vitest";
import { parseTraceData } from "../../firmware-bridge/trace.js";
import {
  autoRbw,
  formatScpiReal,
  MIN_SWEEP_TIME_S,
  SIM_IDN,
  snapToOneThreeTen,
  SpectrumAnalyzerSimulator,
  SWEEP_TIME_K,
} from "../../firmware-bridge/simulator.js";

const num = (sim: SpectrumAnalyzerSimulator, query: string) => Number(sim.receive(query));

describe("the simulated swept spectrum analyzer", () => {
  it("identifies itself and answers long and short forms alike", () => {
    const sim = new SpectrumAnalyzerSimulator();
    expect(sim.receive("*IDN?")).toBe(SIM_IDN);
    expect(sim.receive(":SENSe:FREQuency:CENTer?")).toBe(sim.receive(":FREQ:CENT?"));
    expect(sim.receive(":FREQ:CENT?")).toBe("+1.00000000000E+009");
  });

  it("formats reals the way X-Series analyzers do", () => {
    expect(formatScpiReal(1e9)).toBe("+1.00000000000E+009");
    expect(formatScpiReal(-20)).toBe("-2.00000000000E+001");
    expect(formatScpiReal(0.0025)).toBe("+2.50000000000E-003");
  });

  it.each([
    [1, 1],
    [2, 3],
    [5, 3],
    [6, 10],
    [943_396, 1e6],
    [9_433, 1e4],
    [2_500, 3_000],
  ])("snaps %d to %d on the 1-3-10 sequence", (value, snapped) => {
    expect(snapToOneThreeTen(value)).toBe(snapped);
  });

  it.each([
    [100e6, 1e6],
    [10e6, 100e3],
    [1e6, 10e3],
    [100e3, 1e3],
    [26.5e9, 3e6],
    [10, 1],
  ])("couples RBW to a span of %d Hz: %d Hz", (span, rbw) => {
    const sim = new SpectrumAnalyzerSimulator();
    sim.receive(`:FREQ:SPAN ${span}`);
    expect(num(sim, ":BAND?")).toBe(rbw);
    expect(autoRbw(span)).toBe(rbw);
    expect(num(sim, ":BAND:VID?")).toBe(rbw);
  });

  it.each([[1e6], [10e6], [200e3], [3e6]])("sweep time follows K*span/RBW^2 at a span of %d Hz", (span) => {
    const sim = new SpectrumAnalyzerSimulator();
    sim.receive(`:FREQ:SPAN ${span}`);
    const rbw = num(sim, ":BAND?");
    const expected = Math.max(MIN_SWEEP_TIME_S, (SWEEP_TIME_K * span) / rbw ** 2);
    expect(num(sim, ":SWE:TIME?")).toBeCloseTo(expected, 12);
  });

  it("sweep time grows with span and falls with the square of RBW", () => {
    const sim = new SpectrumAnalyzerSimulator();
    sim.receive(":FREQ:SPAN 1 MHz");
    expect(num(sim, ":BAND?")).toBe(10e3);
    expect(num(sim, ":SWE:TIME?")).toBeCloseTo(0.025, 12);
    sim.receive(":FREQ:SPAN 2 MHz;:BAND 10 kHz");
    expect(num(sim, ":SWE:TIME?")).toBeCloseTo(0.05, 12);
    sim.receive(":BAND 30 kHz");
    expect(num(sim, ":BAND:AUTO?")).toBe(0);
    expect(num(sim, ":SWE:TIME?")).toBeCloseTo((SWEEP_TIME_K * 2e6) / 30e3 ** 2, 12);
    sim.receive(":BAND:VID 3 kHz");
    expect(num(sim, ":SWE:TIME?")).toBeCloseTo((SWEEP_TIME_K * 2e6) / (30e3 * 3e3), 12);
    sim.receive(":SWE:TIME 2 s");
    expect(num(sim, ":SWE:TIME?")).toBe(2);
    sim.receive(":FREQ:SPAN 0;:SWE:TIME:AUTO ON;:BAND:VID:AUTO ON;:BAND:AUTO ON");
    expect(num(sim, ":SWE:TIME?")).toBe(MIN_SWEEP_TIME_S);
  });

  it("queues -113 for undefined headers, pops it on SYST:ERR?, and records every line", () => {
    const sim = new SpectrumAnalyzerSimulator();
    expect(sim.receive(":NO:SUCH?")).toBeUndefined();
    expect(sim.receive(":BOGUS 1")).toBeUndefined();
    expect(sim.errors).toEqual(['-113,"Undefined header"', '-113,"Undefined header"']);
    expect(sim.receive(":SYST:ERR?")).toBe('-113,"Undefined header"');
    expect(sim.receive(":SYST:ERR:NEXT?")).toBe('-113,"Undefined header"');
    expect(sim.receive(":SYST:ERR?")).toBe('+0,"No error"');
    expect(sim.received).toEqual([":NO:SUCH?", ":BOGUS 1", ":SYST:ERR?", ":SYST:ERR:NEXT?", ":SYST:ERR?"]);
  });

  it("accepts setters (so tests can tell the agent never sent them) and *RST restores the preset", () => {
    const sim = new SpectrumAnalyzerSimulator();
    sim.receive(":FREQ:CENT 2.4 GHz;:INIT:CONT OFF");
    expect(num(sim, ":FREQ:CENT?")).toBe(2.4e9);
    expect(num(sim, ":INIT:CONT?")).toBe(0);
    sim.receive(":FREQ:STAR 1e9;:FREQ:STOP 2e9");
    expect(num(sim, ":FREQ:CENT?")).toBe(1.5e9);
    expect(num(sim, ":FREQ:SPAN?")).toBe(1e9);
    sim.receive("*RST");
    expect(num(sim, ":FREQ:CENT?")).toBe(1e9);
    sim.receive(":FREQ:CENT banana");
    expect(sim.receive(":SYST:ERR?")).toBe('-224,"Illegal parameter value"');
  });

  it("its marker reads the 1 GHz tone when on it, else the noise floor", () => {
    const sim = new SpectrumAnalyzerSimulator();
    expect(num(sim, ":CALC:MARK1:Y?")).toBe(-20);
    sim.receive(":CALC:MARK1:X 1.02 GHz");
    expect(num(sim, ":CALC:MARK1:Y?")).toBe(-90);
  });

  it("reports and accepts the trace format; *RST restores ASCII, big-endian", () => {
    const sim = new SpectrumAnalyzerSimulator();
    expect(sim.receive(":FORM?")).toBe("ASC,8");
    expect(sim.receive(":FORM:BORD?")).toBe("NORM");
    sim.receive(":FORM REAL,32;:FORM:BORD SWAP");
    expect(sim.receive(":FORMat:DATA?")).toBe("REAL,32");
    expect(sim.receive(":FORM:BORD?")).toBe("SWAP");
    sim.receive(":FORM:DATA REAL,64");
    expect(sim.receive(":FORM?")).toBe("REAL,64");
    sim.receive(":FORM INT,32");
    expect(sim.receive(":SYST:ERR?")).toBe('-224,"Illegal parameter value"');
    sim.receive("*RST");
    expect(sim.settings.format).toEqual({ form: "ASC", byteOrder: "NORM" });
  });

  it("serves one trace point per sweep point, its tones through the RBW filter", () => {
    const sim = new SpectrumAnalyzerSimulator();
    sim.receive(":SWE:POIN 201");
    const points = parseTraceData(Buffer.from(sim.receive(":TRAC:DATA? TRACE1")!), { form: "ASC", byteOrder: "NORM" });
    expect(points).toHaveLength(201);
    // 0.95 to 1.05 GHz in 500 kHz steps: the tones fall on points 100 and 150.
    expect(points[100]).toBeCloseTo(-20, 2);
    expect(points[150]).toBeCloseTo(-60, 1);
    expect(Math.max(...points.slice(0, 90))).toBeLessThan(-88);
    expect(sim.receive(":TRAC:DATA? TRACE6")).toBe(sim.receive(":TRAC:DATA? TRACE1"));
    expect(sim.receive(":TRAC:DATA? TRACE7")).toBeUndefined();
    expect(sim.receive(":SYST:ERR?")).toBe('-224,"Illegal parameter value"');
  });

  it("its noise floor rises 10 dB per decade of RBW", () => {
    const floorAt = (rbw: string) => {
      const sim = new SpectrumAnalyzerSimulator();
      sim.receive(`:BAND ${rbw};:FORM REAL,32`);
      const points = parseTraceData(Buffer.from(sim.receive(":TRAC:DATA? TRACE1")!, "latin1"), { form: "REAL,32", byteOrder: "NORM" });
      return [...points].sort((a, b) => a - b)[points.length >> 1]!;
    };
    expect(floorAt("1 MHz")).toBeCloseTo(-90, 0);
    expect(floorAt("100 kHz")).toBeCloseTo(-100, 0);
    expect(floorAt("10 kHz")).toBeCloseTo(-110, 0);
  });

  it("its marker also finds the weaker tone at 1.025 GHz", () => {
    const sim = new SpectrumAnalyzerSimulator();
    sim.receive(":CALC:MARK1:X 1.025 GHz");
    expect(num(sim, ":CALC:MARK1:Y?")).toBe(-60);
  });
});
