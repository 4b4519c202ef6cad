import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startMosquitto } from "../helpers/mosquitto.js";
import type { Mosquitto } from "../helpers/mosquitto.js";
import { spawnAgent, testClient, waitForStatus } from "../helpers/mqttAgent.js";
import type { AgentProcess, TestClient } from "../helpers/mqttAgent.js";
import { synthModel, tempDir } from "../helpers/models.js";
import { PtyPair, PtyTerminal } from "../helpers/socat.js";

// One agent with a serial console on a socat pty and MQTT on a real mosquitto, one model
// sequence: a question from each side at once shares the one queue, and both are answered.
const dir = tempDir("iagent-serial-mqtt-");
const pair = new PtyPair(dir, "shared");
const base = "instrument-agent/bench-side";
let broker: Mosquitto;
let agent: AgentProcess;
let terminal: PtyTerminal;
let requester: TestClient;

beforeAll(async () => {
  const model = await synthModel(dir);
  broker = await startMosquitto();
  await pair.start();
  agent = spawnAgent([
    "--model",
    model,
    "--serial",
    pair.a,
    "--mqtt",
    broker.url,
    "--agent-id",
    "bench-side",
    "--parallel",
    "1",
    "--threads",
    "1",
    "--mlock",
    "off",
    "--temperature",
    "0",
    "--context",
    "4096",
  ]);
  await waitForStatus(broker.url, base, "online", agent);
  terminal = new PtyTerminal(pair.b);
  await terminal.open();
  await terminal.type("\r");
  await terminal.waitFor("> ", { timeoutMs: 30_000 });
  requester = await testClient(broker.url, { protocolVersion: 5 });
  await requester.client.subscribeAsync(`${base}/answer/#`, { qos: 1 });
});

afterAll(async () => {
  await requester?.end();
  await terminal?.close().catch(() => undefined);
  await agent?.stop();
  await pair.kill();
  await broker?.stop();
});

describe("serial console and MQTT share one model", () => {
  it("an MQTT question during the console's answer waits, then both are answered", async () => {
    const from = terminal.text.length;
    await terminal.type("tell me about the sweep\r");
    const answerStart = await terminal.waitFor("tell me about the sweep\r\n", { from });
    await terminal.waitFor(/\S{20}/, { from: answerStart });
    await requester.client.publishAsync(`${base}/ask`, JSON.stringify({ id: "m1", prompt: "and the span?", params: { maxTokens: 16 } }), {
      qos: 1,
    });
    const final = await requester.next(`${base}/answer/m1`, (m) => m.done === true, 60_000);
    expect(final.error).toBeUndefined();
    expect((final.usage as { completionTokens: number }).completionTokens).toBe(16);
    // The console's answer (512 tokens by default) ended before the MQTT one was served.
    const consoleEnd = await terminal.waitFor("\r\n> ", { from: answerStart, timeoutMs: 60_000 });
    expect(consoleEnd).toBeGreaterThan(answerStart + 100);
    // With one sequence the MQTT question could only start once the console's answer ended.
    expect((final.timings as { queuedMs: number }).queuedMs).toBeGreaterThan(0);
  });

  it("a console question during an MQTT answer is told it waits, with its place in line, then answered", async () => {
    await requester.client.publishAsync(
      `${base}/ask`,
      JSON.stringify({ id: "m2", prompt: "a long story", stream: true, params: { maxTokens: 1500 } }),
      { qos: 1 },
    );
    await requester.next(`${base}/answer/m2`, (m) => m.seq === 3, 30_000);
    const from = terminal.text.length;
    await terminal.type("what is RBW?\r");
    await terminal.waitFor(/waiting[^\r\n]*number 1 in line/, { from, timeoutMs: 10_000 });
    const final = await requester.next(`${base}/answer/m2`, (m) => m.done === true, 120_000);
    expect(final.error).toBeUndefined();
    const answered = await terminal.waitFor("\r\n> ", { from, timeoutMs: 60_000 });
    const transcript = terminal.text.slice(from, answered);
    const afterWait = transcript.slice(transcript.search(/number 1 in line/));
    expect(afterWait.replace(/number 1 in line[^\r\n]*\r\n/, "").trim().length).toBeGreaterThan(0);
  });
});
