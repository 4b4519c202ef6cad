import { writeFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../../agent/config/config.js";
import { tempDir } from "../helpers/models.js";
import { createAllowlist } from "../../firmware-bridge/instrumentBridge.js";
import { ScpiAllowlist } from "../../firmware-bridge/scpiAllowlist.js";
import { parseInstrumentUri } from "../../firmware-bridge/instrumentUri.js";

const allowlist = new ScpiAllowlist();

describe("the read-only SCPI allowlist", () => {
  it.each([
    ["*IDN?", "*IDN?"],
    ["*idn?", "*IDN?"],
    [":SENSe:FREQuency:CENTer?", "FREQ:CENT?"],
    ["FREQ:CENT?", "FREQ:CENT?"],
    [":sens:freq:cent?", "FREQ:CENT?"],
    ["frequency:span?", "FREQ:SPAN?"],
    [":SENS:BAND:RES?", "BAND?"],
    [":BWIDth?", "BAND?"],
    [":SENSe:BANDwidth:VIDeo?", "BAND:VID?"],
    [":DISPlay:WINDow1:TRACe:Y:SCALe:RLEVel?", "DISP:WIND:TRAC:Y:RLEV?"],
    [":CALC:MARK:X?", "CALC:MARK:X?"],
    [":CALCulate:MARKer1:Y?", "CALC:MARK:Y?"],
    ["  :SWE:TIME?  ", "SWE:TIME?"],
  ])("accepts %j as %s", (line, canonical) => {
    const result = allowlist.check(line);
    expect(result.ok).toBe(true);
    if (result.ok) expect(result.queries.map((q) => q.canonical)).toEqual([canonical]);
  });

  it("sends the canonical short form with a leading colon", () => {
    const result = allowlist.check(":SENSe:FREQuency:CENTer?");
    expect(result.ok && result.queries[0]?.wire).toBe(":FREQ:CENT?");
  });

  it("accepts ;-joined queries, resolving a relative header against the previous path", () => {
    const result = allowlist.check(":FREQ:CENT?;SPAN?;*IDN?");
    expect(result.ok && result.queries.map((q) => q.wire)).toEqual([":FREQ:CENT?", ":FREQ:SPAN?", "*IDN?"]);
  });

  it.each([
    [":FREQ:CENT 1e9", "would change instrument state"],
    ["*RST", "resets the instrument"],
    ["*CLS", "clears the instrument's status"],
    [":sens:freq:cent 2e9", "would change instrument state"],
    ["FREQ:CENT?;:FREQ:CENT 1e9", '":FREQ:CENT 1e9"'],
    ["FREQ:CENT?\n*RST", "line break"],
    ["FREQ:CENT?\r*RST", "line break"],
    [":SYST:PRES", "presets the instrument"],
    [":INIT:CONT OFF", "measurement sweep"],
    [":INIT", "measurement sweep"],
    [":INITiate:IMMediate", "measurement sweep"],
    [":SENS:DET:TRAC?", "not on the read-only allowlist"],
    [':MMEM:STOR:STAT 1,"x"', "would change"],
    [":FREQ:CENT? 1e9", "parameters"],
    ["", "empty"],
    ["*IDN?;;*IDN?", "empty command"],
    ["FREQ:CENT?\u0007", "control character"],
    ["频率?", "printable ASCII"],
    ["x".repeat(300) + "?", "longer than"],
    [":FREQUE:CENT?", "not on the read-only allowlist"],
  ])("refuses %j naming why", (line, why) => {
    const result = allowlist.check(line);
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.message).toContain(why);
      expect(result.message).toContain("Nothing was sent");
    }
  });

  it.each([
    [":TRAC:DATA? TRACE1", ":TRAC:DATA? TRACE1"],
    [":TRACe:DATA? TRACE6", ":TRAC:DATA? TRACE6"],
    ["trace:data? trace3", ":TRAC:DATA? TRACE3"],
    [":TRAC1:DATA?   TRACE2", ":TRAC:DATA? TRACE2"],
    [":FORM?", ":FORM?"],
    [":FORMat:DATA?", ":FORM?"],
    [":FORM:BORD?", ":FORM:BORD?"],
    [":FORMat:BORDer?", ":FORM:BORD?"],
  ])("accepts the trace read and format query %j, sent as %j", (line, wire) => {
    const result = allowlist.check(line);
    expect(result.ok && result.queries.map((q) => q.wire)).toEqual([wire]);
  });

  it.each([
    [":TRAC:DATA? TRACE7", 'TRAC:DATA? takes exactly one trace name, TRACE1 to TRACE6, not "TRACE7"'],
    [":TRAC:DATA? TRACE0", 'not "TRACE0"'],
    [":TRAC:DATA? ALL", 'not "ALL"'],
    [":TRAC:DATA? TRACE", 'not "TRACE"'],
    [":TRAC:DATA? TRACE1,TRACE2", 'not "TRACE1,TRACE2"'],
    [":TRAC:DATA? TRACE1 TRACE2", 'not "TRACE1 TRACE2"'],
    [":TRAC:DATA?", "takes exactly one trace name, TRACE1 to TRACE6"],
    [":TRAC:DATA? TRACE1;*IDN?", "must be alone on its line"],
    ["*IDN?;:TRAC:DATA? TRACE1", "must be alone on its line"],
    [":TRAC:DATA? TRACE1;:FREQ:CENT 1e9", "would change instrument state"],
    [":TRAC:DATA TRACE1,-90", "would change instrument state"],
    [":FORM ASC", "would change instrument state"],
    [":FORM REAL,32", "would change instrument state"],
    [":FORMat:DATA REAL,64", "would change instrument state"],
    [":FORM:BORD SWAP", "would change instrument state"],
    [":FORM? ASC", "parameters"],
    [":TRAC? TRACE1", "parameters"],
  ])("refuses the trace or format line %j naming why", (line, why) => {
    const result = allowlist.check(line);
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.message).toContain(why);
      expect(result.message).toContain("Nothing was sent");
    }
  });

  it("refuses the whole line, even the allowlisted part", () => {
    const result = allowlist.check("*IDN?;*RST;:FREQ:SPAN?");
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.refusals.map((r) => r.part)).toEqual(["*RST"]);
  });

  it("takes extra queries from the configuration, learning mixed-case long forms", () => {
    const extended = new ScpiAllowlist([":SENSe:DETector:TRACe?", ":SENS:AVER:COUN?"]);
    expect(extended.check(":DET:TRAC?").ok).toBe(true);
    expect(extended.check(":sense:detector:trace?").ok).toBe(true);
    expect(extended.check(":AVER:COUN?").ok).toBe(true);
    // The error queue is on the default list (the model's read_errors tool), in either form.
    expect(allowlist.check(":SYST:ERR:NEXT?").ok).toBe(true);
    expect(allowlist.check(":DET:TRAC?").ok).toBe(false);
  });

  it("refuses configured entries that are not queries or belong to state-changing subsystems", () => {
    expect(() => createAllowlist([":FREQ:CENT 1e9"])).toThrow(/scpiAllow: ":FREQ:CENT 1e9" is not a SCPI query header/);
    expect(() => createAllowlist([":INIT:CONT?"])).toThrow(/state-changing/);
    expect(() => createAllowlist([":FREQ:CENT 1e9"])).toThrow(expect.objectContaining({ code: "IA_ERR_CONFIG" }) as Error);
  });
});

describe("firmware bridge settings", () => {
  it("scpiAllow takes a comma-separated flag or a list in the file; scpiTimeout defaults to 3000 ms", () => {
    const cwd = tempDir("iagent-scpi-config-");
    const fromFlag = loadConfig({ flags: { scpiAllow: ":SENS:DET:TRAC?, :SYST:ERR?" }, env: {}, cwd });
    expect(fromFlag.config.scpiAllow).toEqual([":SENS:DET:TRAC?", ":SYST:ERR?"]);
    expect(fromFlag.config.scpiTimeout).toBe(3000);
    writeFileSync(path.join(cwd, "instrument-agent.yaml"), "scpiAllow:\n  - ':SENS:DET:TRAC?'\nscpiTimeout: 800\n");
    const fromFile = loadConfig({ flags: {}, env: {}, cwd });
    expect(fromFile.config.scpiAllow).toEqual([":SENS:DET:TRAC?"]);
    expect(fromFile.config.scpiTimeout).toBe(800);
    expect(() => loadConfig({ flags: { scpiTimeout: "soon" }, env: {}, cwd })).toThrow(/--scpi-timeout/);
  });
});

describe("instrument URIs", () => {
  it.each([
    ["tcp://10.0.0.5:5025", { kind: "tcp", host: "10.0.0.5", port: 5025 }],
    ["tcp://analyzer.lab", { kind: "tcp", host: "analyzer.lab", port: 5025 }],
    ["tcp://[::1]:5555", { kind: "tcp", host: "::1", port: 5555 }],
    ["serial:///dev/ttyUSB0?baud=9600", { kind: "serial", path: "/dev/ttyUSB0", baudRate: 9600 }],
    ["serial:///dev/ttyS0", { kind: "serial", path: "/dev/ttyS0", baudRate: 9600 }],
    ["serial://COM5?baud=19200", { kind: "serial", path: "COM5", baudRate: 19200 }],
    ["prologix:///dev/ttyUSB0?addr=18", { kind: "prologix", path: "/dev/ttyUSB0", baudRate: 115200, gpibAddress: 18 }],
    ["sim", { kind: "sim" }],
  ])("parses %s", (uri, expected) => {
    expect(parseInstrumentUri(uri)).toEqual(expected);
  });

  it("off means no instrument", () => {
    expect(parseInstrumentUri("off")).toBeUndefined();
  });

  it.each([
    ["http://x", "unknown scheme"],
    ["tcp://host:99999", "port must be from 1 to 65535"],
    ["tcp://host:abc", "expected tcp://host"],
    ["serial://dev/ttyUSB0", "not absolute"],
    ["serial:///dev/ttyUSB0?baud=1234", "not a standard rate"],
    ["serial:///dev/ttyUSB0?speed=9600", "unknown parameter"],
    ["prologix:///dev/ttyUSB0", "GPIB address is missing"],
    ["prologix:///dev/ttyUSB0?addr=31", "addr must be from 0 to 30"],
    ["ttyUSB0", "not a URI"],
  ])("refuses %s with IA_ERR_INSTRUMENT_URI", (uri, why) => {
    expect(() => parseInstrumentUri(uri)).toThrow(
      expect.objectContaining({ code: "IA_ERR_INSTRUMENT_URI", exitCode: 2, message: expect.stringContaining(why) }) as Error,
    );
  });
});
