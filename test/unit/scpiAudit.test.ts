import { existsSync, readFileSync, writeFileSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { createLogger } from "../../common/logger.js";
import { InstrumentBridge } from "../../firmware-bridge/instrumentBridge.js";
import { SNAPSHOT_QUERIES } from "../../firmware-bridge/instrumentContext.js";
import { MAX_AUDIT_LINE, ScpiAuditLog } from "../../firmware-bridge/scpiAudit.js";
import { tempDir } from "../helpers/models.js";

// The SCPI audit log (README, "Firmware bridge"): a real file in a temp directory, written
// by the audit writer alone and by the bridge for every path a line can take.

function auditLines(file: string): Record<string, unknown>[] {
  return readFileSync(file, "utf8")
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

function capturingLogger(): { logger: ReturnType<typeof createLogger>; lines: () => Record<string, unknown>[] } {
  const seen: string[] = [];
  const stderr = new Writable({
    write(chunk: Buffer, _encoding, done) {
      seen.push(...chunk.toString("utf8").split("\n").filter(Boolean));
      done();
    },
  });
  return { logger: createLogger({ level: "info", stderr }), lines: () => seen.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

describe("the audit writer", () => {
  it("makes the directory, appends one JSON line per entry after what the file held, and keeps the key order", () => {
    const file = path.join(tempDir("iagent-audit-"), "deeper", "still", "scpi.jsonl");
    const at = new Date("2026-12-04T10:00:00.000Z");
    const first = ScpiAuditLog.open({ file, now: () => at });
    first.write({ line: ":sense:freq:cent?", origin: "console", wire: ":FREQ:CENT?", replyBytes: 20 });
    first.close();
    first.write({ line: "*IDN?", origin: "console", replyBytes: 1 });
    const second = ScpiAuditLog.open({ file, now: () => at });
    second.write({ line: "*RST", origin: "mqtt:lab/bench/replies", error: { code: "IA_ERR_SCPI_REFUSED", message: 'refused "*RST"' } });
    second.close();
    second.close();
    const text = readFileSync(file, "utf8");
    expect(text.split("\n")).toEqual([
      '{"time":"2026-12-04T10:00:00.000Z","line":":sense:freq:cent?","origin":"console","wire":":FREQ:CENT?","replyBytes":20}',
      '{"time":"2026-12-04T10:00:00.000Z","line":"*RST","origin":"mqtt:lab/bench/replies","error":{"code":"IA_ERR_SCPI_REFUSED","message":"refused \\"*RST\\""}}',
      "",
    ]);
    expect(first.writeErrors).toBe(0);
  });

  it("keeps a line with control characters on one audit line, and clips a very long one", () => {
    const file = path.join(tempDir("iagent-audit-"), "scpi.jsonl");
    const log = ScpiAuditLog.open({ file });
    log.write({ line: "FREQ:CENT?\n*RST", origin: "serial", error: { code: "IA_ERR_SCPI_REFUSED", message: "line break" } });
    log.write({ line: "X".repeat(5000), origin: "serial", error: { code: "IA_ERR_SCPI_REFUSED", message: "too long" } });
    log.close();
    const lines = auditLines(file);
    expect(lines).toHaveLength(2);
    expect(lines[0]!.line).toBe("FREQ:CENT?\n*RST");
    expect(Date.parse(lines[0]!.time as string)).not.toBeNaN();
    expect(lines[1]!.line).toBe(`${"X".repeat(MAX_AUDIT_LINE)}... (5000 characters)`);
  });

  it("two writers on one file never interleave their lines", () => {
    const file = path.join(tempDir("iagent-audit-"), "shared.jsonl");
    const a = ScpiAuditLog.open({ file });
    const b = ScpiAuditLog.open({ file });
    for (let i = 0; i < 500; i++) {
      a.write({ line: `a${i}`.padEnd(200, "a"), origin: "cli", replyBytes: i });
      b.write({ line: `b${i}`.padEnd(200, "b"), origin: "smoke", replyBytes: i });
    }
    a.close();
    b.close();
    const lines = auditLines(file);
    expect(lines).toHaveLength(1000);
    expect(lines.filter((l) => l.origin === "cli").map((l) => l.replyBytes)).toEqual([...Array(500).keys()]);
  });

  it("a file that cannot be opened is IA_ERR_CONFIG (exit 2) naming the flag and the path", () => {
    const dir = tempDir("iagent-audit-");
    const blocker = path.join(dir, "a-file");
    writeFileSync(blocker, "");
    const under = path.join(blocker, "scpi.jsonl");
    expect(() => ScpiAuditLog.open({ file: under })).toThrow(expect.objectContaining({ code: "IA_ERR_CONFIG", exitCode: 2 }));
    expect(() => ScpiAuditLog.open({ file: under })).toThrow(`--scpi-audit ${under}: cannot open the SCPI audit log`);
    expect(() => ScpiAuditLog.open({ file: dir })).toThrow(/EISDIR/);
  });

  it("a write that fails later is logged once and counted, and never throws", () => {
    expect(existsSync("/dev/full"), "this test writes to /dev/full (Linux)").toBe(true);
    const { logger, lines } = capturingLogger();
    const log = ScpiAuditLog.open({ file: "/dev/full", logger });
    for (let i = 0; i < 3; i++) expect(() => log.write({ line: "*IDN?", origin: "cli", replyBytes: 40 })).not.toThrow();
    log.close();
    expect(log.writeErrors).toBe(3);
    const errors = lines().filter((l) => l.msg === "cannot write the SCPI audit log; later failures are counted, not logged");
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ file: "/dev/full", err: { code: "ENOSPC" } });
  });
});

describe("the bridge audits and counts every line", () => {
  it("one line per query sent, one per refused line, each with its origin; refusals never reach the instrument", async () => {
    const file = path.join(tempDir("iagent-audit-"), "scpi.jsonl");
    const bridge = new InstrumentBridge({ uri: "sim", auditFile: file });
    expect(await bridge.query("*IDN?", "cli")).toContain("N9020A");
    expect(await bridge.query(":FREQ:CENT?;:sense:freq:span?", "mqtt:lab/replies")).toBe("+1.00000000000E+009;+1.00000000000E+008");
    await expect(bridge.query(":FREQ:CENT 2e9", "model")).rejects.toMatchObject({ code: "IA_ERR_SCPI_REFUSED" });
    await expect(bridge.query("*IDN?;*RST", "serial")).rejects.toMatchObject({ code: "IA_ERR_SCPI_REFUSED" });
    await bridge.contextProvider();
    await bridge.close();
    expect(bridge.simulator?.received).not.toContain("*RST");
    expect(bridge.simulator?.received.some((line) => line.includes("2e9") || line.includes("2E9"))).toBe(false);
    const lines = auditLines(file);
    const contextCount = Object.keys(SNAPSHOT_QUERIES).length;
    expect(lines.map((l) => [l.origin, l.line])).toEqual([
      ["cli", "*IDN?"],
      ["mqtt:lab/replies", ":FREQ:CENT?"],
      ["mqtt:lab/replies", ":sense:freq:span?"],
      ["model", ":FREQ:CENT 2e9"],
      ["serial", "*IDN?;*RST"],
      ...Object.values(SNAPSHOT_QUERIES).map((query) => ["context", query]),
    ]);
    // What was sent is what the simulator received, in order.
    expect(lines.filter((l) => l.wire !== undefined).map((l) => l.wire)).toEqual(bridge.simulator?.received);
    expect(lines[0]).toMatchObject({ replyBytes: "Keysight Technologies,N9020A,SIM00001,A.99.99".length });
    expect(lines[3]).toMatchObject({ error: { code: "IA_ERR_SCPI_REFUSED" } });
    expect(lines[3]!.wire).toBeUndefined();
    expect(lines[3]!.replyBytes).toBeUndefined();
    expect(bridge.counts).toEqual({ sent: 3 + contextCount, refused: 2, failed: 0, auditWriteErrors: 0 });
  });

  it("a query to an unreachable instrument is audited with its error and counted as failed", async () => {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as net.AddressInfo).port;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    const file = path.join(tempDir("iagent-audit-"), "scpi.jsonl");
    const bridge = new InstrumentBridge({ uri: `tcp://127.0.0.1:${port}`, timeoutMs: 500, auditFile: file });
    await expect(bridge.query(":BAND?;:SWE:TIME?", "console")).rejects.toMatchObject({ code: "IA_ERR_INSTRUMENT_UNREACHABLE" });
    await bridge.close();
    const lines = auditLines(file);
    // The first part failed; the second was never sent and has no line.
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ line: ":BAND?", origin: "console", wire: ":BAND?", error: { code: "IA_ERR_INSTRUMENT_UNREACHABLE" } });
    expect(bridge.counts).toEqual({ sent: 0, refused: 0, failed: 1, auditWriteErrors: 0 });
  });

  it("without an audit file the bridge still counts, and the counts carry no audit key", async () => {
    const bridge = new InstrumentBridge({ uri: "sim" });
    await bridge.query("*IDN?", "cli");
    await bridge.query("*RST", "cli").catch(() => undefined);
    await bridge.close();
    expect(bridge.counts).toEqual({ sent: 1, refused: 1, failed: 0 });
  });
});
