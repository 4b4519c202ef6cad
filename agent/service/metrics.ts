import type { ScpiCounts } from "../../firmware-bridge/scpiAudit.js";
import type { ToolRecord } from "./toolBox.js";

/**
 * The agent's figures in the Prometheus text exposition format, version 0.0.4
 * (https://prometheus.io/docs/instrumenting/exposition_formats/), written by hand: a handful
 * of counters, gauges and two histograms do not need a client library in the bundle. The
 * answer service counts; what another part already counts (the queue, the engine, the SCPI
 * bridge) is read when `render()` runs, so there is one count of each thing.
 */

export interface AgentMetricsOptions {
  /** The loaded model's label, for `instrument_agent_model_info`. Defaults to none (no sample). */
  model?: string | undefined;
  /** Jobs answering and waiting in the shared queue now. Defaults to none (no samples). */
  queue?: (() => { running: number; waiting: number }) | undefined;
  /** Engine children started again after a crash. Defaults to none (0). */
  engineRestarts?: (() => number) | undefined;
  /** The firmware bridge's counts, when an instrument is configured. Defaults to none (no samples). */
  scpi?: (() => ScpiCounts) | undefined;
  /** Seconds since the process started. Defaults to `process.uptime`. */
  uptimeSeconds?: (() => number) | undefined;
}

/** Generation speed, tokens/s: a Core 2 instrument PC on a 1.5B model up to a 0.5B model on a fast desktop. */
export const TOKENS_PER_SECOND_BUCKETS: readonly number[] = [1, 2, 3, 5, 7.5, 10, 15, 20, 30, 50, 75, 100];
/** Time to first token, seconds: a cached turn in 10 ms up to a long prompt on a slow host in a minute. */
export const TTFT_SECONDS_BUCKETS: readonly number[] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60];

const PREFIX = "instrument_agent_";

/** A counter with labels, one value per label combination, in the order first seen. */
class LabelledCounter {
  readonly #values = new Map<string, { labels: Record<string, string>; value: number }>();

  add(labels: Record<string, string>, amount = 1): void {
    const key = JSON.stringify(labels);
    const entry = this.#values.get(key);
    if (entry) entry.value += amount;
    else this.#values.set(key, { labels, value: amount });
  }

  get(labels: Record<string, string>): number {
    return this.#values.get(JSON.stringify(labels))?.value ?? 0;
  }

  samples(): Array<{ labels: Record<string, string>; value: number }> {
    return [...this.#values.values()];
  }
}

/** Cumulative buckets, as Prometheus has them: a bucket counts every value up to its bound. */
class Histogram {
  readonly bounds: readonly number[];
  readonly #counts: number[];
  #sum = 0;
  #count = 0;

  constructor(bounds: readonly number[]) {
    this.bounds = bounds;
    this.#counts = bounds.map(() => 0);
  }

  observe(value: number): void {
    if (!Number.isFinite(value)) return;
    this.#sum += value;
    this.#count += 1;
    this.bounds.forEach((bound, index) => {
      if (value <= bound) this.#counts[index]! += 1;
    });
  }

  lines(name: string): string[] {
    const buckets = this.bounds.map((bound, index) => `${name}_bucket{le="${formatNumber(bound)}"} ${this.#counts[index]}`);
    return [
      ...buckets,
      `${name}_bucket{le="+Inf"} ${this.#count}`,
      `${name}_sum ${formatNumber(this.#sum)}`,
      `${name}_count ${this.#count}`,
    ];
  }
}

/** What the answer service tells the metrics about one answer. */
export interface AnsweredFigures {
  finishReason: string;
  usage: { promptTokens: number; completionTokens: number };
  timings: { tokensPerSecond: number; ttftMs: number };
}

export class AgentMetrics {
  readonly #options: AgentMetricsOptions;
  readonly #answers = new LabelledCounter();
  readonly #errors = new LabelledCounter();
  readonly #toolCalls = new LabelledCounter();
  #promptTokens = 0;
  #completionTokens = 0;
  readonly #tokensPerSecond = new Histogram(TOKENS_PER_SECOND_BUCKETS);
  readonly #ttft = new Histogram(TTFT_SECONDS_BUCKETS);

  constructor(options: AgentMetricsOptions = {}) {
    this.#options = options;
  }

  /** One answer the service returned (cancelled ones too: their tokens were evaluated). */
  countAnswer(transport: string, result: AnsweredFigures): void {
    this.#answers.add({ transport, finish_reason: result.finishReason });
    this.#promptTokens += result.usage.promptTokens;
    this.#completionTokens += result.usage.completionTokens;
    // One token gives no rate (the same rule as the service's "last answer" figures).
    if (result.usage.completionTokens > 1) this.#tokensPerSecond.observe(result.timings.tokensPerSecond);
    if (result.usage.completionTokens > 0) this.#ttft.observe(result.timings.ttftMs / 1000);
  }

  /** One question that ended in an error: thrown by the service, or refused by a transport before it. */
  countError(code: string, transport: string): void {
    this.#errors.add({ code, transport });
  }

  /** One instrument call the model made: `ok`, `refused` by the allowlist, or `error`. */
  countToolCall(record: ToolRecord): void {
    const outcome = record.error === undefined ? "ok" : record.error.code === "IA_ERR_SCPI_REFUSED" ? "refused" : "error";
    this.#toolCalls.add({ tool: record.name, outcome });
  }

  /** How many answers a transport got with this finish reason (tests, `/status`). */
  answers(transport: string, finishReason: string): number {
    return this.#answers.get({ transport, finish_reason: finishReason });
  }

  /** How many errors with this code a transport got. */
  errors(code: string, transport: string): number {
    return this.#errors.get({ code, transport });
  }

  /** Every metric, as a Prometheus scrape reads it (`text/plain; version=0.0.4`). */
  render(): string {
    const out: string[] = [];
    const family = (name: string, type: "counter" | "gauge" | "histogram", help: string, lines: string[]) => {
      out.push(`# HELP ${PREFIX}${name} ${escapeHelp(help)}`, `# TYPE ${PREFIX}${name} ${type}`, ...lines);
    };
    const labelled = (name: string, counter: LabelledCounter) => counter.samples().map(({ labels, value }) => sample(name, labels, value));
    family("answers_total", "counter", "Answers returned, by transport and finish reason.", labelled("answers_total", this.#answers));
    family(
      "errors_total",
      "counter",
      "Questions that ended in an error, by IA_ERR code and transport.",
      labelled("errors_total", this.#errors),
    );
    family("prompt_tokens_total", "counter", "Prompt tokens evaluated.", [sample("prompt_tokens_total", {}, this.#promptTokens)]);
    family("completion_tokens_total", "counter", "Tokens generated.", [sample("completion_tokens_total", {}, this.#completionTokens)]);
    family(
      "generation_tokens_per_second",
      "histogram",
      "Generation speed of answers with more than one token, tokens/s.",
      this.#tokensPerSecond.lines(`${PREFIX}generation_tokens_per_second`),
    );
    family(
      "time_to_first_token_seconds",
      "histogram",
      "Time from the start of generation to the first token, seconds.",
      this.#ttft.lines(`${PREFIX}time_to_first_token_seconds`),
    );
    const queue = this.#options.queue?.();
    family(
      "queue_depth",
      "gauge",
      "Questions in the shared queue now: answering (running) or waiting for a sequence.",
      queue ? [sample("queue_depth", { state: "running" }, queue.running), sample("queue_depth", { state: "waiting" }, queue.waiting)] : [],
    );
    const restarts = this.#options.engineRestarts?.() ?? 0;
    family("engine_restarts_total", "counter", "Engine processes started again after one ended.", [
      sample("engine_restarts_total", {}, restarts),
    ]);
    const scpi = this.#options.scpi?.();
    family(
      "scpi_queries_total",
      "counter",
      "SCPI through the read-only bridge: queries answered (sent), lines refused by the allowlist, queries that failed.",
      scpi ? (["sent", "refused", "failed"] as const).map((outcome) => sample("scpi_queries_total", { outcome }, scpi[outcome])) : [],
    );
    family(
      "tool_calls_total",
      "counter",
      "Instrument tool calls the model made, by tool and outcome.",
      labelled("tool_calls_total", this.#toolCalls),
    );
    const model = this.#options.model;
    family("model_info", "gauge", "The loaded model (always 1).", model === undefined ? [] : [sample("model_info", { model }, 1)]);
    const uptime = (this.#options.uptimeSeconds ?? process.uptime)();
    family("uptime_seconds", "gauge", "Seconds since the agent process started.", [
      sample("uptime_seconds", {}, Math.round(uptime * 1000) / 1000),
    ]);
    return `${out.join("\n")}\n`;
  }
}

function sample(name: string, labels: Record<string, string>, value: number): string {
  const pairs = Object.entries(labels).map(([key, text]) => `${key}="${escapeLabelValue(text)}"`);
  return `${PREFIX}${name}${pairs.length > 0 ? `{${pairs.join(",")}}` : ""} ${formatNumber(value)}`;
}

/** Label values escape backslash, double quote and line feed (format 0.0.4). */
export function escapeLabelValue(text: string): string {
  return text.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

/** HELP text escapes backslash and line feed. */
function escapeHelp(text: string): string {
  return text.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

function formatNumber(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}
