import path from "node:path";
import { AnswerService } from "../../service/answerService.js";
import type { AgentConfig } from "../../config/config.js";
import { AgentError } from "../../../common/errors.js";
import type { Logger } from "../../../common/logger.js";
import type { EngineRuntime } from "../../engine/modelRuntime.js";
import { prepareModel, runtimeOptions } from "../../service/loadAgent.js";
import { peakRssBytes } from "../../host/processStats.js";
import { RequestQueue } from "../../service/requestQueue.js";
import type { BenchMqtt } from "./benchMqtt.js";
import { checkReferenceBinary, runBatchedReference, runReference } from "./benchReference.js";
import type { ReferenceSample } from "./benchReference.js";
import { concurrentThroughput, median, medians, ratio, round, sampleFrom } from "./benchStats.js";
import type { Sample, SampleMedians } from "./benchStats.js";

/**
 * `bench` (DESIGN.md section 9): on one model file and thread count, interleaved rounds of
 * llama.cpp's own llama-bench (optional), the plain node-llama-cpp loop, the agent in
 * process, the agent over MQTT as a requesting client sees it, and 1..n concurrent
 * requesters; medians and ratios, as a table or JSON. Timing goals live here, not in tests.
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
}

export interface ConcurrencyFigure {
  requesters: number;
  /** Generated tokens per second while every requester is generating (benchStats.concurrentThroughput). */
  aggregateTokensPerSecond: number;
  /** All generated tokens over the wall time from the first request to the last answer, prompts included. */
  endToEndTokensPerSecond: number;
  /** llama-batched-bench's generation tokens/s with as many sequences, when run. */
  llamaBatchedBench: number | null;
  vsLlamaBatchedBench: number | null;
  /** Median of each requester's own generation speed. */
  perRequesterTokensPerSecond: number;
  ttftMs: number;
  vsSingle: number | null;
}

export interface BenchReport {
  machine: {
    cpu: string;
    physicalCores: number;
    logicalCores: number;
    memoryGiB: number;
    os: string;
    node: string;
    backend: string;
    engine: "process" | "inline";
    uvThreadpoolSize: string | null;
  };
  model: { path: string; label: string; fileBytes: number; fileType: string };
  threads: number;
  threadsReason: string;
  parallelSequences: number;
  runs: number;
  promptTokens: number;
  genTokens: number;
  loadMs: number;
  /** Process start (Node's time origin) to model loaded. */
  startToLoadedMs: number;
  /** Peak resident sets of the agent and its engine process added (both run llama.cpp's share of RAM). */
  peakRssMiB: number;
  peakRssByProcessMiB: { agent: number; engine: number | null };
  llamaBench: { promptTokensPerSecond: number; tokensPerSecond: number } | null;
  raw: SampleMedians;
  inProcess: SampleMedians;
  mqtt: (SampleMedians & { broker: string }) | null;
  concurrency: ConcurrencyFigure[];
  ratios: {
    rawVsLlamaBench: { prompt: number | null; generation: number | null };
    inProcessVsLlamaBench: { prompt: number | null; generation: number | null };
    mqttVsLlamaBench: { prompt: number | null; generation: number | null };
    mqttVsInProcess: { prompt: number | null; generation: number | null };
    /**
     * What MQTT adds to the time to first token over the in-process path, ms: the median of
     * the MQTT requests' path time (requester's TTFT minus the engine's TTFT for the same
     * request) minus the in-process median. Pairing each request with its own engine figure
     * keeps the prompt-evaluation noise (tens of ms between requests) out of it.
     */
    mqttTtftOverheadMs: number | null;
    /** Median MQTT TTFT minus median in-process TTFT, ms: the same question without the pairing. */
    mqttTtftMedianDifferenceMs: number | null;
    /** Aggregate generation with the most requesters over one requester. */
    concurrencySpeedup: number | null;
  };
}

const WORDS = "measure the signal level at the center frequency with a narrow resolution bandwidth and report the marker".split(" ");

/** A user text that, with the chat template and a short system prompt, comes to about `tokens` tokens. */
async function promptText(runtime: EngineRuntime, tokens: number): Promise<string> {
  const words: string[] = [];
  for (let i = 0; (await runtime.countTokens(words.join(" "))) < tokens && i < tokens * 4; i++) words.push(WORDS[i % WORDS.length]!);
  return words.join(" ");
}

interface Round {
  reference?: ReferenceSample;
  raw?: Sample;
  inProcess?: Sample;
  mqtt?: Sample;
  concurrency: Map<number, { aggregate: number; endToEnd: number; perRequester: number; ttftMs: number }>;
  batchedReference?: Map<number, number>;
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
  const prepared = await prepareModel(config, logger);
  const { plan, model, summary, facts } = prepared;
  const threads = plan.threads.value;
  const parallel = Math.max(1, ...options.concurrency);
  const { startEngine } = await import("../../engine/process/engineProcess.js");
  onStep?.(`loading ${model.label} with ${threads} threads and ${parallel} sequences`);
  const runtime = await startEngine(
    {
      ...runtimeOptions(config, model, plan, logger),
      contextSize: Math.max(1024, options.promptTokens + options.genTokens + 256),
      parallelSequences: parallel,
    },
    config.engine,
  );
  const startToLoadedMs = Math.round(performance.now());
  const service = new AnswerService(runtime, new RequestQueue({ slots: runtime.slots }), { system: "", params: {} });
  let mqtt: BenchMqtt | undefined;
  try {
    if (config.mqtt !== "off") {
      const { BenchMqtt } = await import("./benchMqtt.js");
      mqtt = await BenchMqtt.start({
        mqtt: config.mqtt,
        prefix: config.mqttPrefix,
        protocolVersion: config.mqttVersion === "3.1.1" ? 4 : 5,
        username: config.mqttUsername,
        password: config.mqttPassword,
        service,
        info: runtime.info,
        logger,
      });
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

    const timedAnswer = async () => {
      let firstAt: number | undefined;
      const startedAt = performance.now();
      const result = await service.answer(
        {
          mode: "chat",
          system: system(),
          messages: [{ role: "user", content: text }],
          params: { temperature: 0, maxTokens: options.genTokens },
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
      if (mqtt) {
        const client = mqtt;
        steps.push(["MQTT", async () => void (round.mqtt = await client.ask({ ...ask, system: system() }))]);
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
    const engineStats = await runtime.stats();
    const enginePeak = runtime.info.engine === "process" ? engineStats.peakRssBytes : null;
    return report({
      rounds,
      options,
      runtime,
      threads,
      threadsReason: plan.threads.reason,
      parallel,
      startToLoadedMs,
      mqtt,
      enginePeakRssBytes: enginePeak,
      prepared: { model, summary, facts },
    });
  } finally {
    await mqtt?.close();
    await runtime.dispose();
  }
}

interface ReportInput {
  rounds: Round[];
  options: BenchOptions;
  runtime: EngineRuntime;
  enginePeakRssBytes: number | null;
  threads: number;
  threadsReason: string;
  parallel: number;
  startToLoadedMs: number;
  mqtt: BenchMqtt | undefined;
  prepared: Pick<Awaited<ReturnType<typeof prepareModel>>, "model" | "summary" | "facts">;
}

function report(input: ReportInput): BenchReport {
  const { rounds, options, runtime, prepared } = input;
  const defined = <T>(values: Array<T | undefined>): T[] => values.filter((v): v is T => v !== undefined);
  const references = defined(rounds.map((r) => r.reference));
  const llamaBench = references.length
    ? {
        promptTokensPerSecond: median(references.map((r) => r.promptTokensPerSecond)),
        tokensPerSecond: median(references.map((r) => r.tokensPerSecond)),
      }
    : null;
  const raw = medians(defined(rounds.map((r) => r.raw)));
  const inProcess = medians(defined(rounds.map((r) => r.inProcess)));
  const mqttSamples = defined(rounds.map((r) => r.mqtt));
  const mqtt = input.mqtt && mqttSamples.length ? { ...medians(mqttSamples), broker: input.mqtt.url } : null;
  const single = median(rounds.map((r) => r.concurrency.get(1)?.aggregate ?? Number.NaN));
  const concurrency = options.concurrency.map((requesters) => {
    const figures = defined(rounds.map((r) => r.concurrency.get(requesters)));
    const aggregate = median(figures.map((f) => f.aggregate));
    const batched = defined(rounds.map((r) => r.batchedReference?.get(requesters)));
    const reference = batched.length ? median(batched) : null;
    return {
      requesters,
      aggregateTokensPerSecond: aggregate,
      endToEndTokensPerSecond: median(figures.map((f) => f.endToEnd)),
      llamaBatchedBench: reference,
      vsLlamaBatchedBench: ratio(aggregate, reference),
      perRequesterTokensPerSecond: median(figures.map((f) => f.perRequester)),
      ttftMs: median(figures.map((f) => f.ttftMs)),
      vsSingle: options.concurrency.includes(1) ? ratio(aggregate, single) : null,
    };
  });
  const most = concurrency.reduce<ConcurrencyFigure | undefined>(
    (best, c) => (best && best.requesters >= c.requesters ? best : c),
    undefined,
  );
  type Speeds = { promptTokensPerSecond: number; tokensPerSecond: number };
  const versus = (a: Speeds | null, b: Speeds | null) => ({
    prompt: ratio(a?.promptTokensPerSecond, b?.promptTokensPerSecond),
    generation: ratio(a?.tokensPerSecond, b?.tokensPerSecond),
  });
  // Against llama-bench, the median of each round's own ratio: the machine's speed drifts
  // between rounds (here by 10-20% within minutes), and a ratio taken within one round
  // cancels that drift where a ratio of medians does not.
  const perRound = (pick: (round: Round) => Speeds | undefined) => {
    const pairs = rounds.filter((r) => r.reference && pick(r));
    if (pairs.length === 0) return { prompt: null, generation: null };
    const of = (key: keyof Speeds) =>
      median(
        pairs.map((r) => ratio(pick(r)![key], r.reference![key]) ?? Number.NaN),
        3,
      );
    return { prompt: of("promptTokensPerSecond"), generation: of("tokensPerSecond") };
  };
  const facts = prepared.facts;
  const agentPeak = peakRssBytes();
  return {
    machine: {
      cpu: facts.cpuModel,
      physicalCores: facts.physicalCores,
      logicalCores: facts.logicalCores,
      memoryGiB: round(facts.totalMemBytes / 2 ** 30, 1),
      os: [facts.distro ?? facts.platform, facts.osRelease].join(" "),
      node: process.version,
      backend: runtime.info.backend,
      engine: runtime.info.engine,
      // The engine process always runs with one pool thread (engineProcess.ts); inline, the agent's own setting applies.
      uvThreadpoolSize: runtime.info.engine === "process" ? "1" : (process.env.UV_THREADPOOL_SIZE ?? null),
    },
    model: {
      path: prepared.model.path,
      label: prepared.model.label,
      fileBytes: prepared.summary.fileBytes,
      fileType: String(prepared.summary.fileType),
    },
    threads: input.threads,
    threadsReason: input.threadsReason,
    parallelSequences: input.parallel,
    runs: rounds.length,
    promptTokens: options.promptTokens,
    genTokens: options.genTokens,
    loadMs: runtime.info.loadMs,
    startToLoadedMs: input.startToLoadedMs,
    peakRssMiB: round((agentPeak + (input.enginePeakRssBytes ?? 0)) / 2 ** 20, 1),
    peakRssByProcessMiB: {
      agent: round(agentPeak / 2 ** 20, 1),
      engine: input.enginePeakRssBytes === null ? null : round(input.enginePeakRssBytes / 2 ** 20, 1),
    },
    llamaBench,
    raw,
    inProcess,
    mqtt,
    concurrency,
    ratios: {
      rawVsLlamaBench: perRound((r) => r.raw),
      inProcessVsLlamaBench: perRound((r) => r.inProcess),
      mqttVsLlamaBench: perRound((r) => r.mqtt),
      mqttVsInProcess: versus(mqtt, inProcess),
      mqttTtftOverheadMs: mqtt && mqtt.pathMs !== null && inProcess.pathMs !== null ? round(mqtt.pathMs - inProcess.pathMs) : null,
      mqttTtftMedianDifferenceMs: mqtt ? round(mqtt.ttftMs - inProcess.ttftMs) : null,
      concurrencySpeedup: most && most.requesters > 1 ? most.vsSingle : null,
    },
  };
}

const fmt = (value: number | null | undefined, digits = 1): string => (value === null || value === undefined ? "-" : value.toFixed(digits));

export function renderBench(r: BenchReport): string {
  const m = r.machine;
  const lines = [
    `bench: ${r.model.label} (${path.basename(r.model.path)}, ${r.model.fileType}, ${(r.model.fileBytes / 1e6).toFixed(0)} MB), ${r.threads} threads, ` +
      `prompt ${r.promptTokens} tokens, ${r.genTokens} generated, medians of ${r.runs} interleaved rounds`,
    `machine: ${m.cpu}, ${m.physicalCores} cores / ${m.logicalCores} logical, ${m.memoryGiB} GiB, ${m.os}, node ${m.node}, ${m.backend}` +
      `, engine ${m.engine}${m.uvThreadpoolSize ? ` (UV_THREADPOOL_SIZE=${m.uvThreadpoolSize})` : ""}`,
    `threads: ${r.threadsReason}`,
    "",
    `${"path".padEnd(30)}${"prompt tok/s".padStart(13)}${"gen tok/s".padStart(11)}${"TTFT ms".padStart(9)}   vs llama-bench (prompt / gen)`,
  ];
  const row = (
    name: string,
    f: { promptTokensPerSecond: number; tokensPerSecond: number; ttftMs?: number } | null,
    vs: { prompt: number | null; generation: number | null } | null,
  ) => {
    if (!f) return `${name.padEnd(30)}${"(not run)".padStart(13)}`;
    return `${name.padEnd(30)}${fmt(f.promptTokensPerSecond).padStart(13)}${fmt(f.tokensPerSecond).padStart(11)}${fmt(f.ttftMs).padStart(9)}   ${vs ? `${fmt(vs.prompt, 3)} / ${fmt(vs.generation, 3)}` : ""}`;
  };
  lines.push(row("llama-bench (llama.cpp)", r.llamaBench, r.llamaBench ? { prompt: 1, generation: 1 } : null));
  lines.push(row("node-llama-cpp loop", r.raw, r.ratios.rawVsLlamaBench));
  lines.push(row("agent, in process", r.inProcess, r.ratios.inProcessVsLlamaBench));
  lines.push(row("agent, MQTT (client's view)", r.mqtt, r.ratios.mqttVsLlamaBench));
  if (r.mqtt)
    lines.push(
      `MQTT vs in process: prompt ${fmt(r.ratios.mqttVsInProcess.prompt, 3)}, gen ${fmt(r.ratios.mqttVsInProcess.generation, 3)}, TTFT +${fmt(r.ratios.mqttTtftOverheadMs, 2)} ms paired with the engine's own TTFT (medians differ by ${fmt(r.ratios.mqttTtftMedianDifferenceMs)} ms; ${r.mqtt.broker})`,
    );
  lines.push(
    "",
    `${"requesters".padEnd(12)}${"aggregate gen tok/s".padStart(21)}${"end to end".padStart(12)}${"each tok/s".padStart(12)}${"TTFT ms".padStart(9)}${"vs 1".padStart(8)}${"batched-bench".padStart(15)}${"vs it".padStart(8)}`,
  );
  for (const c of r.concurrency) {
    lines.push(
      `${String(c.requesters).padEnd(12)}${fmt(c.aggregateTokensPerSecond).padStart(21)}${fmt(c.endToEndTokensPerSecond).padStart(12)}${fmt(c.perRequesterTokensPerSecond).padStart(12)}` +
        `${fmt(c.ttftMs).padStart(9)}${fmt(c.vsSingle, 2).padStart(8)}${fmt(c.llamaBatchedBench).padStart(15)}${fmt(c.vsLlamaBatchedBench, 2).padStart(8)}`,
    );
  }
  lines.push(
    "",
    `load ${r.loadMs} ms (process start to loaded ${r.startToLoadedMs} ms), peak RSS ${fmt(r.peakRssMiB)} MiB (agent ${fmt(r.peakRssByProcessMiB.agent)}, engine ${fmt(r.peakRssByProcessMiB.engine)}), ${r.parallelSequences} sequences`,
  );
  return `${lines.join("\n")}\n`;
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
