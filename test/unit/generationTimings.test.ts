import { describe, expect, it } from "vitest";
import { timings } from "../../agent/engine/generationTimings.js";

describe("timings", () => {
  it("splits a generation at its first token: prompt speed before, generation speed after", () => {
    // 20 prompt tokens in 200 ms to the first token, then 10 more tokens in 900 ms.
    expect(timings(1000, 1200, 2100, { prompt: 20, completion: 10 })).toEqual({
      ttftMs: 200,
      tokensPerSecond: 10,
      promptTokensPerSecond: 100,
      totalMs: 1100,
    });
  });

  it("rounds to two decimals", () => {
    const result = timings(0, 300.123456, 1000, { prompt: 7, completion: 3 });
    expect(result.ttftMs).toBe(300.12);
    expect(result.promptTokensPerSecond).toBe(23.32);
    expect(result.tokensPerSecond).toBe(2.86);
  });

  it("reports 0 for a rate with nothing to measure: no token came, or only one", () => {
    expect(timings(0, undefined, 500, { prompt: 5, completion: 0 })).toEqual({
      ttftMs: 500,
      tokensPerSecond: 0,
      promptTokensPerSecond: 10,
      totalMs: 500,
    });
    expect(timings(0, 100, 400, { prompt: 5, completion: 1 }).tokensPerSecond).toBe(0);
    expect(timings(0, 0, 0, { prompt: 5, completion: 4 })).toEqual({ ttftMs: 0, tokensPerSecond: 0, promptTokensPerSecond: 0, totalMs: 0 });
  });
});
