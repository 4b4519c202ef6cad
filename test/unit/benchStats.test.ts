import { describe, expect, it } from "vitest";
import { median, ratio, sampleFrom } from "../../agent/benchStats.js";

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
    expect(s).toEqual({ promptTokens: 64, completionTokens: 21, ttftMs: 100, promptTokensPerSecond: 640, tokensPerSecond: 20 });
  });
});
