import { AnswerService } from "../../service/answerService.js";
import type { AgentConfig } from "../../config/config.js";
import { AgentError } from "../../../common/errors.js";
import type { Logger } from "../../../common/logger.js";
import type { EngineRuntime } from "../../engine/modelRuntime.js";
import { prepareModel, runtimeOptions } from "../../service/loadAgent.js";
import { RequestQueue } from "../../service/requestQueue.js";
import type { BenchMqtt } from "./benchMqtt.js";
import { checkReferenceBinary, runBatchedReference, runReference } from "./benchReference.js";
import { benchReport } from "./benchReport.js";
import type { BenchReport, Round } from "./benchReport.js";
import type { CompletionFigures, CompletionSampling } from "./benchCompletion.js";
import { SpeculationComparison } from "./benchSpeculation.js";
import { concurrentThroughput, median, sampleFrom } from "./benchStats.js";
import type { Sample } from "./benchStats.js";

export { renderBench } from "./benchReport.js";
export type { BenchReport, ConcurrencyFigure } from "./benchReport.js";

/**
 * `bench` (README, "Speed"): on one model file and thread count, interleaved rounds of
 * llama.cpp's own llama-bench (optional), the plain node-llama-cpp loop, the agent in
 * process, the agent over MQTT as a requesting client sees it (without and with the request
 * journal), and 1..n concurrent requesters; medians and ratios, as a table or JSON. Timing
 * goals live here, not in tests.
 */

export interface BenchOptions {
  /** Interleaved rounds; every figure is the median over them. */
  runs: number;
  /** Prompt length in tokens (the chat template and system prompt included). */
  promptTokens: number;
  /** Tokens generated per request. */
  genTokens: number;
  /** Concurrent requester counts to measure, e.g. [1, 2, 4]. */
  concurrency: number[];
  /** llama.cpp's `llama-bench` binary for the reference; undefined leaves it out. */
  llamaBench?: string | undefined;
  /** llama.cpp's `llama-batched-bench` binary, the reference for concurrent requesters; undefined leaves it out. */
  llamaBatchedBench?: string | undefined;
  /** llama.cpp's `llama-completion` (the old `main`): greedy and sampled pairs against the agent; undefined leaves it out. */
  llamaCompletion?: string | undefined;
  /** Pairs per sampling setting with `llamaCompletion`. */
  completionPairs?: number | undefined;
}

const WORDS = "measure the signal level at the center frequency with a narrow resolution bandwidth and report the marker".split(" ");

/** A user text that, with the chat template and a short system prompt, comes to about `tokens` tokens. */
async function promptText(runtime: EngineRuntime, tokens: number): Promise<string> {
  const words: string[] = [];
  for (let i = 0; (await runtime.countTokens(words.join(" "))) < tokens && i < tokens * 4; i++) words.push(WORDS[i % WORDS.length]!);
  return words.join(" ");
}

export interface BenchDeps {
  config: AgentConfig;
  logger: Logger;
  options: BenchOptions;
  /** Told each step as it starts, for a progress line. Defaults to none. */
  onStep?: ((text: string) => void) | undefined;
}

export async function runBench({ config, logger, options, onStep }: BenchDeps): Promise<BenchReport> {
  if (options.llamaBench !== undefined) checkReferenceBinary(options.llamaBench);
  if (options.llamaBatchedBench !== undefined) checkReferenceBinary(options.llamaBatchedBench, "--llama-batched-bench");
  if (options.llamaCompletion !== undefined) checkReferenceBinary(options.llamaCompletion, "--llama-completion");
  const prepared = await prepareModel(config, logger);
  const { plan, model, summary, facts, draft } = prepared;
  const threads = plan.threads.value;
  const parallel = Math.max(1, ...options.concurrency);
  const { startEngine } = await import("../../engine/process/engineProcess.js");
  onStep?.(`loading ${model.label} with ${threads} threads and ${parallel} sequences`);
  const engineOptions = {
    ...runtimeOptions(config, model, plan, logger, draft),
    contextSize: Math.max(1024, options.promptTokens + options.genTokens + 256),
    parallelSequences: parallel,
  };
  const runtime = await startEngine(engineOptions, config.engine);
  const startToLoadedMs = Math.round(performance.now());
  const service = new AnswerService(runtime, new RequestQueue({ slots: runtime.slots }), { system: "", params: {} });
  let mqtt: BenchMqtt | undefined;
  let mqttJournal: BenchMqtt | undefined;
  let speculation: SpeculationComparison | undefined;
  try {
    if (runtime.info.speculation !== "off") {
      onStep?.(`loading ${model.label} again without speculative decoding (${runtime.info.speculation}), for the pairs`);
      speculation = await SpeculationComparison.start(engineOptions, config.engine, runtime.info.speculation);
    }
    if (config.mqtt !== "off") {
      const { BenchMqtt } = await import("./benchMqtt.js");
      mqtt = await BenchMqtt.start({ config, service, info: runtime.info, logger });
      // The same path with the crash-safe request journal `run` keeps: what journaling costs.
      mqttJournal = await BenchMqtt.start({ config, service, info: runtime.info, logger, journal: true });
    }
    // The system prompt starts with a letter that changes with every request, then a serial
    // number of fixed width, so each prompt differs from the last one on its sequence right
    // after the chat template's first tokens (the KV cache cannot shorten the prompt being
    // timed) and every prompt has the same length. A plain serial number was not enough:
    // Qwen's tokenizer splits digits, so "14" and "15" shared a token, and "9" and "10"
    // differed in length.
    let serial = 0;
    const system = () => {
      serial += 1;
      return `${String.fromCharCode(65 + (serial % 26))}${String(serial).padStart(4, "0")}: answer briefly.`;
    };
    const probe = await service.answer({
      mode: "chat",
      system: system(),
      messages: [{ role: "user", content: "hi" }],
      params: { temperature: 0, maxTokens: 1 },
    });
    const overhead = Math.max(0, probe.usage.promptTokens - (await runtime.countTokens("hi")));
    const text = await promptText(runtime, Math.max(1, options.promptTokens - overhead));
    const ask = { maxTokens: options.genTokens, prompt: text };

    const timedAnswer = async (params: Record<string, number> = { temperature: 0 }) => {
      let firstAt: number | undefined;
      const startedAt = performance.now();
      const result = await service.answer(
        {
          mode: "chat",
          system: system(),
          messages: [{ role: "user", content: text }],
          params: { ...params, maxTokens: options.genTokens },
        },
        { onDelta: () => (firstAt ??= performance.now()) },
      );
      return { startedAt, firstAt, finishedAt: performance.now(), engineTtftMs: result.timings.ttftMs, ...result.usage };
    };
    const inProcess = async (): Promise<Sample> => sampleFrom(await timedAnswer());
    const concurrent = async (requesters: number) => {
      const timings = await Promise.all(Array.from({ length: requesters }, () => timedAnswer()));
      const samples = timings.map((t) => sampleFrom(t));
      const throughput = concurrentThroughput(timings);
      return {
        aggregate: throughput.generation,
        endToEnd: throughput.endToEnd,
        perRequester: median(samples.map((s) => s.tokensPerSecond)),
        ttftMs: median(samples.map((s) => s.ttftMs)),
      };
    };
    // The loop clears its sequence's cache, so it runs on the last slot: the timed questions,
    // which take the lowest free slot, then always find the same chat-template tokens cached
    // and evaluate prompts of the same length (after a clear, all of it: 5 tokens more here).
    const raw = () =>
      runtime.rawEvaluationBaseline(runtime.slots - 1, {
        text: `${text} ${text}`,
        promptTokens: options.promptTokens,
        maxTokens: options.genTokens,
      });

    onStep?.("warming up");
    await raw();
    await inProcess();
    if (mqtt) await mqtt.ask({ ...ask, system: system() });
    if (mqttJournal) await mqttJournal.ask({ ...ask, system: system() });

    const rounds: Round[] = [];
    for (let r = 0; r < options.runs; r++) {
      const round: Round = { concurrency: new Map() };
      const steps: Array<[string, () => Promise<void>]> = [];
      if (options.llamaBench !== undefined) {
        const binary = options.llamaBench;
        steps.push([
          "llama-bench",
          async () =>
            void (round.reference = await runReference({
              binary,
              modelPath: model.path,
              threads,
              promptTokens: options.promptTokens,
              genTokens: options.genTokens,
            })),
        ]);
      }
      if (options.llamaBatchedBench !== undefined) {
        const binary = options.llamaBatchedBench;
        const reference = {
          binary,
          modelPath: model.path,
          threads,
          promptTokens: options.promptTokens,
          genTokens: options.genTokens,
          parallel: options.concurrency,
        };
        steps.push(["llama-batched-bench", async () => void (round.batchedReference = await runBatchedReference(reference))]);
      }
      // The loop runs inside the engine: no path between requester and engine to time.
      steps.push(["node-llama-cpp loop", async () => void (round.raw = { ...(await raw()), pathMs: null })]);
      steps.push(["in process", async () => void (round.inProcess = await inProcess())]);
      if (mqtt && mqttJournal) {
        const [plain, journaled] = [mqtt, mqttJournal];
        // Without and with the journal one right after the other, which one first alternating
        // by round (A B, B A, ...): each round's pair sees the same moment of the machine.
        const pair: Array<() => Promise<void>> = [
          async () => void (round.mqtt = await plain.ask({ ...ask, system: system() })),
          async () => void (round.mqttJournal = await journaled.ask({ ...ask, system: system() })),
        ];
        if (r % 2 === 1) pair.reverse();
        steps.push([
          "MQTT without and with the journal",
          async () => {
            for (const one of pair) await one();
          },
        ]);
      }
      if (speculation) {
        const comparison = speculation;
        steps.push(["with and without speculative decoding", () => comparison.pair(r, service, system(), text, options.genTokens)]);
      }
      for (const requesters of options.concurrency) {
        steps.push([`${requesters} requesters`, async () => void round.concurrency.set(requesters, await concurrent(requesters))]);
      }
      // Rotating the order spreads slow moments of the machine over every path.
      for (let i = 0; i < steps.length; i++) {
        const [name, step] = steps[(i + r) % steps.length]!;
        onStep?.(`round ${r + 1}/${options.runs}: ${name}`);
        await step();
      }
      rounds.push(round);
    }
    let completion: CompletionFigures[] | null = null;
    if (options.llamaCompletion !== undefined) {
      const { completionPairs } = await import("./benchCompletion.js");
      const viaMqtt = mqtt;
      // Repeat penalty off as llama-completion runs it (--repeat-penalty 1).
      const askAgent = async (sampling: CompletionSampling): Promise<Sample> => {
        const params: Record<string, number> = { temperature: sampling.temperature, repeatPenalty: 1 };
        if (sampling.topK !== undefined) params.topK = sampling.topK;
        if (sampling.topP !== undefined) params.topP = sampling.topP;
        if (sampling.seed !== undefined) params.seed = sampling.seed;
        if (viaMqtt) return viaMqtt.ask({ ...ask, system: system(), params });
        return sampleFrom(await timedAnswer(params));
      };
      completion = await completionPairs(
        {
          binary: options.llamaCompletion,
          modelPath: model.path,
          threads,
          prompt: text,
          genTokens: options.genTokens,
          contextSize: engineOptions.contextSize,
        },
        askAgent,
        viaMqtt ? "MQTT (client's view)" : "in process",
        options.completionPairs ?? 9,
        onStep,
      );
    }
    const engineStats = await runtime.stats();
    const enginePeak = runtime.info.engine === "process" ? engineStats.peakRssBytes : null;
    const report = benchReport({
      rounds,
      options,
      runtime,
      threads,
      threadsReason: plan.threads.reason,
      parallel,
      startToLoadedMs,
      mqtt,
      mqttJournal,
      enginePeakRssBytes: enginePeak,
      prepared: { model, summary, facts },
    });
    report.speculation = speculation?.figures() ?? null;
    report.llamaCompletion = completion;
    await speculation?.close();
    await mqttJournal?.close();
    await mqtt?.close();
    await runtime.dispose();
    if (config.instrument.trim() !== "off") {
      onStep?.(`a 5-turn conversation grounded in ${config.instrument}`);
      const { benchConversation } = await import("./benchConversation.js");
      report.conversation = await benchConversation({ config, logger, model, plan, maxTokens: options.genTokens });
    }
    return report;
  } finally {
    await speculation?.close().catch(() => undefined);
    await mqttJournal?.close();
    await mqtt?.close();
    await runtime.dispose();
  }
}

/** `--bench-concurrency 1,2,4` as numbers; IA_ERR_USAGE naming the flag otherwise. */
export function parseConcurrency(value: unknown): number[] {
  const parts = String(value)
    .split(",")
    .map((p) => p.trim());
  const numbers = parts.map(Number);
  if (parts.length === 0 || numbers.some((n) => !Number.isInteger(n) || n < 1 || n > 16)) {
    throw new AgentError(
      "IA_ERR_USAGE",
      `--bench-concurrency: expected whole numbers from 1 to 16 separated by commas, e.g. 1,2,4; got ${JSON.stringify(value)}`,
    );
  }
  return [...new Set(numbers)];
}
