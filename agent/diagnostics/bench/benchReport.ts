import path from "node:path";
import type { ConversationFigures } from "./benchConversation.js";
import { round } from "../../../common/format.js";
import type { EngineRuntime } from "../../engine/modelRuntime.js";
import { peakRssBytes } from "../../host/processStats.js";
import type { JournalStats } from "../../service/journal/requestJournal.js";
import type { prepareModel } from "../../service/loadAgent.js";
import type { BenchMqtt } from "./benchMqtt.js";
import type { ReferenceSample } from "./benchReference.js";
import type { CompletionFigures } from "./benchCompletion.js";
import type { SpeculationFigures } from "./benchSpeculation.js";
import { median, medians, ratio } from "./benchStats.js";
import type { Sample, SampleMedians } from "./benchStats.js";

/** `bench`'s report: the medians and ratios of its rounds (JSON), and the table a person reads. */

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
  /** The same MQTT path with the crash-safe request journal (`run`'s), in a temp folder; its counters at the end. */
  mqttJournal: (SampleMedians & { broker: string; journal: JournalStats | null }) | null;
  concurrency: ConcurrencyFigure[];
  /** With `--llama-completion`: the agent against llama.cpp's `main`, greedy and sampled, in pairs (benchCompletion.ts). */
  llamaCompletion: CompletionFigures[] | null;
  /** With `--draft` or `--lookup` in use: the same greedy questions with and without it, in pairs (benchSpeculation.ts). */
  speculation: SpeculationFigures | null;
  /** With `--instrument`: first-question and follow-up TTFT of a grounded conversation (benchConversation.ts). */
  conversation: ConversationFigures | null;
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
    mqttJournalVsLlamaBench: { prompt: number | null; generation: number | null };
    /** MQTT generation tokens/s with the journal over without: the median of each round's own ratio. */
    journalGenerationRatio: number | null;
    /**
     * What the journal adds to the time to first token, ms: the median over rounds of the
     * journaled request's path time minus the plain MQTT request's (each request's TTFT paired
     * with the engine's own TTFT, as for mqttTtftOverheadMs; the journal's fdatasync of the
     * question comes before the engine starts, so it is in the path time).
     */
    journalTtftOverheadMs: number | null;
    /** The median over rounds of the journaled request's TTFT minus the plain one's, ms: the same without the pairing. */
    journalTtftDifferenceMs: number | null;
    /** Aggregate generation with the most requesters over one requester. */
    concurrencySpeedup: number | null;
  };
}

/** What one interleaved round measured, path by path. */
export interface Round {
  reference?: ReferenceSample;
  raw?: Sample;
  inProcess?: Sample;
  mqtt?: Sample;
  mqttJournal?: Sample;
  concurrency: Map<number, { aggregate: number; endToEnd: number; perRequester: number; ttftMs: number }>;
  batchedReference?: Map<number, number>;
}

export interface ReportInput {
  rounds: Round[];
  /** The options of the run (bench.ts `BenchOptions`) that the report repeats. */
  options: { concurrency: number[]; promptTokens: number; genTokens: number };
  runtime: EngineRuntime;
  enginePeakRssBytes: number | null;
  threads: number;
  threadsReason: string;
  parallel: number;
  startToLoadedMs: number;
  mqtt: BenchMqtt | undefined;
  mqttJournal: BenchMqtt | undefined;
  prepared: Pick<Awaited<ReturnType<typeof prepareModel>>, "model" | "summary" | "facts">;
}

export function benchReport(input: ReportInput): BenchReport {
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
  const journalSamples = defined(rounds.map((r) => r.mqttJournal));
  const mqttJournal =
    input.mqttJournal && journalSamples.length
      ? { ...medians(journalSamples), broker: input.mqttJournal.url, journal: input.mqttJournal.journalStats }
      : null;
  // Per round, like the ratios to llama-bench: the two requests of a round ran one after the other.
  const pairs = rounds.flatMap((r) => (r.mqtt && r.mqttJournal ? [{ plain: r.mqtt, journaled: r.mqttJournal }] : []));
  const pathPairs = pairs.filter((p) => p.plain.pathMs !== null && p.journaled.pathMs !== null);
  const journalGenerationRatio = pairs.length
    ? median(
        pairs.map((p) => ratio(p.journaled.tokensPerSecond, p.plain.tokensPerSecond) ?? Number.NaN),
        3,
      )
    : null;
  const journalTtftOverheadMs = pathPairs.length ? median(pathPairs.map((p) => p.journaled.pathMs! - p.plain.pathMs!)) : null;
  const journalTtftDifferenceMs = pairs.length ? median(pairs.map((p) => p.journaled.ttftMs - p.plain.ttftMs)) : null;
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
    conversation: null,
    speculation: null,
    llamaCompletion: null,
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
    mqttJournal,
    concurrency,
    ratios: {
      rawVsLlamaBench: perRound((r) => r.raw),
      inProcessVsLlamaBench: perRound((r) => r.inProcess),
      mqttVsLlamaBench: perRound((r) => r.mqtt),
      mqttVsInProcess: versus(mqtt, inProcess),
      mqttTtftOverheadMs: mqtt && mqtt.pathMs !== null && inProcess.pathMs !== null ? round(mqtt.pathMs - inProcess.pathMs) : null,
      mqttTtftMedianDifferenceMs: mqtt ? round(mqtt.ttftMs - inProcess.ttftMs) : null,
      mqttJournalVsLlamaBench: perRound((r) => r.mqttJournal),
      journalGenerationRatio,
      journalTtftOverheadMs,
      journalTtftDifferenceMs,
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
  lines.push(row("agent, MQTT + request journal", r.mqttJournal, r.ratios.mqttJournalVsLlamaBench));
  if (r.mqtt)
    lines.push(
      `MQTT vs in process: prompt ${fmt(r.ratios.mqttVsInProcess.prompt, 3)}, gen ${fmt(r.ratios.mqttVsInProcess.generation, 3)}, TTFT +${fmt(r.ratios.mqttTtftOverheadMs, 2)} ms paired with the engine's own TTFT (medians differ by ${fmt(r.ratios.mqttTtftMedianDifferenceMs)} ms; ${r.mqtt.broker})`,
    );
  if (r.mqttJournal) {
    const j = r.mqttJournal.journal;
    lines.push(
      `request journal vs none over MQTT: gen ${fmt(r.ratios.journalGenerationRatio, 3)}, TTFT +${fmt(r.ratios.journalTtftOverheadMs, 2)} ms paired (TTFTs differ by ${fmt(r.ratios.journalTtftDifferenceMs)} ms); ` +
        `medians of per-round pairs; ${j ? `${j.records} records, ${j.syncs} fdatasyncs` : "journal not opened"}`,
    );
  }
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
  if (r.llamaCompletion) {
    lines.push(
      "",
      `${"vs llama-completion (main)".padEnd(30)}${"agent tok/s".padStart(12)}${"main tok/s".padStart(12)}${"agent/main".padStart(12)}${"main decode-only".padStart(18)}${"agent/it".padStart(10)}`,
    );
    for (const c of r.llamaCompletion) {
      lines.push(
        `${`${c.sampling.name}, ${c.pairs} pairs, agent ${c.agentPath}`.padEnd(42)}${fmt(c.agentTokensPerSecond).padStart(12)}${fmt(c.completionTokensPerSecond).padStart(12)}` +
          `${fmt(c.ratio, 3).padStart(12)}${fmt(c.completionDecodeTokensPerSecond).padStart(18)}${fmt(c.ratioToDecode, 3).padStart(10)}`,
      );
    }
  }
  if (r.speculation) {
    const s = r.speculation;
    lines.push(
      "",
      `speculative decoding (${s.speculation}), greedy, ${s.pairs} pairs: ${fmt(s.withTokensPerSecond)} gen tok/s with, ${fmt(s.withoutTokensPerSecond)} without, ` +
        `ratio ${fmt(s.ratio, 3)} (median per pair); accepted ${s.acceptance === null ? "- (nothing proposed)" : `${fmt(s.acceptance * 100)}%`} ` +
        `(${s.validated} kept, ${s.refuted} rejected); same answer in ${s.sameAnswers}/${s.pairs} pairs`,
    );
  }
  if (r.conversation) {
    const c = r.conversation;
    lines.push(
      "",
      `conversation grounded in ${c.instrument} (reading in each new turn; system prompt evaluated at load):`,
      `  first question after load: TTFT ${fmt(c.first.ttftMs)} ms, ${c.first.promptTokens} prompt tokens evaluated for a ${c.first.turnTokens}-token turn`,
      `  follow-ups (median of ${c.turns.length - 1}, reading changed each turn): TTFT ${fmt(c.followUp.ttftMs)} ms, ${c.followUp.promptTokens} prompt tokens evaluated for a ${c.followUp.turnTokens}-token turn`,
    );
  }
  lines.push(
    "",
    `load ${r.loadMs} ms (process start to loaded ${r.startToLoadedMs} ms), peak RSS ${fmt(r.peakRssMiB)} MiB (agent ${fmt(r.peakRssByProcessMiB.agent)}, engine ${fmt(r.peakRssByProcessMiB.engine)}), ${r.parallelSequences} sequences`,
  );
  return `${lines.join("\n")}\n`;
}
