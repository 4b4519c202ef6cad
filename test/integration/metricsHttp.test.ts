import { readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { modelArgs, tempDir } from "../helpers/models.js";
import { freePort, startMosquitto } from "../helpers/mosquitto.js";
import type { Mosquitto } from "../helpers/mosquitto.js";
import { spawnAgent, waitForStatus } from "../helpers/mqttAgent.js";
import type { AgentProcess } from "../helpers/mqttAgent.js";
import { AGENT_FAMILIES, familyTypes, parsePrometheusText, sampleValue } from "../helpers/prometheusParser.js";
import type { ParsedFamily } from "../helpers/prometheusParser.js";
import { mosquittoRr, run, scriptedModel, tool } from "../helpers/thirdParty.js";

// GET /metrics of the real bundle (`run --http`), scraped with curl and read by Prometheus' own
// Python text parser: one question over HTTP (POST /v1/chat/completions) and one over MQTT
// (mosquitto_rr on a real mosquitto) move the answer counters of their transport and the token
// counters; SCPI over MQTT against `--instrument sim` moves the SCPI counters; a bad MQTT
// request counts as an mqtt error.

const dir = tempDir("iagent-metrics-");
const REPLY = "Counted and answered";
const BASE = "instrument-agent/metrics";
let broker: Mosquitto;
let agent: AgentProcess;
let url: string;

async function scrape(): Promise<{ text: string; contentType: string; families: ParsedFamily[] }> {
  const curl = tool("curl", "curl");
  const result = await run(curl, ["-sS", "--fail", "-D", "-", `${url}/metrics`]);
  if (result.code !== 0) throw new Error(`curl ${url}/metrics exited ${result.code}: ${result.stderr}\nagent output:\n${agent.output()}`);
  const [head, ...body] = result.stdout.split("\r\n\r\n");
  const text = body.join("\r\n\r\n");
  const contentType = /^content-type:\s*(.+)$/im.exec(head ?? "")?.[1]?.trim() ?? "";
  return { text, contentType, families: await parsePrometheusText(text) };
}

/** The agent's child processes (the engine), from /proc. */
function childPids(parent: number): number[] {
  return readdirSync("/proc")
    .filter((entry) => /^\d+$/.test(entry))
    .filter((entry) => {
      try {
        const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
        // The command name may hold spaces and parentheses: the fields after it are state, ppid, ...
        return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === parent;
      } catch {
        return false;
      }
    })
    .map(Number);
}

async function askHttp(question: string): Promise<{ status: number; content: string | undefined; completionTokens: number }> {
  const response = await fetch(`${url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ messages: [{ role: "user", content: question }] }),
  });
  const body = (await response.json()) as { choices?: Array<{ message: { content: string } }>; usage?: { completion_tokens: number } };
  return { status: response.status, content: body.choices?.[0]?.message.content, completionTokens: body.usage?.completion_tokens ?? 0 };
}

function value(families: ParsedFamily[], name: string, labels: Record<string, string> = {}): number {
  return sampleValue(families, name, labels) ?? 0;
}

/** Polls GET /health until the model is ready (200). */
async function healthy(timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while ((await fetch(`${url}/health`).catch(() => undefined))?.status !== 200) {
    if (Date.now() > deadline)
      throw new Error(`GET ${url}/health did not answer 200 within ${timeoutMs} ms\nagent output:\n${agent.output()}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

beforeAll(async () => {
  const model = await scriptedModel(path.join(dir, "counted.gguf"), REPLY);
  broker = await startMosquitto();
  const port = await freePort();
  url = `http://127.0.0.1:${port}`;
  agent = spawnAgent([
    ...modelArgs(model),
    "--http",
    `127.0.0.1:${port}`,
    "--mqtt",
    broker.url,
    "--agent-id",
    "metrics",
    "--state-dir",
    dir,
    "--instrument",
    "sim",
  ]);
  await waitForStatus(broker.url, BASE, "online", agent);
  await healthy(60_000);
});

afterAll(async () => {
  const exit = await agent?.stop();
  await broker?.stop();
  expect(exit?.code).toBe(0);
});

describe("GET /metrics on the real bundle", () => {
  it("is the text format 0.0.4 that prometheus_client parses, with every family typed", async () => {
    const { contentType, families } = await scrape();
    expect(contentType).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(familyTypes(families)).toEqual(AGENT_FAMILIES);
    expect(sampleValue(families, "instrument_agent_model_info", { model: "counted.gguf" })).toBe(1);
    expect(sampleValue(families, "instrument_agent_queue_depth", { state: "waiting" })).toBe(0);
    expect(sampleValue(families, "instrument_agent_engine_restarts_total")).toBe(0);
    expect(value(families, "instrument_agent_uptime_seconds")).toBeGreaterThan(0);
  });

  it("counts an answer over HTTP and one over MQTT under their transports, with their tokens", async () => {
    const before = (await scrape()).families;
    const http = await askHttp("what is the span?");
    expect(http).toMatchObject({ status: 200, content: REPLY });
    const final = await mosquittoRr(broker.port, `${BASE}/ask`, "lab/replies/metrics", '{"prompt":"what is the RBW?"}');
    expect(final).toMatchObject({ done: true, text: REPLY, finishReason: "stop" });

    const after = (await scrape()).families;
    const delta = (name: string, labels: Record<string, string> = {}) => value(after, name, labels) - value(before, name, labels);
    expect(delta("instrument_agent_answers_total", { transport: "http", finish_reason: "stop" })).toBe(1);
    expect(delta("instrument_agent_answers_total", { transport: "mqtt", finish_reason: "stop" })).toBe(1);
    const usage = final.usage as { completionTokens: number };
    expect(delta("instrument_agent_completion_tokens_total")).toBe(http.completionTokens + usage.completionTokens);
    expect(delta("instrument_agent_prompt_tokens_total")).toBeGreaterThan(0);
    expect(delta("instrument_agent_time_to_first_token_seconds_count")).toBe(2);
    expect(delta("instrument_agent_time_to_first_token_seconds_bucket", { le: "+Inf" })).toBe(2);
    expect(delta("instrument_agent_generation_tokens_per_second_count")).toBe(2);
  });

  it("counts SCPI sent and refused through the bridge, and a bad MQTT request as an mqtt error", async () => {
    const before = (await scrape()).families;
    const idn = await mosquittoRr(broker.port, `${BASE}/scpi`, "lab/replies/metrics", '{"query":"*IDN?"}');
    expect(String(idn.reply)).toMatch(/,/);
    const refused = await mosquittoRr(broker.port, `${BASE}/scpi`, "lab/replies/metrics", '{"query":":FREQ:CENT 2e9"}');
    expect(refused).toMatchObject({ error: { code: "IA_ERR_SCPI_REFUSED" } });
    const bad = await mosquittoRr(broker.port, `${BASE}/ask`, "lab/replies/metrics", '{"prompt": 42}');
    expect(bad).toMatchObject({ error: { code: "IA_ERR_BAD_REQUEST" } });

    const after = (await scrape()).families;
    const delta = (name: string, labels: Record<string, string> = {}) => value(after, name, labels) - value(before, name, labels);
    expect(delta("instrument_agent_scpi_queries_total", { outcome: "sent" })).toBe(1);
    expect(delta("instrument_agent_scpi_queries_total", { outcome: "refused" })).toBe(1);
    expect(delta("instrument_agent_scpi_queries_total", { outcome: "failed" })).toBe(0);
    expect(delta("instrument_agent_errors_total", { code: "IA_ERR_BAD_REQUEST", transport: "mqtt" })).toBe(1);
  });

  it("counts an engine started again after it was killed", async () => {
    const engines = childPids(agent.child.pid!);
    expect(engines).toHaveLength(1);
    const before = (await scrape()).families;
    process.kill(engines[0]!, "SIGKILL");
    // Once the agent has seen the engine end, the next question starts it again (README "Speed", "The engine process").
    const deadline = Date.now() + 30_000;
    while (!agent.output().includes("the next question starts it again")) {
      if (Date.now() > deadline) throw new Error(`the agent did not log the engine's end:\n${agent.output()}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const http = await askHttp("are you back?");
    expect(http).toMatchObject({ status: 200, content: REPLY });
    const after = (await scrape()).families;
    expect(value(before, "instrument_agent_engine_restarts_total")).toBe(0);
    expect(value(after, "instrument_agent_engine_restarts_total")).toBe(1);
    expect(childPids(agent.child.pid!)).not.toContain(engines[0]);
  });
});
