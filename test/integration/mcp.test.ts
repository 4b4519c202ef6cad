import { readFileSync } from "node:fs";
import path from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SIM_IDN } from "../../firmware-bridge/simulator.js";
import { startSimulatorServer } from "../../firmware-bridge/simulatorServer.js";
import type { SimulatorServer } from "../../firmware-bridge/simulatorServer.js";
import { BUNDLE, ROOT, requireBundle } from "../helpers/bundle.js";
import { modelArgs, tempDir } from "../helpers/models.js";
import { scriptedModel } from "../helpers/thirdParty.js";
import { freePort } from "../helpers/mosquitto.js";
import { waitUntil } from "../helpers/wait.js";

// `instrument-agent mcp` as an MCP client starts it: the SDK's own Client and StdioClientTransport
// spawn the real bundle. The instrument is the simulator on a TCP socket; what reached it is its
// own record of received lines. A small wrapper between the client and the agent reports how the
// agent exited (the client's transport does not say), and forwards signals, saying so: the
// client sends SIGTERM when the agent has not exited 2 s after its stdin closed.

const REPLY = "The analyzer is centered at 1 GHz.";
const WRAPPER = `
const { spawn } = require("node:child_process");
const child = spawn(process.execPath, process.argv.slice(1), { stdio: "inherit" });
for (const signal of ["SIGTERM", "SIGINT"])
  process.on(signal, () => {
    process.stderr.write("\\nwrapper forwards " + signal + "\\n");
    child.kill(signal);
  });
child.on("exit", (code, signal) => {
  process.stderr.write("\\nmcp exited: code=" + code + " signal=" + signal + "\\n", () => process.exit(code ?? 1));
});`;

const dir = tempDir("iagent-mcp-");
let instrument: SimulatorServer;
let model: string;

interface Session {
  client: Client;
  transport: StdioClientTransport;
  stderr: () => string;
  /** Errors the client met reading the agent's stdout: anything there that is not the protocol. */
  errors: Error[];
}

async function connect(extra: string[], withModel = model): Promise<Session> {
  requireBundle();
  const env = Object.fromEntries(Object.entries(process.env).filter((entry): entry is [string, string] => entry[1] !== undefined));
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: ["-e", WRAPPER, BUNDLE, "mcp", ...modelArgs(withModel), ...extra],
    cwd: ROOT,
    env: { ...env, NO_COLOR: "1" },
    stderr: "pipe",
  });
  let stderr = "";
  transport.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
  const client = new Client({ name: "instrument-agent-test", version: "1.0.0" });
  const errors: Error[] = [];
  client.onerror = (error) => errors.push(error);
  await client.connect(transport);
  return { client, transport, stderr: () => stderr, errors };
}

type ToolResult = { isError?: boolean; content: { type: string; text?: string }[] };

async function call(session: Session, name: string, args: Record<string, unknown> = {}): Promise<ToolResult> {
  return (await session.client.callTool({ name, arguments: args })) as ToolResult;
}

const textOf = (result: ToolResult) => result.content.map((part) => part.text ?? "").join("\n");

beforeAll(async () => {
  instrument = await startSimulatorServer({ port: 0 });
  model = await scriptedModel(path.join(dir, "reply.gguf"), REPLY);
});

afterAll(async () => {
  await instrument?.close();
});

describe("instrument-agent mcp with an instrument", () => {
  let session: Session;

  beforeAll(async () => {
    session = await connect(["--instrument", `tcp://127.0.0.1:${instrument.port}`]);
  });

  afterAll(async () => {
    await session?.client.close();
  });

  it("lists the four tools, each with its input schema", async () => {
    const { tools } = await session.client.listTools();
    expect(tools.map((tool) => tool.name).sort()).toEqual(["ask", "instrument_settings", "read_trace", "scpi_query"]);
    const schema = (name: string) => tools.find((tool) => tool.name === name)?.inputSchema;
    expect(schema("ask")?.required).toEqual(["question"]);
    expect(schema("scpi_query")?.required).toEqual(["query"]);
    expect(schema("read_trace")?.properties?.["trace"]).toMatchObject({ type: "integer", minimum: 1, maximum: 6 });
  });

  it("ask answers through the local model: exactly the scripted text, with progress while it streams", async () => {
    const progress: { progress: number; message?: string }[] = [];
    const result = (await session.client.callTool({ name: "ask", arguments: { question: "Where is the analyzer centered?" } }, undefined, {
      onprogress: (update) => progress.push(update),
      resetTimeoutOnProgress: true,
    })) as ToolResult;
    expect(result.isError).toBeFalsy();
    expect(result.content).toEqual([{ type: "text", text: REPLY }]);
    expect(progress[0]?.message).toMatch(/^answering: \d+ characters so far$/);
    expect(progress.every((update, i) => i === 0 || update.progress > progress[i - 1]!.progress)).toBe(true);
  });

  it("instrument_settings reads the live settings: the simulator's IDN and center", async () => {
    const result = await call(session, "instrument_settings");
    expect(result.isError).toBeFalsy();
    const [maker, modelName, serial] = SIM_IDN.split(",");
    expect(textOf(result)).toContain(`${maker} ${modelName} (serial ${serial}`);
    expect(textOf(result)).toContain(`center ${instrument.simulator.settings.center / 1e9} GHz`);
  });

  it("scpi_query refuses a setter as a tool error, and the line never reaches the instrument", async () => {
    const from = instrument.simulator.received.length;
    const center = instrument.simulator.settings.center;
    const result = await call(session, "scpi_query", { query: ":FREQ:CENT 2e9" });
    expect(result.isError).toBe(true);
    expect(textOf(result)).toMatch(/^error IA_ERR_SCPI_REFUSED: refused ":FREQ:CENT 2e9"/);
    expect(instrument.simulator.received.slice(from).filter((line) => /2e9|CENT\s/i.test(line))).toEqual([]);
    expect(instrument.simulator.settings.center).toBe(center);
  });

  it("scpi_query sends an allowlisted read: *IDN? gets the IDN", async () => {
    const from = instrument.simulator.received.length;
    const result = await call(session, "scpi_query", { query: "*IDN?" });
    expect(result.isError).toBeFalsy();
    expect(textOf(result)).toBe(SIM_IDN);
    expect(instrument.simulator.received.slice(from)).toContain("*IDN?");
  });

  it("read_trace summarises a trace: the simulator's 1 GHz tone", async () => {
    const from = instrument.simulator.received.length;
    const result = await call(session, "read_trace", { trace: 2 });
    expect(result.isError).toBeFalsy();
    expect(textOf(result)).toMatch(/^peak 1\.0000 GHz -?\d+\.\d dBm/m);
    expect(instrument.simulator.received.slice(from)).toContain(":TRAC:DATA? TRACE2");
  });

  it("a trace outside 1 to 6 is refused by the schema before anything is read", async () => {
    const from = instrument.simulator.received.length;
    const result = await call(session, "read_trace", { trace: 7 });
    expect(result.isError).toBe(true);
    expect(instrument.simulator.received.slice(from)).toEqual([]);
  });

  it("the live settings are a resource too", async () => {
    const { resources } = await session.client.listResources();
    expect(resources.map((resource) => resource.uri)).toEqual(["instrument://settings"]);
    const { contents } = await session.client.readResource({ uri: "instrument://settings" });
    expect(contents).toHaveLength(1);
    expect(contents[0]).toMatchObject({ uri: "instrument://settings", mimeType: "text/plain" });
    expect((contents[0] as { text: string }).text).toContain(`center ${instrument.simulator.settings.center / 1e9} GHz`);
  });

  it("writes nothing but the protocol on stdout, and exits 0 when the client closes", async () => {
    await session.client.close();
    await waitUntil(() => session.stderr().includes("mcp exited:"), { what: "the agent's exit", timeoutMs: 10_000 });
    expect(session.stderr()).toContain("mcp exited: code=0 signal=null");
    expect(session.stderr()).not.toContain("wrapper forwards");
    expect(session.errors).toEqual([]);
  });
});

describe("instrument-agent mcp without an instrument", () => {
  it("answers ask, gives IA_ERR_NO_INSTRUMENT from the instrument tools, and exits 0 on SIGTERM", async () => {
    const session = await connect([]);
    try {
      expect((await call(session, "ask", { question: "hello" })).content).toEqual([{ type: "text", text: REPLY }]);
      for (const [name, args] of [
        ["scpi_query", { query: "*IDN?" }],
        ["instrument_settings", {}],
        ["read_trace", { trace: 1 }],
      ] as const) {
        const result = await call(session, name, args);
        expect(result.isError, name).toBe(true);
        expect(textOf(result), name).toMatch(/^error IA_ERR_NO_INSTRUMENT: no instrument is configured/);
      }
      process.kill(session.transport.pid ?? 0, "SIGTERM");
      await waitUntil(() => session.stderr().includes("mcp exited:"), { what: "the agent's exit", timeoutMs: 10_000 });
      expect(session.stderr()).toContain("wrapper forwards SIGTERM");
      expect(session.stderr()).toContain("mcp exited: code=0 signal=null");
      expect(session.errors).toEqual([]);
    } finally {
      await session.client.close();
    }
  });
});

describe("instrument-agent mcp with the model's own tools and the audit log", () => {
  const AFTER = "The resolution bandwidth is as read.";
  const toolCall = '<tool_call>\n{"name": "scpi_query", "arguments": {"query": ":SENS:BAND:RES?"}}\n</tool_call>';

  it("ask carries the agent's instrument calls; the audit log names the client's queries as origin mcp", async () => {
    const calling = await scriptedModel(path.join(dir, "calls.gguf"), toolCall, AFTER);
    const audit = path.join(dir, "audit.jsonl");
    const uri = `tcp://127.0.0.1:${instrument.port}`;
    const session = await connect(["--instrument", uri, "--tools", "on", "--scpi-audit", audit], calling);
    try {
      const result = await session.client.callTool({ name: "ask", arguments: { question: "What is the RBW?" } });
      const content = (result as ToolResult).content;
      expect(content[0]).toEqual({ type: "text", text: AFTER });
      expect(content[1]?.text).toMatch(
        /^The agent's instrument calls:\n\[tool\] scpi_query \{"query":":SENS:BAND:RES\?"\} -> \{"reply":"[^"]+"\}$/,
      );
      await call(session, "scpi_query", { query: "*IDN?" });
      await call(session, "scpi_query", { query: "*RST" });
    } finally {
      await session.client.close();
    }
    const lines = readFileSync(audit, "utf8")
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as { line: string; origin: string; replyBytes?: number; error?: { code: string } });
    expect(lines.filter((entry) => entry.origin === "model")).toEqual([expect.objectContaining({ line: ":SENS:BAND:RES?" })]);
    expect(lines.filter((entry) => entry.origin === "mcp")).toEqual([
      expect.objectContaining({ line: "*IDN?", replyBytes: expect.any(Number) }),
      expect.objectContaining({ line: "*RST", error: expect.objectContaining({ code: "IA_ERR_SCPI_REFUSED" }) }),
    ]);
  });
});

describe("instrument-agent mcp with an instrument that does not answer", () => {
  it("instrument_settings and scpi_query are tool errors saying why; the resource still reads the reason", async () => {
    const closed = await freePort();
    const session = await connect(["--instrument", `tcp://127.0.0.1:${closed}`, "--scpi-timeout", "500"]);
    try {
      const settings = await call(session, "instrument_settings");
      expect(settings.isError).toBe(true);
      expect(textOf(settings)).toMatch(
        new RegExp(`^error IA_ERR_INSTRUMENT_UNREACHABLE: Instrument \\(tcp://127\\.0\\.0\\.1:${closed}\\): could not be read`),
      );
      const query = await call(session, "scpi_query", { query: "*IDN?" });
      expect(query.isError).toBe(true);
      expect(textOf(query)).toMatch(/^error IA_ERR_INSTRUMENT_UNREACHABLE: /);
      const { contents } = await session.client.readResource({ uri: "instrument://settings" });
      expect((contents[0] as { text: string }).text).toContain("could not be read");
    } finally {
      await session.client.close();
    }
  });
});
