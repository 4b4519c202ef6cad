/** Medians and ratios for `bench`: pure, so the table and JSON agree with the unit tests. */

export function median(values: number[]): number {
  const sorted = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return 0;
  const middle = Math.floor(sorted.length / 2);
  const value = sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
  return round(value);
}

/** `a / b` to three decimals; null when either side is missing or zero. */
export function ratio(a: number | null | undefined, b: number | null | undefined): number | null {
  if (a === null || a === undefined || b === null || b === undefined || b === 0 || !Number.isFinite(a) || !Number.isFinite(b)) return null;
  return Math.round((a / b) * 1000) / 1000;
}

export function round(value: number, digits = 2): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

/** One measured request: the same three figures for every path. */
export interface Sample {
  promptTokens: number;
  completionTokens: number;
  ttftMs: number;
  promptTokensPerSecond: number;
  tokensPerSecond: number;
}

export interface SampleMedians {
  runs: number;
  promptTokens: number;
  completionTokens: number;
  ttftMs: number;
  promptTokensPerSecond: number;
  tokensPerSecond: number;
}

export function medians(samples: Sample[]): SampleMedians {
  return {
    runs: samples.length,
    promptTokens: median(samples.map((s) => s.promptTokens)),
    completionTokens: median(samples.map((s) => s.completionTokens)),
    ttftMs: median(samples.map((s) => s.ttftMs)),
    promptTokensPerSecond: median(samples.map((s) => s.promptTokensPerSecond)),
    tokensPerSecond: median(samples.map((s) => s.tokensPerSecond)),
  };
}

/** The figures of one request timed by its caller: sent, first text, done. */
export function sampleFrom(timing: { startedAt: number; firstAt: number | undefined; finishedAt: number; promptTokens: number; completionTokens: number }): Sample {
  const firstAt = timing.firstAt ?? timing.finishedAt;
  const ttftMs = firstAt - timing.startedAt;
  const generationSeconds = (timing.finishedAt - firstAt) / 1000;
  return {
    promptTokens: timing.promptTokens,
    completionTokens: timing.completionTokens,
    ttftMs: round(ttftMs),
    promptTokensPerSecond: ttftMs > 0 ? round((timing.promptTokens * 1000) / ttftMs) : 0,
    tokensPerSecond: timing.completionTokens > 1 && generationSeconds > 0 ? round((timing.completionTokens - 1) / generationSeconds) : 0,
  };
}
