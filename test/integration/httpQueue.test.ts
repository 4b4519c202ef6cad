import { createServer } from "node:net";
import type { Server } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runAgent } from "../helpers/bundle.js";
import { modelArgs, synthModel, tempDir } from "../helpers/models.js";
import { freePort, startMosquitto } from "../helpers/mosquitto.js";
import type { Mosquitto } from "../helpers/mosquitto.js";
import { spawnAgent, testClient, waitForStatus } from "../helpers/mqttAgent.js";
import type { AgentProcess, TestClient } from "../helpers/mqttAgent.js";
import { waitUntil } from "../helpers/wait.js";

// The HTTP API's life inside `run`: it answers /health before the model has loaded, shares the
// one queue with MQTT (a real mosquitto), cancels the answer of a client that goes away, and an
// explicit --http address that is taken stops the run. The random-weight tiny model writes until
// max_tokens, so an answer lasts long enough to be overtaken.

const dir = tempDir("iagent-httpq-");
let model: string;

beforeAll(async () => {
  model = await synthModel(dir);
});

const chat = (maxTokens: number, stream = false) =>
  JSON.stringify({ messages: [{ role: "user", content: "Describe the trace." }], max_tokens: maxTokens, stream, seed: 1 });

async function health(base: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${base}/health`);
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

describe("run --http with MQTT on a real mosquitto, one sequence", () => {
  let broker: Mosquitto;
  let agent: AgentProcess;
  let mqtt: TestClient;
  let base: string;
  const seen: Array<{ status: number; body: Record<string, unknown> }> = [];
  let duringLoad: { status: number; body: Record<string, unknown> } | undefined;

  beforeAll(async () => {
    broker = await startMosquitto();
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    agent = spawnAgent([...modelArgs(model), "--parallel", "1", "--http", `127.0.0.1:${port}`, "--mqtt", broker.url, "--agent-id", "q1"]);
    // From the first moment: no answer until it listens, then 503 loading, then 200.
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline && agent.child.exitCode === null) {
      const reply = await health(base).catch(() => undefined);
      if (reply) seen.push(reply);
      if (reply?.status === 503 && !duringLoad) {
        const models = await fetch(`${base}/v1/models`);
        duringLoad = { status: models.status, body: (await models.json()) as Record<string, unknown> };
      }
      if (reply?.status === 200) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await waitForStatus(broker.url, "instrument-agent/q1", "online", agent);
    mqtt = await testClient(broker.url);
    await mqtt.client.subscribeAsync("lab/replies/q", { qos: 1 });
  }, 120_000);

  afterAll(async () => {
    await mqtt?.end();
    const exit = await agent?.stop();
    await broker?.stop();
    expect(exit?.code, agent?.output()).toBe(0);
  });

  it("/health is 503 {status: loading} while the model loads, and every other path 503 IA_ERR_LOADING; then 200", () => {
    const statuses = seen.map((s) => s.status);
    expect(statuses.at(-1), agent.output()).toBe(200);
    expect(statuses).toContain(503);
    // Never ok and then loading again.
    expect(statuses.slice(statuses.indexOf(200))).toEqual([200]);
    expect(seen.find((s) => s.status === 503)!.body).toEqual({ status: "loading" });
    expect(duringLoad).toEqual({ status: 503, body: { error: expect.objectContaining({ code: "IA_ERR_LOADING" }) } });
    expect(seen.at(-1)!.body).toMatchObject({ status: "ok", model: { id: "tiny-q8_0-1.gguf" } });
  });

  it("/health names the other transports once they run", async () => {
    const now = await health(base);
    expect(now.body).toMatchObject({ status: "ok", transports: { mqtt: expect.stringContaining("online") }, queue: { slots: 1 } });
  });

  it("an HTTP question while an MQTT answer generates waits its turn; both are answered", async () => {
    const ask = { id: "m1", prompt: "Describe the trace.", stream: true, replyTo: "lab/replies/q", params: { maxTokens: 1500 } };
    await mqtt.client.publishAsync("instrument-agent/q1/ask", JSON.stringify(ask), { qos: 1 });
    await mqtt.next("lab/replies/q", (m) => m.id === "m1" && typeof m.delta === "string" && m.done !== true);
    const order: string[] = [];
    const http = fetch(`${base}/v1/chat/completions`, { method: "POST", body: chat(8) }).then(async (r) => {
      order.push("http");
      return {
        status: r.status,
        body: (await r.json()) as { choices: { message: { content: string } }[]; usage: { completion_tokens: number } },
      };
    });
    const mqttFinal = mqtt
      .next("lab/replies/q", (m) => m.id === "m1" && m.done === true, 120_000)
      .then((m) => {
        order.push("mqtt");
        return m;
      });
    let waiting = 0;
    // The MQTT answer holds the one sequence for 1500 tokens: /health sees the HTTP question in line.
    for (let i = 0; i < 100 && waiting !== 1 && order.length === 0; i++) {
      waiting = ((await health(base)).body.queue as { waiting: number }).waiting;
      if (waiting !== 1) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(waiting, "GET /health queue.waiting while MQTT generated").toBe(1);
    expect(order, "neither answered while the HTTP question waited").toEqual([]);
    const [httpReply, final] = await Promise.all([http, mqttFinal]);
    expect(final).toMatchObject({ done: true, finishReason: "length", usage: { completionTokens: 1500 } });
    expect(httpReply.status).toBe(200);
    expect(httpReply.body.usage.completion_tokens).toBe(8);
    // Which reply reaches the test first is not the queue's order (the MQTT final goes through the
    // journal and the broker): the queue's order is what /health showed while MQTT generated.
    expect(order.sort()).toEqual(["http", "mqtt"]);
  });

  it("a client that disconnects mid-stream cancels its answer, and the agent keeps serving", async () => {
    const controller = new AbortController();
    const response = await fetch(`${base}/v1/chat/completions`, { method: "POST", body: chat(2000, true), signal: controller.signal });
    const reader = response.body!.getReader();
    const first = await reader.read();
    expect(new TextDecoder().decode(first.value)).toMatch(/^data: \{/);
    controller.abort();
    await waitUntil(() => agent.output().includes("the client went away; its answer was cancelled"), {
      what: "the agent's log line for the cancelled answer",
      timeoutMs: 30_000,
    });
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toMatch(/instrument_agent_answers_total\{transport="http",finish_reason="cancelled"\} 1\b/);
    const after = await fetch(`${base}/v1/chat/completions`, { method: "POST", body: chat(4) });
    expect(after.status).toBe(200);
    expect((await health(base)).body.queue).toMatchObject({ running: 0, waiting: 0 });
  });
});

describe("SIGTERM while an HTTP answer streams", () => {
  it("the stream ends with an IA_ERR_DISPOSED event and data: [DONE], and run exits 0", async () => {
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const agent = spawnAgent([...modelArgs(model), "--http", `127.0.0.1:${port}`, "--mqtt", "off"]);
    await waitUntil(() => agent.output().includes(`HTTP API serving on ${base}`), { what: "HTTP API serving", timeoutMs: 60_000 });
    const response = await fetch(`${base}/v1/chat/completions`, { method: "POST", body: chat(3000, true) });
    const reader = response.body!.getReader();
    let text = new TextDecoder().decode((await reader.read()).value);
    const exited = agent.stop();
    for (let part = await reader.read(); !part.done; part = await reader.read()) text += new TextDecoder().decode(part.value);
    expect(text).toMatch(/^data: \{/);
    expect(text).toContain('data: {"error":{"message":"the agent is shutting down; this answer was cancelled"');
    expect(text.endsWith("data: [DONE]\n\n")).toBe(true);
    expect((await exited).code, agent.output()).toBe(0);
  });
});

describe("an explicit --http address that cannot listen", () => {
  let holder: Server;
  afterAll(() => holder?.close());

  it("stops run with IA_ERR_HTTP_LISTEN naming host:port, before loading the model", async () => {
    holder = createServer();
    await new Promise<void>((resolve) => holder.listen(0, "127.0.0.1", resolve));
    const port = (holder.address() as { port: number }).port;
    const result = await runAgent(["run", ...modelArgs(model), "--mqtt", "off", "--http", `127.0.0.1:${port}`]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`error IA_ERR_HTTP_LISTEN: HTTP API: cannot listen on 127.0.0.1:${port}: the address is in use`);
    expect(result.stderr).not.toContain("loading model");
  });
});
