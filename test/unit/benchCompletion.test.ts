import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { COMPLETION_SAMPLINGS, completionArgs, parseCompletionPerf } from "../../agent/diagnostics/bench/benchCompletion.js";
import { ROOT } from "../helpers/bundle.js";

// llama-completion's timings as it printed them here (stderr of a real run on a
// Qwen2.5-0.5B-shaped Q8_0, 64 tokens), read the way bench reads them.
const stderr = readFileSync(path.join(ROOT, "test", "fixtures", "llama-completion-stderr.txt"), "utf8");

describe("llama-completion's timings", () => {
  it("generation counts eval runs over total minus prompt time; decode-only over eval time", () => {
    const perf = parseCompletionPerf(stderr);
    // eval 1219.45 ms / 63 runs; total 1337.62 ms; prompt eval 99.07 ms / 15 tokens
    expect(perf.decodeTokensPerSecond).toBeCloseTo((63 * 1000) / 1219.45, 1);
    expect(perf.tokensPerSecond).toBeCloseTo((63 * 1000) / (1337.62 - 99.07), 1);
    expect(perf.promptTokensPerSecond).toBeCloseTo((15 * 1000) / 99.07, 1);
    expect(perf.generated).toBe(64);
    expect(perf.samplingMs).toBeCloseTo(11.66, 2);
  });

  it("a run without its timings is an error with the code and what it printed", () => {
    expect(() => parseCompletionPerf("main: error: unable to load model\n")).toThrow(/no complete timings.*unable to load model/);
  });

  it("both sides sample alike: no chat template, no repeat penalty, min-p 0, the same threads, exactly n tokens", () => {
    const [greedy, sampled] = COMPLETION_SAMPLINGS;
    const base = { binary: "x", modelPath: "m.gguf", threads: 2, prompt: "hi", genTokens: 64, contextSize: 1024 };
    const g = completionArgs({ ...base, sampling: greedy! }).join(" ");
    expect(g).toContain("-no-cnv --ignore-eos");
    expect(g).toContain("--temp 0 --repeat-penalty 1 --min-p 0");
    expect(g).toContain("-t 2 -fa auto");
    expect(g).not.toContain("--top-k");
    const s = completionArgs({ ...base, sampling: sampled! }).join(" ");
    expect(s).toContain("--temp 0.8");
    expect(s).toContain("--top-k 40 --top-p 0.95 --seed 42");
  });
});
