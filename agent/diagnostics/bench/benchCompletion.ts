import { AgentError } from "../../../common/errors.js";
import { round } from "../../../common/format.js";
import { FLASH_ATTENTION } from "../../engine/llamaRuntimeOptions.js";
import { runTool } from "./benchReference.js";
import { median, ratio } from "./benchStats.js";
import type { Sample } from "./benchStats.js";

/**
 * `bench --llama-completion <file>`: llama.cpp's `llama-completion` (the old `main`, built
 * from node-llama-cpp's shipped source against the same prebuilt libraries, README "Speed")
 * answering the same text as the agent, one right after the other, order alternating, for a
 * greedy and a sampled setting. Unlike llama-bench it samples every token as the agent does,
 * so it is the fair anchor. Its own counters give the figures: generation is its eval runs
 * over total minus prompt-eval time (decodes, sampling and what lies between them, as the
 * agent's tokens/s counts them); decode-only is its eval time alone.
 */

export interface CompletionSampling {
  name: "greedy" | "sampled";
  temperature: number;
  topK?: number;
  topP?: number;
  seed?: number;
}

/** The two settings compared. Repeat penalty off and min-p 0 on both sides: node-llama-cpp applies neither unless asked. */
export const COMPLETION_SAMPLINGS: readonly CompletionSampling[] = [
  { name: "greedy", temperature: 0 },
  { name: "sampled", temperature: 0.8, topK: 40, topP: 0.95, seed: 42 },
];

export interface CompletionPerf {
  promptTokensPerSecond: number;
  /** Eval runs over (total − prompt eval) time: decode, sampling and the gaps between, like the agent's figure. */
  tokensPerSecond: number;
  /** Eval runs over eval time: llama_decode alone. */
  decodeTokensPerSecond: number;
  /** Generated tokens (eval runs + the first, sampled after the prompt). */
  generated: number;
  samplingMs: number;
}

const PERF = {
  sampling: /sampling time =\s*([\d.]+) ms/,
  prompt: /prompt eval time =\s*([\d.]+) ms \/\s*(\d+) tokens/,
  eval: /\beval time =\s*([\d.]+) ms \/\s*(\d+) runs/,
  total: /total time =\s*([\d.]+) ms/,
};

/** Reads llama-completion's `common_perf_print` lines (stderr); IA_ERR_BENCH_REFERENCE with the text when they are missing. */
export function parseCompletionPerf(stderr: string): CompletionPerf {
  const lines = stderr.split("\n").filter((line) => line.includes("perf_print"));
  const find = (pattern: RegExp) => {
    for (const line of lines) {
      // "prompt eval time" also matches the eval pattern; the eval line has "runs".
      const match = pattern.exec(line);
      if (match) return match;
    }
    return undefined;
  };
  const sampling = find(PERF.sampling);
  const prompt = find(PERF.prompt);
  const evaluation = find(PERF.eval);
  const total = find(PERF.total);
  if (!sampling || !prompt || !evaluation || !total) {
    throw new AgentError(
      "IA_ERR_BENCH_REFERENCE",
      `llama-completion printed no complete timings (sampling, prompt eval, eval, total time): ${lines.join(" | ").slice(0, 300) || stderr.slice(-300)}`,
    );
  }
  const [promptMs, promptTokens] = [Number(prompt[1]), Number(prompt[2])];
  const [evalMs, runs] = [Number(evaluation[1]), Number(evaluation[2])];
  const totalMs = Number(total[1]);
  return {
    promptTokensPerSecond: promptMs > 0 ? round((promptTokens * 1000) / promptMs) : 0,
    tokensPerSecond: totalMs - promptMs > 0 ? round((runs * 1000) / (totalMs - promptMs)) : 0,
    decodeTokensPerSecond: evalMs > 0 ? round((runs * 1000) / evalMs) : 0,
    generated: runs + 1,
    samplingMs: Number(sampling[1]),
  };
}

export interface CompletionRunOptions {
  binary: string;
  modelPath: string;
  threads: number;
  prompt: string;
  genTokens: number;
  contextSize: number;
  sampling: CompletionSampling;
}

/** The arguments: no chat mode, the same threads and flash attention, exactly `genTokens` generated. */
export function completionArgs(options: CompletionRunOptions): string[] {
  const s = options.sampling;
  return [
    ...["-m", options.modelPath, "-p", options.prompt, "-n", String(options.genTokens), "-c", String(options.contextSize)],
    ...["-t", String(options.threads), "-fa", FLASH_ATTENTION, "-no-cnv", "--ignore-eos", "--no-display-prompt", "--simple-io"],
    ...["--temp", String(s.temperature), "--repeat-penalty", "1", "--min-p", "0"],
    ...(s.topK === undefined ? [] : ["--top-k", String(s.topK)]),
    ...(s.topP === undefined ? [] : ["--top-p", String(s.topP)]),
    ...["--seed", String(s.seed ?? 1)],
  ];
}

export async function runCompletion(options: CompletionRunOptions): Promise<CompletionPerf> {
  const { stderr } = await runTool("llama-completion", options.binary, completionArgs(options));
  return parseCompletionPerf(stderr);
}

export interface CompletionFigures {
  sampling: CompletionSampling;
  pairs: number;
  /** How the agent was asked: "MQTT (client's view)" or "in process". */
  agentPath: string;
  agentTokensPerSecond: number;
  completionTokensPerSecond: number;
  completionDecodeTokensPerSecond: number;
  /** Agent over llama-completion's generation: the median of each pair's own ratio. */
  ratio: number | null;
  /** Agent over llama-completion's decode-only figure, per pair: what the gaps between decodes cost both. */
  ratioToDecode: number | null;
}

/** The agent's side of a pair: the question asked with these sampling settings. */
export type AgentAsk = (sampling: CompletionSampling) => Promise<Sample>;

/** `pairs` pairs for each sampling setting, agent and llama-completion alternating which goes first. */
export async function completionPairs(
  run: Omit<CompletionRunOptions, "sampling">,
  ask: AgentAsk,
  agentPath: string,
  pairs: number,
  onStep?: (text: string) => void,
): Promise<CompletionFigures[]> {
  const figures: CompletionFigures[] = [];
  for (const sampling of COMPLETION_SAMPLINGS) {
    const results: Array<{ agent: Sample; main: CompletionPerf }> = [];
    for (let p = 0; p < pairs; p++) {
      onStep?.(`llama-completion pairs, ${sampling.name}: ${p + 1}/${pairs}`);
      let agent: Sample | undefined;
      let main: CompletionPerf | undefined;
      const steps = [async () => void (agent = await ask(sampling)), async () => void (main = await runCompletion({ ...run, sampling }))];
      if (p % 2 === 1) steps.reverse();
      for (const step of steps) await step();
      results.push({ agent: agent!, main: main! });
    }
    figures.push({
      sampling,
      pairs: results.length,
      agentPath,
      agentTokensPerSecond: median(results.map((r) => r.agent.tokensPerSecond)),
      completionTokensPerSecond: median(results.map((r) => r.main.tokensPerSecond)),
      completionDecodeTokensPerSecond: median(results.map((r) => r.main.decodeTokensPerSecond)),
      ratio: median(
        results.map((r) => ratio(r.agent.tokensPerSecond, r.main.tokensPerSecond) ?? Number.NaN),
        3,
      ),
      ratioToDecode: median(
        results.map((r) => ratio(r.agent.tokensPerSecond, r.main.decodeTokensPerSecond) ?? Number.NaN),
        3,
      ),
    });
  }
  return figures;
}
