import { copyFileSync, readFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startSimulatorServer } from "../../firmware-bridge/simulatorServer.js";
import type { SimulatorServer } from "../../firmware-bridge/simulatorServer.js";
import { runAgent } from "../helpers/bundle.js";
import { modelArgs, tempDir } from "../helpers/models.js";
import { startMosquitto } from "../helpers/mosquitto.js";
import type { Mosquitto } from "../helpers/mosquitto.js";
import { spawnAgent, waitForStatus } from "../helpers/mqttAgent.js";
import type { AgentProcess } from "../helpers/mqttAgent.js";
import { mosquittoRr, scriptedModel } from "../helpers/thirdParty.js";

// Scripted models make tool calls through node-llama-cpp's function calling in the real
// bundle; the instrument is the simulator on a TCP socket, and what reached it is its own
// record of received lines, not anything the agent says about itself.

const dir = tempDir("iagent-tools-");
const AFTER = "The resolution bandwidth is as read.";
/** A Qwen tool call as the model writes it, spaced as node-llama-cpp's grammar expects. */
const toolCall = (name: string, args: Record<string, unknown>) => {
  const json = `{${Object.entries(args)
    .map(([key, value]) => `${JSON.stringify(key)}: ${JSON.stringify(value)}`)
    .join(", ")}}`;
  return `<tool_call>\n{"name": "${name}", "arguments": ${json}}\n</tool_call>`;
};
const call = (query: string) => toolCall("scpi_query", { query });
let instrument: SimulatorServer;

interface ToolRecord {
  name: string;
  arguments: { query?: string };
  result?: { reply?: string };
  error?: { code: string; message: string };
}

interface AskJson {
  text: string;
  finishReason: string;
  tools?: ToolRecord[];
  toolLimitReached?: boolean;
  context?: string;
}

async function askJson(model: string, extra: string[] = []): Promise<AskJson> {
  const uri = `tcp://127.0.0.1:${instrument.port}`;
  const result = await runAgent(["ask", ...modelArgs(model), "--instrument", uri, "--tools", "on", "--json", ...extra, "What is the RBW?"]);
  expect(result.code, result.stderr).toBe(0);
  return JSON.parse(result.stdout) as AskJson;
}

/** Lines the simulator received that were not the context's own reads (queries the agent makes before every answer). */
function receivedSince(from: number): string[] {
  return instrument.simulator.received.slice(from);
}

beforeAll(async () => {
  instrument = await startSimulatorServer({ port: 0 });
});

afterAll(async () => {
  await instrument?.close();
});

describe("a read tool call", () => {
  let model: string;

  beforeAll(async () => {
    model = await scriptedModel(path.join(dir, "read.gguf"), call(":SENS:BAND:RES?"), AFTER);
  });

  it("reaches the instrument, and the answer carries the call with its result", async () => {
    const from = instrument.simulator.received.length;
    const answer = await askJson(model);
    expect(answer.text).toBe(AFTER);
    expect(answer.tools).toEqual([{ name: "scpi_query", arguments: { query: ":SENS:BAND:RES?" }, result: { reply: expect.any(String) } }]);
    expect(Number(answer.tools?.[0]?.result?.reply)).toBe(instrument.simulator.settings.rbw);
    // The allowlist sends the canonical short form of the query the model wrote: once for the
    // live context before the answer, once for the call.
    expect(receivedSince(from).filter((line) => line === ":BAND?")).toHaveLength(2);
  });

  it("is printed as one line on the console under ask", async () => {
    const result = await runAgent([
      "ask",
      ...modelArgs(model),
      "--instrument",
      `tcp://127.0.0.1:${instrument.port}`,
      "--tools",
      "on",
      "What is the RBW?",
    ]);
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(`${AFTER}\n`);
    expect(result.stderr).toMatch(/^\[tool\] scpi_query \{"query":":SENS:BAND:RES\?"\} -> \{"reply":"[^"]+"\}$/m);
  });

  it("chat prints the call as one line before the answer", async () => {
    const uri = `tcp://127.0.0.1:${instrument.port}`;
    const result = await runAgent(["chat", ...modelArgs(model), "--instrument", uri, "--tools", "on"], { input: "What is the RBW?\n" });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(
      /\[tool\] scpi_query \{"query":":SENS:BAND:RES\?"\} -> \{"reply":"[^"]+"\}\n+The resolution bandwidth is as read\./,
    );
  });

  it("the audit log has the call and the refusal as origin model, beside the context's reads", async () => {
    const audit = path.join(dir, "audit.jsonl");
    const refusing = await scriptedModel(path.join(dir, "refuse-once.gguf"), call("*RST"), AFTER);
    await askJson(model, ["--scpi-audit", audit]);
    await askJson(refusing, ["--scpi-audit", audit]);
    const lines = readFileSync(audit, "utf8")
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as { line: string; origin: string; replyBytes?: number; error?: { code: string } });
    const byModel = lines.filter((entry) => entry.origin === "model");
    expect(byModel).toEqual([
      expect.objectContaining({ line: ":SENS:BAND:RES?", replyBytes: expect.any(Number) }),
      expect.objectContaining({ line: "*RST", error: expect.objectContaining({ code: "IA_ERR_SCPI_REFUSED" }) }),
    ]);
    expect(lines.filter((entry) => entry.origin === "context").length).toBeGreaterThanOrEqual(2 * 13);
    expect(lines.every((entry) => entry.origin === "context" || entry.origin === "model")).toBe(true);
  });

  it("--tools auto offers the tools to a file named as a catalog model that calls them well, and not to Qwen2.5 0.5B's", async () => {
    const capable = path.join(dir, "qwen2.5-1.5b-instruct-q4_k_m.gguf");
    const small = path.join(dir, "qwen2.5-0.5b-instruct-q4_k_m.gguf");
    copyFileSync(model, capable);
    copyFileSync(model, small);
    expect((await askJson(capable, ["--tools", "auto"])).tools).toHaveLength(1);
    expect((await askJson(small, ["--tools", "auto"])).tools).toBeUndefined();
  });

  it("with --tools off the model is given no tools and the call is only text", async () => {
    const from = instrument.simulator.received.length;
    const answer = await askJson(model, ["--tools", "off"]);
    expect(answer.tools).toBeUndefined();
    expect(answer.text).toContain("<tool_call>");
    expect(receivedSince(from).filter((line) => line === ":BAND?")).toHaveLength(1); // the live context's read only
  });
});

describe("the other tools", () => {
  it("read_trace returns the trace summary, with the simulator's two tones", async () => {
    const from = instrument.simulator.received.length;
    const answer = await askJson(await scriptedModel(path.join(dir, "trace.gguf"), toolCall("read_trace", { trace: 2 }), "Two tones."));
    expect(answer.text).toBe("Two tones.");
    const summary = (answer.tools?.[0]?.result as { summary: string }).summary;
    expect(summary).toMatch(/peak 1\.0000 GHz -20\.0 dBm/);
    expect(summary).toMatch(/peak 1\.0250 GHz -60\.0 dBm/);
    expect(receivedSince(from)).toContain(":TRAC:DATA? TRACE2");
  });

  it("read_errors drains the error queue with SYST:ERR?", async () => {
    const from = instrument.simulator.received.length;
    const answer = await askJson(await scriptedModel(path.join(dir, "errors.gguf"), toolCall("read_errors", {}), "No errors."));
    expect(answer.text).toBe("No errors.");
    expect(answer.tools).toEqual([{ name: "read_errors", arguments: {}, result: { errors: [] } }]);
    expect(receivedSince(from)).toContain(":SYST:ERR?");
  });
});

describe.each([":FREQ:CENT 2e9", "*RST", ":INIT:CONT OFF", ":FORM ASC"])("a write tool call (%s)", (line) => {
  it("never reaches the instrument; the model is told the refusal, and a model that keeps calling stops at 4 calls", async () => {
    const model = await scriptedModel(path.join(dir, `write-${line.replace(/\W/g, "")}.gguf`), call(line));
    const from = instrument.simulator.received.length;
    const answer = await askJson(model);
    expect(answer.tools).toHaveLength(4);
    for (const record of answer.tools ?? []) {
      expect(record).toMatchObject({ name: "scpi_query", arguments: { query: line }, error: { code: "IA_ERR_SCPI_REFUSED" } });
      expect(record.result).toBeUndefined();
    }
    expect(answer.toolLimitReached).toBe(true);
    expect(answer.finishReason).toBe("stop");
    const sent = receivedSince(from);
    expect(sent.length).toBeGreaterThan(0); // the context's reads did arrive
    expect(sent.every((received) => received.trim().endsWith("?") || /^:TRAC:DATA\? TRACE[1-6]$/.test(received.trim()))).toBe(true);
  });
});

describe("--tool-calls-max and MQTT", () => {
  let broker: Mosquitto;
  let agent: AgentProcess;
  let forever: string;
  let read: string;

  beforeAll(async () => {
    broker = await startMosquitto();
    forever = await scriptedModel(path.join(dir, "forever.gguf"), call(":SWE:POIN?"));
    read = await scriptedModel(path.join(dir, "read-mqtt.gguf"), call(":SENS:BAND:RES?"), AFTER);
  });

  afterAll(async () => {
    await agent?.stop();
    await broker?.stop();
  });

  it("a lower --tool-calls-max stops a model that keeps calling at that many", async () => {
    const answer = await askJson(forever, ["--tool-calls-max", "2"]);
    expect(answer.tools?.map((record) => record.result?.reply)).toEqual(["1001", "1001"]);
    expect(answer.toolLimitReached).toBe(true);
  });

  it("the MQTT final carries the calls, to mosquitto_rr", async () => {
    agent = spawnAgent([
      ...modelArgs(read),
      "--instrument",
      `tcp://127.0.0.1:${instrument.port}`,
      "--tools",
      "on",
      "--mqtt",
      broker.url,
      "--agent-id",
      "tools",
      "--state-dir",
      dir,
    ]);
    await waitForStatus(broker.url, "instrument-agent/tools", "online", agent);
    const final = await mosquittoRr(broker.port, "instrument-agent/tools/ask", "reply/tools", '{"id":"t1","prompt":"RBW?"}');
    expect(final).toMatchObject({
      id: "t1",
      done: true,
      text: AFTER,
      tools: [{ name: "scpi_query", arguments: { query: ":SENS:BAND:RES?" } }],
    });
    expect((final.tools as ToolRecord[])[0]?.result?.reply).toBeDefined();
  });
});
