import { round } from "../../common/format.js";

/** The speed figures of one generation, from when evaluation started, the first token came and it ended. */
export interface GenerationTimings {
  /** From the start of evaluation to the first generated token. */
  ttftMs: number;
  /** Generated tokens per second after the first one (the first token's time is the prompt's). */
  tokensPerSecond: number;
  /** Prompt tokens per second: the prompt's tokens over the time to the first token. */
  promptTokensPerSecond: number;
  totalMs: number;
}

/**
 * `start`, `firstAt` and `end` are `performance.now()` readings; `firstAt` is undefined when no
 * token came (then the whole time is time to first token). A rate that has nothing to measure
 * (no time, or at most one generated token) is 0.
 */
export function timings(
  start: number,
  firstAt: number | undefined,
  end: number,
  tokens: { prompt: number; completion: number },
): GenerationTimings {
  const ttftMs = (firstAt ?? end) - start;
  const generationSeconds = (end - (firstAt ?? end)) / 1000;
  return {
    ttftMs: round(ttftMs),
    tokensPerSecond: tokens.completion > 1 && generationSeconds > 0 ? round((tokens.completion - 1) / generationSeconds) : 0,
    promptTokensPerSecond: ttftMs > 0 ? round((tokens.prompt * 1000) / ttftMs) : 0,
    totalMs: round(end - start),
  };
}
