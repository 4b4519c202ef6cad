import { describe, expect, it } from "vitest";
import type { IPublishPacket } from "mqtt";
import type { GenerateResult, ModelRuntime, RuntimeInfo } from "../../agent/engine/modelRuntime.js";
import { answerQuestion } from "../../agent/console/consoleCommands.js";
import type { ConsoleHost } from "../../agent/console/consoleCommands.js";
import { AnswerService } from "../../agent/service/answerService.js";
import { Conversation } from "../../agent/service/conversation.js";
import { AgentMetrics, TOKENS_PER_SECOND_BUCKETS, TTFT_SECONDS_BUCKETS, escapeLabelValue } from "../../agent/service/metrics.js";
import type { AnsweredFigures } from "../../agent/service/metrics.js";
import { RequestQueue } from "../../agent/service/requestQueue.js";
import type { ToolBox } from "../../agent/service/toolBox.js";
import type { JournalEntry } from "../../agent/service/journal/requestJournal.js";
import { RequestHandler } from "../../agent/transports/mqtt/requestHandler.js";
import type { AnswerJournal, RequestHandlerOptions } from "../../agent/transports/mqtt/requestHandler.js";
import { agentTopics } from "../../agent/transports/mqtt/topics.js";
import { AgentError } from "../../common/errors.js";
import { createLogger } from "../../common/logger.js";
import { AGENT_FAMILIES, familyTypes, parsePrometheusText, sampleValue } from "../helpers/prometheusParser.js";

// The Prometheus text (format 0.0.4) that GET /metrics serves: counters move, histogram
// buckets are cumulative, label values are escaped, and Prometheus' own Python parser reads it.

function figures(completionTokens: number, tokensPerSecond: number, ttftMs: number, finishReason = "stop"): AnsweredFigures {
  return { finishReason, usage: { promptTokens: 10, completionTokens }, timings: { tokensPerSecond, ttftMs } };
}

/** The sample line for `name{labels}` in a render, or undefined. */
function line(text: string, series: string): string | undefined {
  return text.split("\n").find((l) => l.startsWith(`${series} `));
}

function value(text: string, series: string): number {
  const found = line(text, series);
  if (found === undefined) throw new Error(`no sample ${series} in:\n${text}`);
  return Number(found.slice(series.length + 1));
}

describe("AgentMetrics.render", () => {
  it("counts answers by transport and finish reason, errors by code and transport, and tokens", () => {
    const metrics = new AgentMetrics();
    metrics.countAnswer("mqtt", figures(5, 10, 200));
    metrics.countAnswer("mqtt", figures(3, 12, 100));
    metrics.countAnswer("http", figures(7, 9, 300, "length"));
    metrics.countError("IA_ERR_QUEUE_FULL", "http");
    metrics.countError("IA_ERR_QUEUE_FULL", "http");
    metrics.countError("IA_ERR_RATE_LIMITED", "mqtt");
    const text = metrics.render();
    expect(value(text, 'instrument_agent_answers_total{transport="mqtt",finish_reason="stop"}')).toBe(2);
    expect(value(text, 'instrument_agent_answers_total{transport="http",finish_reason="length"}')).toBe(1);
    expect(value(text, 'instrument_agent_errors_total{code="IA_ERR_QUEUE_FULL",transport="http"}')).toBe(2);
    expect(value(text, 'instrument_agent_errors_total{code="IA_ERR_RATE_LIMITED",transport="mqtt"}')).toBe(1);
    expect(value(text, "instrument_agent_completion_tokens_total")).toBe(15);
    expect(value(text, "instrument_agent_prompt_tokens_total")).toBe(30);
    expect(metrics.answers("mqtt", "stop")).toBe(2);
    expect(metrics.errors("IA_ERR_QUEUE_FULL", "http")).toBe(2);
  });

  it("writes HELP and TYPE for every family, counters ending in _total, even before anything happened", () => {
    const text = new AgentMetrics().render();
    const types = [...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1], m[2]]);
    expect(types.length).toBe(12);
    for (const [name, type] of types) {
      expect(text).toContain(`# HELP ${name} `);
      expect(name).toMatch(/^instrument_agent_[a-z_]+$/);
      if (type === "counter") expect(name).toMatch(/_total$/);
    }
    expect(value(text, "instrument_agent_completion_tokens_total")).toBe(0);
    expect(value(text, "instrument_agent_engine_restarts_total")).toBe(0);
    expect(value(text, 'instrument_agent_generation_tokens_per_second_bucket{le="+Inf"}')).toBe(0);
    expect(text.endsWith("\n")).toBe(true);
  });

  it("keeps histogram buckets cumulative, with _sum and _count, ttft in seconds", () => {
    const metrics = new AgentMetrics();
    for (const tps of [0.5, 4, 50, 200]) metrics.countAnswer("cli", figures(20, tps, 1500));
    metrics.countAnswer("cli", figures(1, 999, 20)); // one token: no rate, but a first token
    metrics.countAnswer("cli", figures(0, 999, 999, "cancelled")); // no token: neither
    const text = metrics.render();
    // Every bound in order, then +Inf: each bucket counts all values up to its bound.
    const buckets = (name: string, bounds: readonly number[]) =>
      [...bounds.map(String), "+Inf"].map((le) => value(text, `${name}_bucket{le="${le}"}`));
    const rate = "instrument_agent_generation_tokens_per_second";
    expect(TOKENS_PER_SECOND_BUCKETS).toEqual([1, 2, 3, 5, 7.5, 10, 15, 20, 30, 50, 75, 100]);
    expect(buckets(rate, TOKENS_PER_SECOND_BUCKETS)).toEqual([1, 1, 1, 2, 2, 2, 2, 2, 2, 3, 3, 3, 4]);
    expect([value(text, `${rate}_count`), value(text, `${rate}_sum`)]).toEqual([4, 254.5]);
    const ttft = "instrument_agent_time_to_first_token_seconds";
    expect(TTFT_SECONDS_BUCKETS).toEqual([0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60]);
    expect(buckets(ttft, TTFT_SECONDS_BUCKETS)).toEqual([0, 1, 1, 1, 1, 1, 1, 5, 5, 5, 5, 5, 5, 5]);
    expect(value(text, `${ttft}_count`)).toBe(5);
    expect(value(text, `${ttft}_sum`)).toBeCloseTo(6.02, 9);
  });

  it("escapes backslash, double quote and line feed in label values", () => {
    expect(escapeLabelValue('a"b\\c\nd')).toBe('a\\"b\\\\c\\nd');
    const text = new AgentMetrics({ model: 'q"wen\\2.5\n0.5b' }).render();
    expect(line(text, 'instrument_agent_model_info{model="q\\"wen\\\\2.5\\n0.5b"}')).toBeDefined();
    expect(text.split("\n").filter((l) => l.startsWith("instrument_agent_model_info"))).toHaveLength(1);
  });

  it("reads the queue, engine restarts, SCPI counts and uptime when it renders", () => {
    const queue = { running: 1, waiting: 0 };
    const scpi = { sent: 3, refused: 1, failed: 0 };
    let restarts = 0;
    const metrics = new AgentMetrics({ queue: () => queue, scpi: () => scpi, engineRestarts: () => restarts, uptimeSeconds: () => 12.5 });
    const before = metrics.render();
    expect(value(before, 'instrument_agent_queue_depth{state="running"}')).toBe(1);
    expect(value(before, 'instrument_agent_queue_depth{state="waiting"}')).toBe(0);
    expect(value(before, 'instrument_agent_scpi_queries_total{outcome="sent"}')).toBe(3);
    expect(value(before, "instrument_agent_uptime_seconds")).toBe(12.5);
    queue.waiting = 4;
    scpi.refused = 2;
    restarts = 1;
    const after = metrics.render();
    expect(value(after, 'instrument_agent_queue_depth{state="waiting"}')).toBe(4);
    expect(value(after, 'instrument_agent_scpi_queries_total{outcome="refused"}')).toBe(2);
    expect(value(after, 'instrument_agent_scpi_queries_total{outcome="failed"}')).toBe(0);
    expect(value(after, "instrument_agent_engine_restarts_total")).toBe(1);
  });

  it("has no SCPI, queue or model samples when those are not there", () => {
    const text = new AgentMetrics().render();
    expect(text).toContain("# TYPE instrument_agent_scpi_queries_total counter");
    expect(text).not.toMatch(/^instrument_agent_(scpi_queries_total|queue_depth|model_info)/m);
  });

  it("counts tool calls by tool and outcome", () => {
    const metrics = new AgentMetrics();
    metrics.countToolCall({ name: "scpi_query", arguments: {}, result: "1e9" });
    metrics.countToolCall({ name: "scpi_query", arguments: {}, error: { code: "IA_ERR_SCPI_REFUSED", message: "no" } });
    metrics.countToolCall({ name: "read_trace", arguments: {}, error: { code: "IA_ERR_SCPI_TIMEOUT", message: "slow" } });
    const text = metrics.render();
    expect(value(text, 'instrument_agent_tool_calls_total{tool="scpi_query",outcome="ok"}')).toBe(1);
    expect(value(text, 'instrument_agent_tool_calls_total{tool="scpi_query",outcome="refused"}')).toBe(1);
    expect(value(text, 'instrument_agent_tool_calls_total{tool="read_trace",outcome="error"}')).toBe(1);
  });
});

const info = { modelLabel: "t.gguf", parallelSequences: 1 } as RuntimeInfo;

/** Answers "ok" in 4 tokens; with `calls`, first asks for one scpi_query tool call. `fail` throws instead. */
function fakeRuntime(options: { fail?: AgentError; calls?: boolean; hold?: Promise<void> } = {}): ModelRuntime {
  let generation = 0;
  return {
    info,
    slots: 1,
    disposed: false,
    async generate() {
      await options.hold;
      if (options.fail) throw options.fail;
      generation += 1;
      const call = options.calls && generation === 1;
      const result: GenerateResult = {
        text: call ? "" : "ok",
        finishReason: "stop",
        usage: { promptTokens: 6, completionTokens: 4 },
        timings: { ttftMs: 30, tokensPerSecond: 8, promptTokensPerSecond: 100, totalMs: 400, queuedMs: 0 },
        ...(call ? { toolCalls: [{ name: "scpi_query", arguments: { query: "*IDN?" } }] } : {}),
      };
      return result;
    },
    countTokens: async (text) => text.length,
    dispose: async () => undefined,
  };
}

describe("AnswerService counts into AgentMetrics", () => {
  const question = { messages: [{ role: "user" as const, content: "hi" }] };

  it("counts each answer under its transport, an unnamed caller as unknown", async () => {
    const metrics = new AgentMetrics();
    const service = new AnswerService(fakeRuntime(), new RequestQueue({ slots: 1 }), { system: "", params: {} }, { metrics });
    await service.answer(question, { transport: "mqtt" });
    await service.answer(question, { transport: "serial" });
    await service.answer(question);
    expect(metrics.answers("mqtt", "stop")).toBe(1);
    expect(metrics.answers("serial", "stop")).toBe(1);
    expect(metrics.answers("unknown", "stop")).toBe(1);
    expect(value(metrics.render(), "instrument_agent_completion_tokens_total")).toBe(12);
  });

  it("counts an error thrown from the runtime and a full queue with their codes", async () => {
    const metrics = new AgentMetrics();
    const failing = new AnswerService(
      fakeRuntime({ fail: new AgentError("IA_ERR_PROMPT_TOO_LONG", "long") }),
      new RequestQueue({ slots: 1 }),
      { system: "", params: {} },
      { metrics },
    );
    await expect(failing.answer(question, { transport: "http" })).rejects.toThrow("long");
    expect(metrics.errors("IA_ERR_PROMPT_TOO_LONG", "http")).toBe(1);

    let release!: () => void;
    const hold = new Promise<void>((resolve) => (release = resolve));
    const queue = new RequestQueue({ slots: 1, capacity: 0 });
    const busy = new AnswerService(fakeRuntime({ hold }), queue, { system: "", params: {} }, { metrics });
    const first = busy.answer(question, { transport: "console" });
    await expect(busy.answer(question, { transport: "console" })).rejects.toMatchObject({ code: "IA_ERR_QUEUE_FULL" });
    release();
    await first;
    expect(metrics.errors("IA_ERR_QUEUE_FULL", "console")).toBe(1);
    expect(metrics.answers("console", "stop")).toBe(1);
  });

  it("counts the model's tool calls", async () => {
    const metrics = new AgentMetrics();
    const tools: ToolBox = {
      specs: [],
      maxCalls: 3,
      run: async (call) => ({ name: call.name, arguments: call.arguments, error: { code: "IA_ERR_SCPI_REFUSED", message: "refused" } }),
    };
    const service = new AnswerService(
      fakeRuntime({ calls: true }),
      new RequestQueue({ slots: 1 }),
      { system: "", params: {} },
      { metrics, tools },
    );
    await service.answer(question, { transport: "cli" });
    expect(value(metrics.render(), 'instrument_agent_tool_calls_total{tool="scpi_query",outcome="refused"}')).toBe(1);
    expect(metrics.answers("cli", "stop")).toBe(1);
  });
  it("counts a console's answers under the transport its host names", async () => {
    const metrics = new AgentMetrics();
    const service = new AnswerService(fakeRuntime(), new RequestQueue({ slots: 1 }), { system: "", params: {} }, { metrics });
    const said: string[] = [];
    const host = (transport: ConsoleHost["transport"]): ConsoleHost => ({
      port: { say: (text) => said.push(text), stream: () => undefined, endLine: () => undefined },
      service,
      conversation: new Conversation(),
      logger: createLogger({ level: "silent" }),
      transport,
      helpNotes: [],
      statusExtra: () => [],
      endConversation: () => undefined,
      ask: async () => undefined,
    });
    await answerQuestion(host("serial"), "hi", { signal: new AbortController().signal, timings: false });
    await answerQuestion(host("console"), "hi", { signal: new AbortController().signal, timings: false });
    expect(said.filter((text) => text.startsWith("error"))).toEqual([]);
    expect([metrics.answers("serial", "stop"), metrics.answers("console", "stop")]).toEqual([1, 1]);
  });
});

const topics = agentTopics("ia", "a1");

/** An MQTT request handler on the fake model, counting into fresh metrics. */
function mqttHandler(options: Partial<RequestHandlerOptions> = {}): { handler: RequestHandler; metrics: AgentMetrics } {
  const metrics = new AgentMetrics();
  const service = new AnswerService(fakeRuntime(), new RequestQueue({ slots: 1 }), { system: "", params: {} }, { metrics });
  const handler = new RequestHandler({
    agentId: "a1",
    topics,
    prefix: "ia",
    payloadLimit: 65_536,
    rateLimitPerMinute: 0,
    service,
    logger: createLogger({ level: "silent" }),
    publish: () => undefined,
    stopping: () => false,
    ...options,
  });
  return { handler, metrics };
}

describe("the MQTT handler counts its refusals before the service", () => {
  it("counts a bad request, a payload over the limit and a rate-limited question as mqtt errors, and the answer", async () => {
    const { handler, metrics } = mqttHandler({ payloadLimit: 200, rateLimitPerMinute: 1 });
    const packet = { cmd: "publish", topic: topics.ask, qos: 1, dup: false, retain: false, payload: Buffer.alloc(0) } as IPublishPacket;
    const ask = (body: string) => handler.handle(topics.ask, Buffer.from(body), packet);
    await ask('{"replyTo": "lab/r", "prompt": 42}');
    await ask(JSON.stringify({ replyTo: "lab/r", prompt: "x".repeat(300) }));
    await ask('{"replyTo": "lab/r", "prompt": "first"}');
    await ask('{"replyTo": "lab/r", "prompt": "second, over the limit"}');
    await handler.settled();
    expect(metrics.errors("IA_ERR_BAD_REQUEST", "mqtt")).toBe(1);
    expect(metrics.errors("IA_ERR_PAYLOAD_TOO_LARGE", "mqtt")).toBe(1);
    expect(metrics.errors("IA_ERR_RATE_LIMITED", "mqtt")).toBe(1);
    expect(metrics.answers("mqtt", "stop")).toBe(1);
  });

  it("counts a question a crash left unanswered, too old to answer after the restart, as IA_ERR_EXPIRED", async () => {
    const question = { key: "lab/r\u0000old", id: "old", route: { replyTo: "lab/r", protocolVersion: 5 as const }, arrivedAt: 0 };
    const entry: JournalEntry = { question: { ...question, request: { id: "old", idGiven: true, prompt: "hi" } }, state: "accepted" };
    const journal: AnswerJournal = {
      accept: async () => entry,
      markAnswering: () => undefined,
      finish: async () => undefined,
      lookup: () => undefined,
      unfinished: () => [entry],
      saveSession: async () => undefined,
      session: () => undefined,
    };
    const { handler, metrics } = mqttHandler({ maxAgeMs: 60_000, now: () => 3_600_000 });
    handler.useJournal(journal);
    await handler.settled();
    expect(metrics.errors("IA_ERR_EXPIRED", "mqtt")).toBe(1);
    expect(metrics.answers("mqtt", "stop")).toBe(0);
  });
});

describe("Prometheus' Python text parser reads render()", () => {
  it("parses every family with its type, and the escaped label value back to the original", async () => {
    const model = 'qwen "2.5" C:\\models\nq8';
    const metrics = new AgentMetrics({
      model,
      queue: () => ({ running: 0, waiting: 2 }),
      scpi: () => ({ sent: 4, refused: 1, failed: 0 }),
    });
    metrics.countAnswer("mqtt", figures(9, 14, 250));
    metrics.countAnswer("http", figures(2, 3, 40, "length"));
    metrics.countError("IA_ERR_BAD_REQUEST", "mqtt");
    metrics.countToolCall({ name: "read_trace", arguments: {}, result: "ok" });
    const families = await parsePrometheusText(metrics.render());
    expect(familyTypes(families)).toEqual(AGENT_FAMILIES);
    expect(sampleValue(families, "instrument_agent_answers_total", { transport: "mqtt", finish_reason: "stop" })).toBe(1);
    expect(sampleValue(families, "instrument_agent_errors_total", { code: "IA_ERR_BAD_REQUEST", transport: "mqtt" })).toBe(1);
    expect(sampleValue(families, "instrument_agent_completion_tokens_total")).toBe(11);
    expect(sampleValue(families, "instrument_agent_model_info", { model })).toBe(1);
    expect(sampleValue(families, "instrument_agent_queue_depth", { state: "waiting" })).toBe(2);
    expect(sampleValue(families, "instrument_agent_scpi_queries_total", { outcome: "refused" })).toBe(1);
    expect(sampleValue(families, "instrument_agent_tool_calls_total", { tool: "read_trace", outcome: "ok" })).toBe(1);
    expect(sampleValue(families, "instrument_agent_generation_tokens_per_second_bucket", { le: "15" })).toBe(2);
    expect(sampleValue(families, "instrument_agent_generation_tokens_per_second_bucket", { le: "+Inf" })).toBe(2);
    expect(sampleValue(families, "instrument_agent_time_to_first_token_seconds_count")).toBe(2);
  });

  it("fails loudly on text that is not the format", async () => {
    await expect(parsePrometheusText('instrument_agent_x{a="unterminated} 1\n')).rejects.toThrow(/could not parse/);
  });
});
