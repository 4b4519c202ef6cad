import { round } from "../../../common/format.js";

/** Medians and ratios for `bench`: pure, so the table and JSON agree with the unit tests. */

export function median(values: number[], digits = 2): number {
  const sorted = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return 0;
  const middle = Math.floor(sorted.length / 2);
  const value = sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
  return round(value, digits);
}

/** `a / b` to three decimals; null when either side is missing or zero. */
export function ratio(a: number | null | undefined, b: number | null | undefined): number | null {
  if (a === null || a === undefined || b === null || b === undefined || b === 0 || !Number.isFinite(a) || !Number.isFinite(b)) return null;
  return round(a / b, 3);
}

/** One measured request: the same three figures for every path. */
export interface Sample {
  promptTokens: number;
  completionTokens: number;
  ttftMs: number;
  promptTokensPerSecond: number;
  tokensPerSecond: number;
  /**
   * The requester's TTFT minus the TTFT the engine measured for the same request: what the
   * path (queue, engine IPC, MQTT) adds before the first text, free of the prompt-evaluation
   * time that varies by tens of ms between requests. Null when the engine's figure is unknown.
   */
  pathMs: number | null;
}

export interface SampleMedians {
  runs: number;
  promptTokens: number;
  completionTokens: number;
  ttftMs: number;
  promptTokensPerSecond: number;
  tokensPerSecond: number;
  pathMs: number | null;
}

export function medians(samples: Sample[]): SampleMedians {
  return {
    runs: samples.length,
    promptTokens: median(samples.map((s) => s.promptTokens)),
    completionTokens: median(samples.map((s) => s.completionTokens)),
    ttftMs: median(samples.map((s) => s.ttftMs)),
    promptTokensPerSecond: median(samples.map((s) => s.promptTokensPerSecond)),
    tokensPerSecond: median(samples.map((s) => s.tokensPerSecond)),
    // A request whose answer streamed no text has no first-text time, so no path time: the median of the others.
    pathMs: samples.every((s) => s.pathMs === null) ? null : median(samples.flatMap((s) => (s.pathMs === null ? [] : [s.pathMs]))),
  };
}

/** The figures of one request timed by its caller: sent, first text, done; and the engine's own TTFT when the answer carried it. */
export function sampleFrom(timing: {
  startedAt: number;
  firstAt: number | undefined;
  finishedAt: number;
  promptTokens: number;
  completionTokens: number;
  engineTtftMs?: number | undefined;
}): Sample {
  const firstAt = timing.firstAt ?? timing.finishedAt;
  const ttftMs = firstAt - timing.startedAt;
  const generationSeconds = (timing.finishedAt - firstAt) / 1000;
  return {
    promptTokens: timing.promptTokens,
    completionTokens: timing.completionTokens,
    ttftMs: round(ttftMs),
    promptTokensPerSecond: ttftMs > 0 ? round((timing.promptTokens * 1000) / ttftMs) : 0,
    tokensPerSecond: timing.completionTokens > 1 && generationSeconds > 0 ? round((timing.completionTokens - 1) / generationSeconds) : 0,
    pathMs: timing.engineTtftMs === undefined || timing.firstAt === undefined ? null : round(ttftMs - timing.engineTtftMs),
  };
}

/** One requester of a concurrent run, timed by the bench: sent, first text, done. */
export interface RequesterTiming {
  startedAt: number;
  firstAt: number | undefined;
  finishedAt: number;
  completionTokens: number;
}

/**
 * Aggregate throughput of requesters asking at once. `generation` counts the window in which
 * every requester is generating (from the last first token to the last answer), each
 * requester's tokens in it estimated from its own steady rate; prompt evaluation, which is
 * compute-bound and serial, stays out of it. `endToEnd` is all generated tokens over the
 * whole wall time, prompts included.
 */
export function concurrentThroughput(requesters: RequesterTiming[]): { generation: number; endToEnd: number } {
  if (requesters.length === 0) return { generation: 0, endToEnd: 0 };
  const startedAt = Math.min(...requesters.map((r) => r.startedAt));
  const allGenerating = Math.max(...requesters.map((r) => r.firstAt ?? r.finishedAt));
  const lastDone = Math.max(...requesters.map((r) => r.finishedAt));
  const total = requesters.reduce((sum, r) => sum + r.completionTokens, 0);
  const inWindow = requesters.reduce((sum, r) => {
    const firstAt = r.firstAt ?? r.finishedAt;
    const span = r.finishedAt - firstAt;
    if (r.completionTokens <= 1 || span <= 0) return sum;
    const share = Math.max(0, r.finishedAt - Math.max(firstAt, allGenerating)) / span;
    return sum + (r.completionTokens - 1) * share;
  }, 0);
  const windowSeconds = (lastDone - allGenerating) / 1000;
  return {
    generation: windowSeconds > 0 ? round(inWindow / windowSeconds) : 0,
    endToEnd: lastDone > startedAt ? round(total / ((lastDone - startedAt) / 1000)) : 0,
  };
}
