import { describe, expect, it } from "vitest";
import { concurrentThroughput, median, medians, ratio, sampleFrom } from "../../agent/diagnostics/bench/benchStats.js";

describe("bench statistics", () => {
  it("median of odd and even counts ignores non-finite values", () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([Number.NaN, 5])).toBe(5);
    expect(median([])).toBe(0);
  });

  it("ratio is null when a side is missing or zero", () => {
    expect(ratio(47.5, 50)).toBe(0.95);
    expect(ratio(1, 0)).toBeNull();
    expect(ratio(null, 2)).toBeNull();
  });

  it("a sample counts generation speed after the first token, prompt speed up to it", () => {
    const s = sampleFrom({ startedAt: 0, firstAt: 100, finishedAt: 1100, promptTokens: 64, completionTokens: 21 });
    expect(s).toEqual({
      promptTokens: 64,
      completionTokens: 21,
      ttftMs: 100,
      promptTokensPerSecond: 640,
      tokensPerSecond: 20,
      pathMs: null,
    });
  });

  it("the path time is the requester's TTFT minus the engine's own, and only when both are known", () => {
    expect(
      sampleFrom({ startedAt: 10, firstAt: 110.25, finishedAt: 900, promptTokens: 8, completionTokens: 4, engineTtftMs: 97 }).pathMs,
    ).toBe(3.25);
    // No first text seen: the TTFT is the whole answer, so no path time either.
    const silent = sampleFrom({
      startedAt: 0,
      firstAt: undefined,
      finishedAt: 900,
      promptTokens: 8,
      completionTokens: 0,
      engineTtftMs: 97,
    });
    expect(silent.pathMs).toBeNull();
    // Its median skips such requests, and is null only when no request has one.
    const timed = [1, 2, 9].map((pathMs) => ({ ...silent, pathMs }));
    expect(medians([...timed, silent]).pathMs).toBe(2);
    expect(medians([silent, silent]).pathMs).toBeNull();
  });

  it("median keeps the digits asked for", () => {
    expect(median([0.9514, 0.9, 1], 3)).toBe(0.951);
  });

  it("concurrent throughput counts only the window where every requester generates", () => {
    // Prompts end together at 1 s; each of 4 requesters then makes 41 tokens in 2 s.
    const together = Array.from({ length: 4 }, () => ({ startedAt: 0, firstAt: 1000, finishedAt: 3000, completionTokens: 41 }));
    expect(concurrentThroughput(together)).toEqual({ generation: 80, endToEnd: 54.67 });
    // One requester starts generating 1 s before the other: its first half is outside the window.
    const staggered = [
      { startedAt: 0, firstAt: 1000, finishedAt: 3000, completionTokens: 21 },
      { startedAt: 0, firstAt: 2000, finishedAt: 3000, completionTokens: 11 },
    ];
    expect(concurrentThroughput(staggered)).toEqual({ generation: 20, endToEnd: 10.67 });
    expect(concurrentThroughput([])).toEqual({ generation: 0, endToEnd: 0 });
  });
});
