import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runAgent } from "../helpers/bundle.js";
import { modelArgs, synthModel, tempDir } from "../helpers/models.js";
import { startMosquitto } from "../helpers/mosquitto.js";
import type { Mosquitto } from "../helpers/mosquitto.js";
import { spawnAgent, testClient, waitForStatus } from "../helpers/mqttAgent.js";
import type { AgentProcess, TestClient } from "../helpers/mqttAgent.js";
import { waitUntil } from "../helpers/wait.js";

// One real mosquitto and one agent (the real bundle with a tiny model) for the request and
// reply contract of the README's "MQTT API".
const dir = tempDir("iagent-mqtt-api-");
let broker: Mosquitto;
let agent: AgentProcess;
let v5: TestClient;
let v311: TestClient;
let model: string;
const base = "instrument-agent/api-a";

const agentArgs = (url: string) => [
  ...modelArgs(model),
  "--context",
  "4096",
  "--temperature",
  "0",
  "--max-tokens",
  "24",
  "--mqtt",
  url,
  "--agent-id",
  "api-a",
  "--mqtt-payload-limit",
  "2048",
  "--mqtt-health-interval",
  "1",
  "--log-level",
  "warn",
];

type Final = {
  id: string;
  done: true;
  agent: string;
  text: string;
  finishReason: string;
  usage: { promptTokens: number; completionTokens: number };
  timings: { ttftMs: number; tokensPerSecond: number };
  error?: { code: string; message: string };
};

beforeAll(async () => {
  model = await synthModel(dir);
  broker = await startMosquitto();
  agent = spawnAgent(agentArgs(broker.url));
  await waitForStatus(broker.url, base, "online", agent);
  v5 = await testClient(broker.url, { protocolVersion: 5 });
  v311 = await testClient(broker.url, { protocolVersion: 4 });
  await v5.client.subscribeAsync("lab/v5/#", { qos: 1 });
  await v311.client.subscribeAsync(["lab/v311/#", `${base}/answer/#`], { qos: 1 });
});

afterAll(async () => {
  await v5?.end();
  await v311?.end();
  await agent?.stop();
  await broker?.stop();
});

function ask(client: TestClient, body: unknown, props?: { responseTopic: string; correlationData: Buffer }) {
  const payload = typeof body === "string" || Buffer.isBuffer(body) ? body : JSON.stringify(body);
  return client.client.publishAsync(`${base}/ask`, payload, { qos: 1, ...(props ? { properties: props } : {}) });
}

describe("the MQTT API against a real mosquitto", () => {
  it("publishes a retained online status with model, threads, mlock, context and queue", async () => {
    const status = await waitForStatus(broker.url, base, "online");
    expect(status).toMatchObject({ state: "online", agent: "api-a", threads: 1, mlock: false, contextSize: 4096, queue: 0 });
    expect(String(status.model)).toContain("gguf");
  });

  it("MQTT 5: replies to the response topic with the correlation data; chunks in order add up to the final text", async () => {
    const correlation = Buffer.from("corr-5-1");
    const received: { body: Record<string, unknown>; correlation: string | undefined }[] = [];
    const onMessage = (topic: string, payload: Buffer, packet: { properties?: { correlationData?: Buffer } }) => {
      if (topic === "lab/v5/r1")
        received.push({
          body: JSON.parse(payload.toString()) as Record<string, unknown>,
          correlation: packet.properties?.correlationData?.toString(),
        });
    };
    v5.client.on("message", onMessage);
    await ask(v5, { prompt: "What is the RBW?", stream: true }, { responseTopic: "lab/v5/r1", correlationData: correlation });
    const final = (await v5.next("lab/v5/r1", (m) => m.done === true)) as Final;
    v5.client.off("message", onMessage);
    expect(final.id).toBe("corr-5-1");
    expect(final.agent).toBe("api-a");
    expect(final.finishReason).toMatch(/^(stop|length)$/);
    expect(final.usage.completionTokens).toBeGreaterThan(0);
    expect(final.timings.tokensPerSecond).toBeGreaterThan(0);
    const chunks = received.filter((r) => r.body.done !== true);
    expect(chunks.length).toBeGreaterThan(1);
    expect(received.every((r) => r.correlation === "corr-5-1")).toBe(true);
    expect(chunks.map((c) => c.body.seq)).toEqual(chunks.map((_, i) => i));
    expect(chunks.map((c) => c.body.delta).join("")).toBe(final.text);
  });

  it("MQTT 3.1.1: replies to replyTo from the payload, and plain text is a prompt answered on <base>/answer/<id>", async () => {
    await ask(v311, { id: "q311", prompt: "hello", replyTo: "lab/v311/r1", stream: true });
    const final = (await v311.next("lab/v311/r1", (m) => m.done === true)) as Final;
    expect(final.id).toBe("q311");
    const chunks = v311.json("lab/v311/r1").filter((m) => m.done !== true);
    expect(chunks.map((c) => c.delta).join("")).toBe(final.text);
    // v311 subscribed to `${base}/answer/#` before asking, which takes the bare `${base}/answer` too.
    await ask(v311, "plain question");
    let answered: Final | undefined;
    await waitUntil(
      () => {
        for (const [topic, list] of v311.messages) {
          if (!topic.startsWith(`${base}/answer/`)) continue;
          const body = JSON.parse(list.at(-1)!.toString()) as Final;
          if (body.done && topic === `${base}/answer/${body.id}`) answered = body;
        }
        return answered !== undefined;
      },
      { what: `a final on ${base}/answer/<id> for the plain-text question`, timeoutMs: 30_000 },
    );
    expect(answered!.text.length).toBeGreaterThan(0);
    // The agent publishes its replies in order on one connection: had any gone to the bare
    // topic, it would have arrived before this final.
    expect(v311.messages.get(`${base}/answer`), "messages on the bare answer topic").toBeUndefined();
  });

  it("cancel stops generation: the final says finishReason cancelled", async () => {
    await ask(v311, { id: "long-1", prompt: "Tell a long story", replyTo: "lab/v311/long", stream: true, params: { maxTokens: 3000 } });
    await v311.next("lab/v311/long", (m) => m.seq === 2);
    await v311.client.publishAsync(`${base}/cancel`, JSON.stringify({ id: "long-1" }), { qos: 1 });
    const final = (await v311.next("lab/v311/long", (m) => m.done === true)) as Final;
    expect(final.finishReason).toBe("cancelled");
    expect(final.usage.completionTokens).toBeLessThan(3000);
    // The agent goes on serving.
    await ask(v311, { id: "after-cancel", prompt: "hi", replyTo: "lab/v311/after" });
    expect(((await v311.next("lab/v311/after", (m) => m.done === true)) as Final).finishReason).toMatch(/stop|length/);
  });

  it("malformed, mistyped, oversized and invalid UTF-8 payloads each get an error reply; the next good question is answered", async () => {
    const cases: [string, Buffer | string, string, RegExp][] = [
      ["bad-json", '{"prompt": "unterminated', "IA_ERR_BAD_REQUEST", /not valid JSON/],
      ["mistyped", JSON.stringify({ prompt: 42 }), "IA_ERR_BAD_REQUEST", /"prompt": expected a non-empty string, got number 42/],
      ["bad-param", JSON.stringify({ prompt: "x", params: { maxTokens: "many" } }), "IA_ERR_BAD_REQUEST", /params\.maxTokens/],
      ["unknown-key", JSON.stringify({ promt: "x" }), "IA_ERR_BAD_REQUEST", /unknown key "promt"/],
      ["oversized", JSON.stringify({ prompt: "x".repeat(4000) }), "IA_ERR_PAYLOAD_TOO_LARGE", /over the limit of 2048 bytes/],
      ["bad-utf8", Buffer.from([0x7b, 0x22, 0x70, 0xc3, 0x28, 0x7d]), "IA_ERR_BAD_REQUEST", /not valid UTF-8: byte 0xc3 at offset 3/],
    ];
    for (const [name, payload, code, message] of cases) {
      await ask(v5, payload, { responseTopic: `lab/v5/err/${name}`, correlationData: Buffer.from(name) });
      const reply = (await v5.next(`lab/v5/err/${name}`)) as Final;
      expect(reply, name).toMatchObject({ id: name, done: true, error: { code } });
      expect(reply.error!.message, name).toMatch(message);
    }
    // Mistyped with a readable replyTo from a 3.1.1 client: the error goes there.
    await ask(v311, { id: "typed", prompt: "x", stream: "yes", replyTo: "lab/v311/typed" });
    expect(await v311.next("lab/v311/typed")).toMatchObject({ id: "typed", error: { code: "IA_ERR_BAD_REQUEST" } });
    await ask(v5, { prompt: "and now a good one" }, { responseTopic: "lab/v5/good", correlationData: Buffer.from("good") });
    const good = (await v5.next("lab/v5/good")) as Final;
    expect(good.error).toBeUndefined();
    expect(good.text.length).toBeGreaterThan(0);
    expect(agent.child.exitCode).toBeNull();
  });

  it("a request id seen again is answered from memory, not generated twice", async () => {
    const body = { id: "dup-1", prompt: "same question", replyTo: "lab/v311/dup" };
    await ask(v311, body);
    const first = await v311.next("lab/v311/dup");
    await ask(v311, body);
    await waitUntil(() => v311.json("lab/v311/dup").length >= 2, { what: "a second final on lab/v311/dup", timeoutMs: 30_000 });
    const [a, b] = v311.json("lab/v311/dup");
    // Same timings too: a second generation would have measured its own.
    expect(b).toEqual(a);
    expect(a).toEqual(first);
  });

  it("a session keeps multi-turn history per key", async () => {
    const turn = async (session: string | undefined, id: string) => {
      await ask(v311, { id, prompt: "What is the span?", replyTo: "lab/v311/session", ...(session ? { session } : {}) });
      return (await v311.next("lab/v311/session", (m) => m.id === id)) as Final;
    };
    const alone = await turn(undefined, "s0");
    const first = await turn("bench-1", "s1");
    const second = await turn("bench-1", "s2");
    // Greedy sampling: the same question without history gives the same answer; with history, another.
    expect(first.text).toBe(alone.text);
    expect(second.text).not.toBe(first.text);
    expect(second).toMatchObject({ session: "bench-1" });
    const other = await turn("bench-2", "s3");
    expect(other.text).toBe(alone.text);
  });

  it("publishes health periodically with memory, load, queue and speed", async () => {
    await v311.client.subscribeAsync(`${base}/health`, { qos: 0 });
    const health = await v311.next(`${base}/health`, () => true, 10_000);
    expect(health).toMatchObject({ agent: "api-a", queue: { running: expect.any(Number), waiting: 0 } });
    expect(health.rssBytes).toBeGreaterThan(0);
    expect(health.uptimeS).toBeGreaterThanOrEqual(0);
    expect(health.answered).toBeGreaterThan(0);
  });

  it("the scpi topic with no instrument configured replies with IA_ERR_NO_INSTRUMENT", async () => {
    await v311.client.publishAsync(`${base}/scpi`, JSON.stringify({ id: "idn", query: "*IDN?", replyTo: "lab/v311/scpi" }), { qos: 1 });
    expect(await v311.next("lab/v311/scpi")).toMatchObject({ id: "idn", done: true, error: { code: "IA_ERR_NO_INSTRUMENT" } });
  });

  it("ask --via streams a remote agent's answer to stdout; an unreachable broker is exit 1 naming it", async () => {
    const result = await runAgent(["ask", "--via", broker.url, "--agent-id", "api-a", "--max-tokens", "8", "hello there"], {
      timeoutMs: 30_000,
    });
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    expect(result.stdout.trim().length).toBeGreaterThan(0);
    const down = await runAgent(["ask", "--via", "mqtt://127.0.0.1:1", "--agent-id", "api-a", "hi"], { timeoutMs: 30_000 });
    expect(down.code).toBe(1);
    expect(down.stderr).toContain("IA_ERR_MQTT_CONNECT");
    expect(down.stderr).toContain("mqtt://127.0.0.1:1");
    expect(down.stderr).toContain("connection refused");
  });

  it("llama.cpp's engine process killed by a signal: the question gets IA_ERR_ENGINE_EXITED, the agent stays online and answers the next", async () => {
    const enginePid = () => {
      const pid = agent.child.pid!;
      const children = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);
      expect(children, "the agent should have exactly one engine child").toHaveLength(1);
      return children[0]!;
    };
    const first = enginePid();
    await ask(v311, {
      id: "long-1",
      prompt: "Tell me a long story.",
      replyTo: "lab/v311/engine",
      stream: true,
      params: { maxTokens: 2000 },
    });
    await v311.next("lab/v311/engine", (m) => m.id === "long-1" && m.delta !== undefined);
    process.kill(first, "SIGKILL");
    const failed = await v311.next("lab/v311/engine", (m) => m.id === "long-1" && m.done === true);
    expect(failed).toMatchObject({ error: { code: "IA_ERR_ENGINE_EXITED", message: expect.stringContaining("SIGKILL") } });
    expect(agent.child.exitCode).toBeNull();
    await ask(v311, { id: "after-1", prompt: "What is the RBW?", replyTo: "lab/v311/engine" });
    const answered = (await v311.next("lab/v311/engine", (m) => m.id === "after-1" && m.done === true)) as Final;
    expect(answered.error).toBeUndefined();
    expect(answered.usage.completionTokens).toBeGreaterThan(0);
    expect(enginePid()).not.toBe(first);
    expect(agent.output()).toContain("starting the engine process again");
  });
});
