import type {
  ChatHistoryItem,
  ChatModelFunctions,
  ChatModelResponse,
  GbnfJsonSchema,
  Llama,
  LlamaContext,
  LlamaModel,
} from "node-llama-cpp";
import { AgentError } from "../../common/errors.js";
import { peakRssBytes } from "../host/processStats.js";
import { timings } from "./generationTimings.js";
import { loadLlamaParts } from "./llamaLoader.js";
import type { BatchingState, LlamaParts, Slot } from "./llamaLoader.js";
import type { LlamaRuntimeOptions } from "./llamaRuntimeOptions.js";
import type {
  ChatMessage,
  EngineRuntime,
  EngineStats,
  FinishReason,
  GenerateRequest,
  GenerateResult,
  RawEvaluationOptions,
  RawEvaluationResult,
  RuntimeInfo,
  ToolCall,
  ToolSpec,
} from "./modelRuntime.js";
import type { SpeculationParts } from "./speculation.js";
import type { ThreadAdapter } from "./threadAdapter.js";

export type { LlamaRuntimeOptions } from "./llamaRuntimeOptions.js";

/**
 * llama.cpp through node-llama-cpp, answering in this process (the engine process runs one of
 * these, engineWorker.ts). Only types are imported here; llamaLoader.ts imports the library
 * itself lazily, so `--help`, `probe` and config errors do not pay for loading the native addon.
 */

function toHistory(request: GenerateRequest): ChatHistoryItem[] {
  const messages: ChatMessage[] = request.messages ?? [];
  const history: ChatHistoryItem[] = [];
  const hasSystem = messages.some((m) => m.role === "system");
  if (!hasSystem && request.system) history.push({ type: "system", text: request.system });
  for (const message of messages) {
    if (message.role === "system") history.push({ type: "system", text: message.content });
    else if (message.role === "user") history.push({ type: "user", text: message.content });
    else history.push({ type: "model", response: [message.content] });
  }
  // The answer in progress: what the model wrote, each call it made and its result, as
  // node-llama-cpp's own chat session records them (LlamaChatSession's addFunctionCallToChatHistory).
  const response: ChatModelResponse["response"] = [];
  for (const exchange of request.toolExchanges ?? []) {
    if (exchange.textBefore) response.push(exchange.textBefore);
    response.push({ type: "functionCall", name: exchange.name, params: exchange.arguments, result: exchange.result, startsNewChunk: true });
  }
  history.push({ type: "model", response });
  return history;
}

/** The tools as node-llama-cpp's `functions` option: descriptions and parameter schemas, no handlers (the agent runs them). */
function functionsOf(tools: readonly ToolSpec[]): ChatModelFunctions {
  return Object.fromEntries(tools.map((tool) => [tool.name, { description: tool.description, params: tool.params as GbnfJsonSchema }]));
}

function finishReasonOf(stopReason: string, aborted: boolean): FinishReason {
  if (aborted || stopReason === "abort") return "cancelled";
  return stopReason === "maxTokens" ? "length" : "stop";
}

export class LlamaRuntime implements EngineRuntime {
  readonly info: RuntimeInfo;
  readonly slots: number;
  #llama: Llama;
  #model: LlamaModel;
  #context: LlamaContext;
  #slots: Slot[];
  #batching: BatchingState;
  #threads: ThreadAdapter | undefined;
  #speculation: SpeculationParts;
  #disposed = false;

  private constructor(parts: LlamaParts) {
    this.info = parts.info;
    this.slots = parts.slots.length;
    this.#llama = parts.llama;
    this.#model = parts.model;
    this.#context = parts.context;
    this.#slots = parts.slots;
    this.#batching = parts.batching;
    this.#threads = parts.threads;
    this.#speculation = parts.speculation;
  }

  get disposed(): boolean {
    return this.#disposed;
  }

  /** Loads the llama.cpp binaries, the model and one context with a sequence per slot (llamaLoader.ts). */
  static async load(options: LlamaRuntimeOptions): Promise<LlamaRuntime> {
    const runtime = new LlamaRuntime(await loadLlamaParts(options));
    if (options.warmUp) await runtime.#warmUp(options.warmUp.system, options.warmUp.tools ?? []);
    return runtime;
  }

  /**
   * Evaluates the static head of every chat prompt (the system prompt, and the tools' text the
   * chat wrapper adds to it) on each slot, with an empty question and one generated token. The
   * next request on the slot shares those tokens, and node-llama-cpp keeps the shared prefix
   * in the KV cache, so the first real question evaluates only its own turn.
   */
  async #warmUp(system: string, tools: readonly ToolSpec[]): Promise<void> {
    const history: ChatHistoryItem[] = [
      { type: "system", text: system },
      { type: "user", text: "" },
      { type: "model", response: [] },
    ];
    const options = {
      maxTokens: 1,
      temperature: 0,
      ...(tools.length > 0 ? { functions: functionsOf(tools), documentFunctionParams: true } : {}),
    };
    for (const slot of this.#slots) await slot.chat.generateResponse(history, options);
  }

  async countTokens(text: string): Promise<number> {
    return this.#tokenCount(text);
  }

  #tokenCount(text: string): number {
    return this.#model.tokenize(text).length;
  }

  async stats(): Promise<EngineStats> {
    const { orderedBatches, reorderedBatches, unorderedBatches } = this.#batching;
    return { peakRssBytes: peakRssBytes(), orderedBatches, reorderedBatches, unorderedBatches };
  }

  async generate(slotIndex: number, request: GenerateRequest): Promise<GenerateResult> {
    if (this.#disposed) throw new AgentError("IA_ERR_DISPOSED", "the model runtime is shutting down");
    const slot = this.#slots[slotIndex];
    if (!slot) throw new AgentError("IA_ERR_INTERNAL", `no sequence slot ${slotIndex} (have ${this.#slots.length})`);
    this.#refuseOversizedPrompt(request);

    const started = performance.now();
    const meter = slot.sequence.tokenMeter;
    const inputBefore = meter.usedInputTokens;
    const outputBefore = meter.usedOutputTokens;
    const predictionsBefore = slot.sequence.tokenPredictor ? { ...slot.sequence.tokenPredictions } : undefined;
    let firstTokenAt: number | undefined;
    const params = request.params;
    const common = {
      maxTokens: params.maxTokens ?? 512,
      temperature: params.temperature,
      topK: params.topK,
      topP: params.topP,
      seed: params.seed,
      repeatPenalty:
        params.repeatPenalty === undefined ? undefined : params.repeatPenalty === 1 ? (false as const) : { penalty: params.repeatPenalty },
      signal: request.signal,
      stopOnAbortSignal: true,
      onToken: () => {
        firstTokenAt ??= performance.now();
      },
      onTextChunk: (text: string) => {
        if (text) request.onDelta?.(text);
      },
    };
    let text: string;
    let stopReason: string;
    let toolCalls: ToolCall[] | undefined;
    this.#batching.generating += 1;
    this.#threads?.begin();
    try {
      if (request.mode === "raw") {
        const result = await slot.completion.generateCompletionWithMeta(request.prompt ?? "", common);
        text = result.response;
        stopReason = result.metadata.stopReason;
      } else {
        const tools = request.tools ?? [];
        const result = await slot.chat.generateResponse(
          toHistory(request),
          tools.length === 0 ? common : { ...common, functions: functionsOf(tools), documentFunctionParams: true },
        );
        text = result.response;
        stopReason = result.metadata.stopReason;
        if (stopReason === "functionCalls") {
          toolCalls = (result.functionCalls ?? []).map((call) => ({ name: call.functionName, arguments: call.params as unknown }));
        }
      }
    } catch (error) {
      if (request.signal?.aborted) {
        text = "";
        stopReason = "abort";
      } else {
        throw new AgentError("IA_ERR_INTERNAL", `generation failed: ${(error as Error).message}`, { cause: error });
      }
    } finally {
      this.#batching.generating -= 1;
      this.#threads?.end();
    }
    const finished = performance.now();
    // The meter counts every generated token, including control tokens that never reach
    // onToken/onTextChunk; prompt tokens reused from the KV cache are not counted.
    // With a token predictor the meter also counts the proposed tokens the model refuted
    // (a check of k proposals outputs k+1 logits, of which only the kept ones and the next
    // token are the answer), so those come off: tokens/s must count the answer, not the work.
    // Proposals kept by the last check past maxTokens still count (at most --draft-max).
    const promptTokens = meter.usedInputTokens - inputBefore;
    const predictionsAfter = slot.sequence.tokenPredictions;
    const predictions = predictionsBefore && {
      validated: predictionsAfter.validated - predictionsBefore.validated,
      refuted: predictionsAfter.refuted - predictionsBefore.refuted,
    };
    const completionTokens = meter.usedOutputTokens - outputBefore - (predictions?.refuted ?? 0);
    return {
      text,
      finishReason: finishReasonOf(stopReason, request.signal?.aborted ?? false),
      ...(toolCalls === undefined ? {} : { toolCalls }),
      usage: { promptTokens, completionTokens },
      ...(predictions ? { predictions } : {}),
      timings: { ...timings(started, firstTokenAt, finished, { prompt: promptTokens, completion: completionTokens }), queuedMs: 0 },
    };
  }

  /**
   * The plain node-llama-cpp evaluation loop, `bench`'s in-process baseline: no chat
   * template, no queue, greedy sampling straight from `LlamaContextSequence.evaluate` on
   * the same context (threads, batch) that answers questions. Clears the slot's history,
   * so run it only while the slot is idle.
   */
  async rawEvaluationBaseline(slotIndex: number, options: RawEvaluationOptions): Promise<RawEvaluationResult> {
    const slot = this.#slots[slotIndex];
    if (!slot) throw new AgentError("IA_ERR_INTERNAL", `no sequence slot ${slotIndex} (have ${this.#slots.length})`);
    const tokens = this.#model.tokenize(options.text).slice(0, options.promptTokens);
    await slot.sequence.clearHistory();
    const started = performance.now();
    let firstAt: number | undefined;
    let generated = 0;
    for await (const _token of slot.sequence.evaluate(tokens, { temperature: 0 })) {
      firstAt ??= performance.now();
      generated += 1;
      if (generated >= options.maxTokens) break;
    }
    const finished = performance.now();
    await slot.sequence.clearHistory();
    const { ttftMs, promptTokensPerSecond, tokensPerSecond } = timings(started, firstAt, finished, {
      prompt: tokens.length,
      completion: generated,
    });
    return { promptTokens: tokens.length, completionTokens: generated, ttftMs, promptTokensPerSecond, tokensPerSecond };
  }

  /**
   * Older turns can be shifted out of the context, but the newest question cannot: refuse
   * it with the numbers instead of letting llama.cpp fail mid-evaluation.
   */
  #refuseOversizedPrompt(request: GenerateRequest): void {
    const contextSize = this.info.contextSize;
    const last = request.mode === "raw" ? (request.prompt ?? "") : (request.messages?.at(-1)?.content ?? "");
    const system = request.mode === "raw" ? "" : (request.messages?.find((m) => m.role === "system")?.content ?? request.system ?? "");
    const room = contextSize - Math.min(request.params.maxTokens ?? 512, Math.floor(contextSize / 4));
    // A token covers at least one byte in byte-level BPE vocabularies, so short texts
    // cannot overflow and need no tokenizing on the hot path.
    const overhead = 16; // chat template markers around the system prompt and question
    if (Buffer.byteLength(last) + Buffer.byteLength(system) + overhead <= room) return;
    const needed = this.#tokenCount(last) + this.#tokenCount(system) + overhead;
    if (needed > room) {
      throw new AgentError(
        "IA_ERR_PROMPT_TOO_LONG",
        `the question is ${needed} tokens with the system prompt, but the context holds ${contextSize} tokens and keeps ${contextSize - room} for the answer; shorten it or raise --context`,
      );
    }
  }

  async dispose(): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    for (const slot of this.#slots) {
      slot.chat.dispose({ disposeSequence: false });
      slot.completion.dispose({ disposeSequence: false });
      slot.sequence.dispose();
    }
    await this.#context.dispose();
    await this.#speculation.dispose();
    await this.#model.dispose();
    await this.#llama.dispose();
  }
}
