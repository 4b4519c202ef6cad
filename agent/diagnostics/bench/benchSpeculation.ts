import { round } from "../../../common/format.js";
import type { EngineRuntime } from "../../engine/modelRuntime.js";
import type { LlamaRuntimeOptions } from "../../engine/llamaRuntimeOptions.js";
import type { AgentConfig } from "../../config/config.js";
import { AnswerService } from "../../service/answerService.js";
import { RequestQueue } from "../../service/requestQueue.js";
import { median, ratio, sampleFrom } from "./benchStats.js";

/**
 * `bench` with speculative decoding on (`--draft`, `--lookup`): the same question answered
 * greedily with it and by a second engine without it, one right after the other and the
 * order alternating by round, so each pair sees the same moment of the machine. Greedy
 * answers must come out the same either way (the model keeps only tokens it would have
 * sampled itself); the figures say how much faster or slower they came, and how many of the
 * proposed tokens the model kept.
 */

export interface SpeculationFigures {
  /** What the engine used (RuntimeInfo.speculation). */
  speculation: string;
  pairs: number;
  withTokensPerSecond: number;
  withoutTokensPerSecond: number;
  /** With over without: the median of each pair's own ratio. */
  ratio: number | null;
  /** Proposed tokens the model kept, over all it checked (validated + refuted); null when none were proposed. */
  acceptance: number | null;
  validated: number;
  refuted: number;
  /** Pairs whose two greedy answers were the same text (should be all of them). */
  sameAnswers: number;
}

interface Pair {
  with: number;
  without: number;
  validated: number;
  refuted: number;
  same: boolean;
}

export class SpeculationComparison {
  readonly #pairs: Pair[] = [];

  private constructor(
    readonly speculation: string,
    readonly plain: EngineRuntime,
    readonly plainService: AnswerService,
  ) {}

  /** Starts the engine without speculation beside the one with it (one sequence: the pairs ask one question at a time). */
  static async start(options: LlamaRuntimeOptions, engine: AgentConfig["engine"], speculation: string): Promise<SpeculationComparison> {
    const { startEngine } = await import("../../engine/process/engineProcess.js");
    const plain = await startEngine({ ...options, speculation: undefined, parallelSequences: 1 }, engine);
    return new SpeculationComparison(
      speculation,
      plain,
      new AnswerService(plain, new RequestQueue({ slots: plain.slots }), { system: "", params: {} }),
    );
  }

  /** One pair: the question with speculation (`service`) and without, in an order that alternates with `round`. */
  async pair(round: number, service: AnswerService, system: string, question: string, maxTokens: number): Promise<void> {
    const ask = async (on: AnswerService) => {
      let firstAt: number | undefined;
      const startedAt = performance.now();
      const result = await on.answer(
        { mode: "chat", system, messages: [{ role: "user", content: question }], params: { temperature: 0, maxTokens } },
        { onDelta: () => (firstAt ??= performance.now()) },
      );
      return { sample: sampleFrom({ startedAt, firstAt, finishedAt: performance.now(), ...result.usage }), result };
    };
    const order = round % 2 === 0 ? [service, this.plainService] : [this.plainService, service];
    const answers = new Map<AnswerService, Awaited<ReturnType<typeof ask>>>();
    for (const on of order) answers.set(on, await ask(on));
    const withIt = answers.get(service)!;
    const without = answers.get(this.plainService)!;
    this.#pairs.push({
      with: withIt.sample.tokensPerSecond,
      without: without.sample.tokensPerSecond,
      validated: withIt.result.predictions?.validated ?? 0,
      refuted: withIt.result.predictions?.refuted ?? 0,
      same: withIt.result.text === without.result.text,
    });
  }

  figures(): SpeculationFigures {
    const pairs = this.#pairs;
    const validated = pairs.reduce((sum, p) => sum + p.validated, 0);
    const refuted = pairs.reduce((sum, p) => sum + p.refuted, 0);
    return {
      speculation: this.speculation,
      pairs: pairs.length,
      withTokensPerSecond: median(pairs.map((p) => p.with)),
      withoutTokensPerSecond: median(pairs.map((p) => p.without)),
      ratio: pairs.length
        ? median(
            pairs.map((p) => ratio(p.with, p.without) ?? Number.NaN),
            3,
          )
        : null,
      acceptance: validated + refuted > 0 ? round(validated / (validated + refuted), 3) : null,
      validated,
      refuted,
      sameAnswers: pairs.filter((p) => p.same).length,
    };
  }

  async close(): Promise<void> {
    await this.plain.dispose();
  }
}
