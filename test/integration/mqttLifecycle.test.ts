import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { modelArgs, synthModel, tempDir } from "../helpers/models.js";
import { startMosquitto } from "../helpers/mosquitto.js";
import type { Mosquitto } from "../helpers/mosquitto.js";
import { spawnAgent, testClient, waitForStatus } from "../helpers/mqttAgent.js";
import type { AgentProcess, TestClient } from "../helpers/mqttAgent.js";

// Agents that stop, die and come back; a broker that restarts mid-answer; a fleet that
// shares one stream of questions. Real mosquitto, real bundle, tiny model.
const dir = tempDir("iagent-mqtt-life-");
let model: string;
const started: AgentProcess[] = [];
const clients: TestClient[] = [];
const brokers: Mosquitto[] = [];

const args = (url: string, id: string, extra: string[] = []) => [
  ...modelArgs(model),
  "--context",
  "4096",
  "--temperature",
  "0",
  "--max-tokens",
  "16",
  "--mqtt",
  url,
  "--agent-id",
  id,
  "--log-level",
  "warn",
  ...extra,
];

function agent(url: string, id: string, extra: string[] = []): AgentProcess {
  const process = spawnAgent(args(url, id, extra));
  started.push(process);
  return process;
}

async function client(url: string, options: Parameters<typeof testClient>[1] = {}): Promise<TestClient> {
  const made = await testClient(url, options);
  clients.push(made);
  return made;
}

async function broker(options: Parameters<typeof startMosquitto>[0] = {}): Promise<Mosquitto> {
  const made = await startMosquitto(options);
  brokers.push(made);
  return made;
}

/** Waits a little after the first final so a second one, if any, would have arrived. */
const settle = () => new Promise((resolve) => setTimeout(resolve, 1500));

beforeAll(async () => {
  model = await synthModel(dir);
});

afterAll(async () => {
  for (const c of clients) await c.end().catch(() => undefined);
  for (const a of started) await a.stop();
  for (const b of brokers) await b.stop();
});

describe("MQTT lifecycle", () => {
  it("retained offline after SIGTERM (exit 0) and after kill -9 (last will); a question sent while the agent was down is answered once", async () => {
    const mosquitto = await broker();
    const base = "instrument-agent/life-a";
    const first = agent(mosquitto.url, "life-a");
    await waitForStatus(mosquitto.url, base, "online", first);
    const stopped = await first.stop();
    expect(stopped).toEqual({ code: 0, signal: null });
    expect(await waitForStatus(mosquitto.url, base, "offline", first, 5000)).toMatchObject({ state: "offline" });

    const tool = await client(mosquitto.url, { protocolVersion: 5 });
    await tool.client.subscribeAsync("lab/life/#", { qos: 1 });
    await tool.client.publishAsync(`${base}/ask`, JSON.stringify({ prompt: "asked while you were away" }), {
      qos: 1,
      properties: { responseTopic: "lab/life/r", correlationData: Buffer.from("away-1") },
    });
    const second = agent(mosquitto.url, "life-a");
    const final = await tool.next("lab/life/r", (m) => m.done === true, 60_000);
    expect(final).toMatchObject({ id: "away-1", agent: "life-a" });
    await waitForStatus(mosquitto.url, base, "online", second);
    await settle();
    expect(tool.json("lab/life/r").filter((m) => m.done === true)).toHaveLength(1);

    second.child.kill("SIGKILL");
    expect((await second.exited).signal).toBe("SIGKILL");
    expect(await waitForStatus(mosquitto.url, base, "offline", second, 10_000)).toMatchObject({ state: "offline" });
  });

  it("the broker restarted in the middle of an answer: the requester still gets exactly one final answer", async () => {
    const mosquitto = await broker({ persistence: true });
    const base = "instrument-agent/life-b";
    const running = agent(mosquitto.url, "life-b");
    await waitForStatus(mosquitto.url, base, "online", running);
    const tool = await client(mosquitto.url, {
      protocolVersion: 5,
      clientId: "tool-restart",
      clean: false,
      properties: { sessionExpiryInterval: 300 },
    });
    await tool.client.subscribeAsync("lab/restart/#", { qos: 1 });
    await tool.client.publishAsync(
      `${base}/ask`,
      JSON.stringify({ id: "mid-1", prompt: "Tell a long story", stream: true, params: { maxTokens: 1500 } }),
      {
        qos: 1,
        properties: { responseTopic: "lab/restart/r", correlationData: Buffer.from("mid-1") },
      },
    );
    await tool.next("lab/restart/r", (m) => m.seq === 3);
    await mosquitto.restart();
    const chunksBeforeRestart = tool.json("lab/restart/r").length;
    const final = await tool.next("lab/restart/r", (m) => m.done === true, 90_000);
    expect(final).toMatchObject({ id: "mid-1", agent: "life-b" });
    expect(final.finishReason).toMatch(/stop|length/);
    // The answer really was cut in the middle: it went on well past what arrived before the restart.
    expect((final.usage as { completionTokens: number }).completionTokens).toBeGreaterThan(chunksBeforeRestart + 10);
    await settle();
    expect(tool.json("lab/restart/r").filter((m) => m.done === true)).toHaveLength(1);
    expect(running.child.exitCode).toBeNull();
  });

  it("20 questions to two agents on a shared subscription: each answered exactly once, both agents used", async () => {
    const mosquitto = await broker();
    const one = agent(mosquitto.url, "fleet-1", ["--fleet", "lab", "--max-tokens", "4"]);
    const two = agent(mosquitto.url, "fleet-2", ["--fleet", "lab", "--max-tokens", "4"]);
    await waitForStatus(mosquitto.url, "instrument-agent/fleet-1", "online", one);
    await waitForStatus(mosquitto.url, "instrument-agent/fleet-2", "online", two);
    const tool = await client(mosquitto.url, { protocolVersion: 5 });
    await tool.client.subscribeAsync("lab/fleet/#", { qos: 1 });
    const ids = Array.from({ length: 20 }, (_, i) => `f${i}`);
    for (const id of ids) {
      await tool.client.publishAsync("instrument-agent/fleet/lab/ask", JSON.stringify({ id, prompt: `question ${id}` }), {
        qos: 1,
        properties: { responseTopic: "lab/fleet/r", correlationData: Buffer.from(id) },
      });
    }
    for (const id of ids) await tool.next("lab/fleet/r", (m) => m.id === id && m.done === true, 60_000);
    await settle();
    const finals = tool.json("lab/fleet/r").filter((m) => m.done === true);
    expect(finals.map((f) => f.id).sort()).toEqual([...ids].sort());
    expect(finals.every((f) => f.error === undefined)).toBe(true);
    expect(new Set(finals.map((f) => f.agent))).toEqual(new Set(["fleet-1", "fleet-2"]));
  });

  it("a broker with a password file: the right login works; a wrong one is exit 1 naming the broker and the reason, and the password is never printed", async () => {
    const mosquitto = await broker({ users: { bench: "s3cret-right" } });
    const login = { username: "bench", password: "s3cret-right" };
    const good = spawnAgent(args(mosquitto.url, "auth-a", ["--mqtt-username", "bench", "--log-level", "debug"]), {
      IAGENT_MQTT_PASSWORD: "s3cret-right",
    });
    started.push(good);
    expect(await waitForStatus(mosquitto.url, "instrument-agent/auth-a", "online", good, 60_000, login)).toMatchObject({ state: "online" });
    const tool = await client(mosquitto.url, { protocolVersion: 5, ...login });
    await tool.client.subscribeAsync("lab/auth/#", { qos: 1 });
    await tool.client.publishAsync("instrument-agent/auth-a/ask", JSON.stringify({ id: "a1", prompt: "hi", replyTo: "lab/auth/r" }), {
      qos: 1,
    });
    expect(await tool.next("lab/auth/r")).toMatchObject({ id: "a1", done: true });
    await good.stop();
    expect(good.output()).not.toContain("s3cret-right");

    const bad = spawnAgent(args(mosquitto.url, "auth-b", ["--mqtt-username", "bench", "--mqtt-password", "wrong-pw"]));
    started.push(bad);
    expect((await bad.exited).code).toBe(1);
    expect(bad.output()).toContain("IA_ERR_MQTT_AUTH");
    expect(bad.output()).toContain(mosquitto.url);
    expect(bad.output()).toMatch(/bad user name or password|not authorized/);
    expect(bad.output()).not.toContain("wrong-pw");
  });
});
