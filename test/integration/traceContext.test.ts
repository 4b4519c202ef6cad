import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { ROOT, runAgent } from "../helpers/bundle.js";
import { modelArgs, synthModel, tempDir } from "../helpers/models.js";
import { requireTool } from "../helpers/packRelease.js";
import { waitUntil } from "../helpers/wait.js";

// The trace in the live context, end to end: the real bundle asks a separately written
// Python stand-in analyzer (test/fixtures/standin_instrument.py) over TCP, once serving an
// ASCII trace and once a REAL,32 little-endian block, and the context it logs names both
// tones and the floor. The stand-in's log shows that only queries reached it.
const STANDIN = path.join(ROOT, "test", "fixtures", "standin_instrument.py");
const dir = tempDir("iagent-trace-");
let model: string;
let standin: ChildProcess | undefined;

interface Standin {
  port: number;
  log: string;
  /** The stand-in's own count of LF bytes inside its trace reply. */
  lfInTrace: number;
}

async function startStandin(format: "asc" | "real32le"): Promise<Standin> {
  const python = requireTool("python3", "apt-get install -y python3");
  const log = path.join(dir, `received-${format}.txt`);
  const child = spawn(python, [STANDIN, "--port", "0", "--log", log, "--format", format], { stdio: ["ignore", "pipe", "pipe"] });
  standin = child;
  let out = "";
  let err = "";
  child.stdout!.setEncoding("utf8").on("data", (chunk: string) => (out += chunk));
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (err += chunk));
  await waitUntil(() => /LF and/.test(out) || child.exitCode !== null, {
    what: "the stand-in instrument's listening line",
    timeoutMs: 10_000,
  });
  const port = /listening on 127\.0\.0\.1:(\d+)/.exec(out)?.[1];
  if (port === undefined) throw new Error(`the stand-in did not start: ${out}${err}`);
  return { port: Number(port), log, lfInTrace: Number(/(\d+) LF/.exec(out)?.[1]) };
}

beforeAll(async () => {
  model = await synthModel(dir);
});

afterEach(() => {
  standin?.kill("SIGTERM");
  standin = undefined;
});

/** The context the agent logged at debug before answering. */
function loggedContext(stderr: string): string {
  const line = stderr.split("\n").find((l) => l.includes('"msg":"instrument context"'));
  expect(line, stderr).toBeDefined();
  return (JSON.parse(line!) as { context: string }).context;
}

const TRACE_LINES = [
  "trace: 1001 points, 0.96 GHz to 1.06 GHz; floor -90 dBm (median)",
  // -23.45 dBm rounds half away from zero to -23.5, whether read as ASCII or as a float32.
  "peak 1.0000 GHz -23.5 dBm (67 dB above floor)",
  "peak 1.0200 GHz -61.2 dBm (29 dB above floor)",
];

describe.each([
  ["asc", "an ASCII trace"],
  ["real32le", "a REAL,32 little-endian block"],
] as const)("the live context from a stand-in serving %s (%s)", (format, _description) => {
  it("names both tones to 0.1 dB and the floor to 1 dB, and nothing but queries reaches the instrument", async () => {
    const instrument = await startStandin(format);
    // The block holds LF bytes, so a reader that cut it at the first LF would fail here.
    if (format === "real32le") expect(instrument.lfInTrace).toBeGreaterThan(0);
    const result = await runAgent(
      [
        "ask",
        ...modelArgs(model),
        "--temperature",
        "0",
        "--max-tokens",
        "4",
        "--models-dir",
        path.join(dir, "models"),
        "--instrument",
        `tcp://127.0.0.1:${instrument.port}`,
        "--log-level",
        "debug",
        "--json",
        "Which tones are on the screen?",
      ],
      { timeoutMs: 90_000 },
    );
    expect(result.code, result.stderr).toBe(0);
    const context = loggedContext(result.stderr);
    const lines = context.split("\n");
    expect(lines[0]).toContain("Stand-in Instruments SA-1001");
    expect(lines[0]).toContain("center 1.01 GHz, span 100 MHz (960 MHz to 1.06 GHz)");
    expect(lines[0]).toContain("1001 sweep points, reference level 0 dBm");
    expect(lines.slice(1)).toEqual(TRACE_LINES);
    expect(result.stderr).not.toContain("note: the instrument");
    // ask --json shows the same reading as the context the answer used.
    expect((JSON.parse(result.stdout) as { context?: string }).context).toBe(context);

    const received = readFileSync(instrument.log, "latin1").split("\n").filter(Boolean);
    expect(received).toContain(":FORM?");
    expect(received).toContain(":FORM:BORD?");
    expect(received).toContain(":TRAC:DATA? TRACE1");
    const writes = received.filter((line) => !line.trim().endsWith("?") && !/^:TRAC:DATA\? TRACE1$/.test(line.trim()));
    expect(writes).toEqual([]);
  });
});
