import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { beforeAll, describe, expect, it } from "vitest";
import { ROOT, runAgent } from "../helpers/bundle.js";
import { synthModel, tempDir } from "../helpers/models.js";

// The speed issue's parts through the real bundle: llama.cpp's own `main` (llama-completion)
// built by deploy/build-llama-tools.sh as the README says, paired with the agent over the
// embedded MQTT broker; speculative decoding with a draft model through node-llama-cpp's
// predictor; and a draft of another vocabulary refused at load. Figures are checked for
// sanity only: speed goals are `bench`'s (README, "Speed").
const dir = tempDir("iagent-speed-");
const tools = path.join(dir, "llama-tools");
let tiny = "";
let otherVocabulary = "";
let otherWeights = "";

beforeAll(async () => {
  tiny = await synthModel(dir, "tiny");
  otherVocabulary = await synthModel(dir, "tiny-qwen3");
  otherWeights = await synthModel(dir, "tiny", "q8_0", 2);
  // Needs g++ and git (on every machine of this kind; .ci/run says so when they are missing).
  await promisify(execFile)("bash", [path.join(ROOT, "deploy", "build-llama-tools.sh"), tools], { timeout: 300_000 });
}, 320_000);

/** `bench` on the tiny model, one short round and one requester, with `extra` flags. */
const bench = (extra: string[], timeoutMs = 180_000) =>
  runAgent(
    [
      "bench",
      "--model",
      tiny,
      "--threads",
      "1",
      "--mlock",
      "off",
      "--log-level",
      "error",
      "--bench-runs",
      "1",
      "--bench-prompt",
      "24",
      "--bench-tokens",
      "8",
      "--bench-concurrency",
      "1",
      ...extra,
    ],
    { timeoutMs },
  );

describe("speed against llama.cpp and speculative decoding", () => {
  it("deploy/build-llama-tools.sh builds llama-completion, llama-bench and llama-batched-bench", () => {
    for (const binary of ["llama-completion", "llama-bench", "llama-batched-bench"])
      expect(existsSync(path.join(tools, binary)), binary).toBe(true);
  });

  it("bench --llama-completion pairs the agent over MQTT with llama.cpp's main, greedy and sampled", async () => {
    const result = await bench(["--llama-completion", path.join(tools, "llama-completion"), "--completion-pairs", "2", "--json"]);
    expect(result.code, result.stderr).toBe(0);
    const report = JSON.parse(result.stdout) as { llamaCompletion: Array<Record<string, any>> };
    expect(report.llamaCompletion.map((c) => c.sampling.name)).toEqual(["greedy", "sampled"]);
    for (const c of report.llamaCompletion) {
      expect(c).toMatchObject({ pairs: 2, agentPath: "MQTT (client's view)" });
      for (const key of ["agentTokensPerSecond", "completionTokensPerSecond", "completionDecodeTokensPerSecond", "ratio", "ratioToDecode"])
        expect(c[key], key).toBeGreaterThan(0);
    }
    const table = await bench(["--mqtt", "off", "--llama-completion", path.join(tools, "llama-completion"), "--completion-pairs", "1"]);
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toMatch(/^greedy, 1 pairs, agent in process\s+\d/m);
    expect(table.stdout).toMatch(/^sampled, 1 pairs, agent in process\s+\d/m);
  });

  it("a missing --llama-completion binary is bad usage: exit 2 naming the flag", async () => {
    const missing = await runAgent(["bench", "--model", tiny, "--llama-completion", path.join(dir, "no-such-main")]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("--llama-completion");
  });

  it("--draft: the draft proposes, the model checks, and greedy answers are the same with and without", async () => {
    const result = await bench(["--mqtt", "off", "--draft", tiny, "--draft-min-p", "0", "--json"]);
    expect(result.code, result.stderr).toBe(0);
    const { speculation } = JSON.parse(result.stdout) as { speculation: Record<string, any> };
    expect(speculation.speculation).toBe(`draft ${path.basename(tiny)}, up to 2 tokens per check`);
    expect(speculation.pairs).toBe(1);
    expect(speculation.validated + speculation.refuted).toBeGreaterThan(0);
    expect(speculation.withTokensPerSecond).toBeGreaterThan(0);
    expect(speculation.withoutTokensPerSecond).toBeGreaterThan(0);
    expect(speculation.sameAnswers).toBe(1);
  });

  it("a draft whose proposals are refuted: the answer's token count leaves the refuted tokens out", async () => {
    // Same vocabulary, other random weights: most proposals are wrong. node-llama-cpp's token
    // meter counts every checked token as output; the usage (and so tokens/s) must not.
    const result = await bench(["--mqtt", "off", "--draft", otherWeights, "--draft-min-p", "0", "--json"]);
    expect(result.code, result.stderr).toBe(0);
    const report = JSON.parse(result.stdout) as { speculation: Record<string, any>; inProcess: { completionTokens: number } };
    expect(report.speculation.refuted).toBeGreaterThan(0);
    expect(report.inProcess.completionTokens).toBeGreaterThan(0);
    // 8 asked for; at most the last check's kept proposals (--draft-max 2) past the limit count too.
    expect(report.inProcess.completionTokens).toBeLessThanOrEqual(8 + 2);
  });

  it("probe shows the speculation decision and its reason; auto is off on this 2-core host", async () => {
    const auto = await runAgent(["probe", "--model", tiny, "--json"]);
    expect(auto.code, auto.stderr).toBe(0);
    const plan = (JSON.parse(auto.stdout) as { plan: { speculation: { value: { kind: string }; reason: string } } }).plan;
    expect(plan.speculation.reason.length).toBeGreaterThan(10);
    const cores = (JSON.parse(auto.stdout) as { facts: { physicalCores: number } }).facts.physicalCores;
    if (cores < 4) expect(plan.speculation.value.kind).toBe("off");
    const lookup = await runAgent(["probe", "--model", tiny, "--lookup", "on", "--json"]);
    expect((JSON.parse(lookup.stdout) as { plan: typeof plan }).plan.speculation.value.kind).toBe("lookup");
  });

  it("a draft of another vocabulary is refused at load with IA_ERR_MODEL_LOAD naming --draft", async () => {
    const result = await bench(["--mqtt", "off", "--draft", otherVocabulary], 120_000);
    expect(result.code).not.toBe(0);
    expect(result.signal).toBeNull();
    expect(result.stderr).toContain("IA_ERR_MODEL_LOAD");
    expect(result.stderr).toContain(`--draft ${otherVocabulary}`);
    expect(result.stderr).toMatch(/vocabulary differs/);
  });
});
