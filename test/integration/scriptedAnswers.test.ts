import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runAgent } from "../helpers/bundle.js";
import { modelArgs, tempDir } from "../helpers/models.js";
import { startMosquitto } from "../helpers/mosquitto.js";
import type { Mosquitto } from "../helpers/mosquitto.js";
import { spawnAgent, waitForStatus } from "../helpers/mqttAgent.js";
import type { AgentProcess } from "../helpers/mqttAgent.js";
import { PtyPair, PtyTerminal, requireSocat } from "../helpers/socat.js";
import { mosquittoRr, scriptedModel } from "../helpers/thirdParty.js";

// A scripted model (models synth --shape scripted) says one text to anything, so what an
// answer says can be asserted: through ask, chat, the serial console and MQTT, each reached
// from outside (a pipe, a socat pty typed at as a terminal, mosquitto_rr).

const dir = tempDir("iagent-scripted-");
const SCRIPT = "Hello from the script";
let model: string;

beforeAll(async () => {
  model = await scriptedModel(path.join(dir, "hello.gguf"), SCRIPT);
});

describe("a scripted model says its text", () => {
  it("ask prints exactly the text", async () => {
    const result = await runAgent(["ask", ...modelArgs(model), "What is the RBW?"]);
    expect(result.stderr).not.toMatch(/error/i);
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(`${SCRIPT}\n`);
  });

  it("ask says it for any question, and at temperature 1 too", async () => {
    const result = await runAgent(["ask", ...modelArgs(model), "--temperature", "1", "--json", "现在的中心频率是多少？"]);
    expect(result.code).toBe(0);
    const answer = JSON.parse(result.stdout) as { text: string; finishReason: string };
    expect(answer).toMatchObject({ text: SCRIPT, finishReason: "stop" });
  });

  it("chat answers each question with it", async () => {
    const result = await runAgent(["chat", ...modelArgs(model)], { input: "first question\nsecond question\n" });
    expect(result.code).toBe(0);
    expect(result.stdout.split(SCRIPT).length - 1).toBe(2);
  });

  it("refuses a scripted model without a text, with a usage error", async () => {
    const result = await runAgent(["models", "synth", "--shape", "scripted", "--out", path.join(dir, "none.gguf")]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("--shape scripted needs --reply");
  });
});

describe("run: the serial console and MQTT say it too", () => {
  let broker: Mosquitto;
  let agent: AgentProcess;
  const pair = new PtyPair(dir, "scripted");
  let terminal: PtyTerminal;

  beforeAll(async () => {
    requireSocat();
    broker = await startMosquitto();
    await pair.start();
    agent = spawnAgent([...modelArgs(model), "--serial", pair.a, "--mqtt", broker.url, "--agent-id", "scripted", "--state-dir", dir]);
    await waitForStatus(broker.url, "instrument-agent/scripted", "online", agent);
    terminal = new PtyTerminal(pair.b);
    await terminal.open();
    await terminal.type("\r");
    await terminal.waitFor("> ", { timeoutMs: 30_000 });
  });

  afterAll(async () => {
    await terminal?.close().catch(() => undefined);
    await agent?.stop();
    await pair.kill();
    await broker?.stop();
  });

  it("the serial console shows the text as the answer", async () => {
    const from = terminal.text.length;
    await terminal.type("what is the span?\r");
    const start = await terminal.waitFor("what is the span?\r\n", { from });
    const end = await terminal.waitFor("\r\n> ", { from: start, timeoutMs: 30_000 });
    expect(terminal.text.slice(start, end)).toContain(SCRIPT);
  });

  it("mosquitto_rr gets the text as the final's text", async () => {
    const final = await mosquittoRr(broker.port, "instrument-agent/scripted/ask", "reply/scripted", '{"id":"s1","prompt":"hi"}');
    expect(final).toMatchObject({ id: "s1", done: true, text: SCRIPT, finishReason: "stop" });
  });
});
