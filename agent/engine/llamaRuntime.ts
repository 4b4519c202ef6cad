import { readFileSync, statSync } from "node:fs";
import { availableParallelism } from "node:os";
import type {
  BatchItem,
  ChatHistoryItem,
  CustomBatchingPrioritizationStrategy,
  Llama,
  LlamaChat,
  LlamaCompletion,
  LlamaContext,
  LlamaContextSequence,
  LlamaModel,
  PrioritizedBatchItem,
} from "node-llama-cpp";
import type { AgentConfig } from "../config/config.js";
import { AgentError } from "../../common/errors.js";
import { preflightEngine } from "./preflight.js";
import type { Logger } from "../../common/logger.js";
import type {
  ChatMessage,
  FinishReason,
  GenerateRequest,
  GenerateResult,
  MlockState,
  EngineRuntime,
  EngineStats,
  RawEvaluationOptions,
  RawEvaluationResult,
  RuntimeInfo,
} from "./modelRuntime.js";
import { FLASH_ATTENTION } from "./modelRuntime.js";
import { peakRssBytes, procStatusBytes } from "../host/processStats.js";
import { ThreadAdapter } from "./threadAdapter.js";

/**
 * The one module that imports node-llama-cpp for inference. It is imported lazily so that
 * `--help`, `probe` and config errors do not pay for loading the native addon.
 */

export interface LlamaRuntimeOptions {
  modelPath: string;
  /** Name shown to people (catalog id or file name). */
  modelLabel: string;
  isDemo: boolean;
  /** Generation threads; always set, because the library default (4) is far slower on 2 cores. */
  threads: number;
  contextSize: number;
  /** One context sequence per concurrent generation. Defaults to 1. */
  parallelSequences?: number;
  mlock: boolean;
  /** `--mlock on`: a lock that does not take is a warning (smoke fails it); with `auto` it is one info line. */
  mlockRequired?: boolean;
  /** `--gpu`: `off` (CPU only, the default) or `auto` (node-llama-cpp picks CUDA, Vulkan or Metal when present). */
  gpu?: AgentConfig["gpu"];
  /** `--gpu-layers`: layers to offload with `--gpu auto`; `auto` lets node-llama-cpp fit them to free VRAM. */
  gpuLayers?: AgentConfig["gpuLayers"];
  /** `--numa`: llama.cpp's NUMA policy. Defaults to `off` (the OS decides). */
  numa?: AgentConfig["numa"];
  /** `--threads auto`: use fewer of the planned threads while other processes keep the cores busy (threadAdapter.ts). */
  adaptThreads?: boolean;
  logger: Logger;
  /** Load progress from 0 to 1. */
  onLoadProgress?: (fraction: number) => void;
}

/** What node-llama-cpp 3.21.1 is given for the GPU and NUMA settings (`getLlama` and `loadModel` options). */
export interface LlamaBackendOptions {
  /** `LlamaOptions.gpu`: false is CPU only. */
  gpu: "auto" | false;
  /** `LlamaOptions.numa` (also accepted by the "lastBuild" form of getLlama). */
  numa: false | "distribute" | "isolate";
  /** `LlamaModelOptions.gpuLayers`. */
  gpuLayers: "auto" | number;
}

/**
 * The agent's settings as node-llama-cpp options. `--gpu off` (the default) means CPU only and
 * no offloaded layers whatever `--gpu-layers` says; with `--gpu auto` node-llama-cpp picks
 * the GPU type and sets the layers to 0 itself when it finds none. `--numa off` is no policy.
 */
export function llamaBackendOptions(settings: Pick<LlamaRuntimeOptions, "gpu" | "gpuLayers" | "numa">): LlamaBackendOptions {
  const gpu = settings.gpu === "auto" ? "auto" : false;
  const numa = settings.numa === undefined || settings.numa === "off" ? false : settings.numa;
  return { gpu, numa, gpuLayers: gpu === false ? 0 : (settings.gpuLayers ?? "auto") };
}

/** Messages from llama.cpp that the agent must act on, not only log. */
const MLOCK_FAILURE = /failed to mlock/i;

/**
 * Memory the kernel has locked for this process, on Linux: the resident pages of locked
 * mappings (`Locked` in /proc/self/smaps_rollup), else `VmLck` (sizes of locked mappings,
 * which also counts a locked PROT_NONE page). null elsewhere.
 */
function readLockedBytes(): number | null {
  if (process.platform !== "linux") return null;
  try {
    const match = /^Locked:\s+(\d+)\s+kB/m.exec(readFileSync("/proc/self/smaps_rollup", "utf8"));
    if (match) return Number(match[1]) * 1024;
  } catch {
    // Kernels before 4.14 have no smaps_rollup.
  }
  return procStatusBytes("VmLck");
}

function fileSize(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}

function mlockFix(): string {
  return process.platform === "win32"
    ? "run the agent as a user allowed to lock pages in memory, or set mlock off"
    : "raise the memlock limit: LimitMEMLOCK=infinity in the systemd unit, or `ulimit -l unlimited` before starting";
}

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
  history.push({ type: "model", response: [] });
  return history;
}

function finishReasonOf(stopReason: string, aborted: boolean): FinishReason {
  if (aborted || stopReason === "abort") return "cancelled";
  return stopReason === "maxTokens" ? "length" : "stop";
}

/**
 * node-llama-cpp keeps decoding whatever is queued the moment a batch ends. With several
 * sequences generating, the one whose next token is queued a few microtasks later than the
 * others always misses the batch: with 4 requesters it decoded 84 batches of 3 instead of
 * 63 of 4, and on AVX2 a batch of 3 costs as much as 3 single tokens while a batch of 4
 * takes the llamafile kernels (measured 130 ms against 105 ms here). An empty answer
 * makes node-llama-cpp's loop yield one microtask round and look again; it is bounded, so
 * a sequence that is not about to queue (waiting for I/O) never holds the others back.
 *
 * The batch also goes out in sequence-id order. node-llama-cpp gives every sequence its own
 * KV stream, and llama.cpp then cuts a batch into one graph run per run of consecutive,
 * increasing sequence ids: queued as 1, 2, 3, 0 (sequence 0 finished sampling last) a
 * 4-token batch ran as 3 + 1 and took 156 ms instead of 89 here (llama-batch.cpp,
 * split_equal). `sequenceIds` gives the id of each queued item, in the order of `items`,
 * or undefined when it cannot; the items then keep queue order.
 */
export function gatherGeneratingSequences(
  generating: () => number,
  sequenceIds: () => readonly number[] | undefined = () => undefined,
  maxWaits = 32,
  counts?: BatchOrderCounts,
): CustomBatchingPrioritizationStrategy {
  let waits = 0;
  return ({ items, size }) => {
    if (items.length < generating() && waits < maxWaits) {
      waits += 1;
      return [];
    }
    waits = 0;
    const ids = sequenceIds();
    const ordered = inSequenceOrder(items, ids);
    if (counts && items.length > 1) {
      if (ids?.length !== items.length) counts.unorderedBatches += 1;
      else {
        counts.orderedBatches += 1;
        if (ordered.some((item, index) => item !== items[index])) counts.reorderedBatches += 1;
      }
    }
    return fairShare(ordered, size);
  };
}

/** Batches of several sequences: put in sequence-id order, of those the ones the sort changed, and the ones left in queue order. */
export interface BatchOrderCounts {
  orderedBatches: number;
  reorderedBatches: number;
  unorderedBatches: number;
}

/** `items` sorted by their sequence ids; unchanged when the ids do not match them one to one. */
export function inSequenceOrder(items: readonly BatchItem[], ids: readonly number[] | undefined): readonly BatchItem[] {
  if (items.length < 2 || ids?.length !== items.length) return items;
  return items
    .map((item, index) => ({ item, id: ids[index]! }))
    .sort((a, b) => a.id - b.id)
    .map((entry) => entry.item);
}

/**
 * The sequence id of each queued decode, in the order node-llama-cpp hands them to the
 * batching strategy. node-llama-cpp 3.21 builds the strategy's items from its internal
 * `_queuedDecodes` list in order and does not expose the ids otherwise; the version is
 * pinned, and anything unexpected here gives undefined (queue order) rather than an error.
 * The engine counts the batches it ordered and reordered (`stats`); a test fails if none was reordered.
 */
function queuedSequenceIds(context: LlamaContext | undefined): number[] | undefined {
  const queued = (context as unknown as { _queuedDecodes?: unknown } | undefined)?._queuedDecodes;
  if (!Array.isArray(queued)) return undefined;
  const ids = queued.map((entry) => (entry as { sequenceId?: unknown }).sequenceId);
  return ids.every((id): id is number => typeof id === "number") ? ids : undefined;
}

/** What the batching strategy shares with the runtime: how many sequences generate, and how batches were ordered. */
interface BatchingState extends BatchOrderCounts {
  generating: number;
  context: LlamaContext | undefined;
}

/** Every queued item gets an equal share of the batch; what is left goes in the order given (sequence order, above). */
export function fairShare(items: readonly BatchItem[], size: number): PrioritizedBatchItem[] {
  const share = Math.max(1, Math.floor(size / Math.max(1, items.length)));
  let left = size;
  const result = items.map((item) => {
    const processAmount = Math.min(item.tokens.length, share, left);
    left -= processAmount;
    return { item, processAmount };
  });
  for (const entry of result) {
    if (left <= 0) break;
    const more = Math.min(entry.item.tokens.length - entry.processAmount, left);
    entry.processAmount += more;
    left -= more;
  }
  return result.filter((entry) => entry.processAmount > 0);
}

interface Slot {
  sequence: LlamaContextSequence;
  chat: LlamaChat;
  completion: LlamaCompletion;
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
  #disposed = false;

  private constructor(
    info: RuntimeInfo,
    llama: Llama,
    model: LlamaModel,
    context: LlamaContext,
    slots: Slot[],
    batching: BatchingState,
    threads: ThreadAdapter | undefined,
  ) {
    this.info = info;
    this.slots = slots.length;
    this.#llama = llama;
    this.#model = model;
    this.#context = context;
    this.#slots = slots;
    this.#batching = batching;
    this.#threads = threads;
  }

  get disposed(): boolean {
    return this.#disposed;
  }

  /** Loads the llama.cpp binaries, the model and one context with a sequence per slot. */
  static async load(options: LlamaRuntimeOptions): Promise<LlamaRuntime> {
    const log = options.logger.child({ component: "llama" });
    const started = performance.now();
    // Refuses, with the fix, hosts whose glibc or Windows cannot load the binaries at all.
    const engine = preflightEngine();
    const { getLlama, LlamaChat, LlamaCompletion, LlamaLogLevel } = await import("node-llama-cpp");
    const llamaWarnings: string[] = [];
    const common = {
      progressLogs: false as const,
      maxThreads: options.threads,
      logLevel: LlamaLogLevel.warn,
      logger: (level: import("node-llama-cpp").LlamaLogLevel, message: string) => {
        const text = message.trim();
        if (!text) return;
        llamaWarnings.push(text);
        // A failed mlock is summarised once, with the fix, after loading (see #mlockState).
        if (MLOCK_FAILURE.test(text)) log.debug(text);
        else if (level === LlamaLogLevel.error || level === LlamaLogLevel.fatal) log.error(text);
        else log.warn(text);
      },
    };
    const backend = llamaBackendOptions(options);
    // A local build (made on an old-glibc host with `source download`) sits in a folder
    // named after its cmake options, which only the "lastBuild" lookup finds; its GPU type is
    // the one it was built with.
    const llama =
      engine.kind === "localBuild"
        ? await getLlama("lastBuild", { ...common, numa: backend.numa, skipDownload: true })
        : await getLlama({ ...common, gpu: backend.gpu, numa: backend.numa, build: "never" });
    let model: LlamaModel;
    try {
      model = await llama.loadModel({
        modelPath: options.modelPath,
        gpuLayers: backend.gpuLayers,
        useMlock: options.mlock,
        ...(options.onLoadProgress ? { onLoadProgress: options.onLoadProgress } : {}),
      });
    } catch (error) {
      await llama.dispose();
      const detail = llamaWarnings.slice(-3).join("; ");
      throw new AgentError(
        "IA_ERR_MODEL_LOAD",
        `${options.modelPath}: llama.cpp could not load the model (${(error as Error).message}${detail ? `; ${detail}` : ""})`,
        {
          cause: error,
        },
      );
    }
    const parallel = Math.max(1, options.parallelSequences ?? 1);
    let context: LlamaContext;
    const batching: BatchingState = { generating: 0, context: undefined, orderedBatches: 0, reorderedBatches: 0, unorderedBatches: 0 };
    try {
      context = await model.createContext({
        contextSize: options.contextSize,
        sequences: parallel,
        // With a minimum of 1, `llama.maxThreads` can lower the count per batch (threadAdapter.ts).
        threads: options.adaptThreads ? { ideal: options.threads, min: 1 } : options.threads,
        flashAttention: FLASH_ATTENTION,
        ...(parallel > 1
          ? {
              batching: {
                itemPrioritizationStrategy: gatherGeneratingSequences(
                  () => batching.generating,
                  () => queuedSequenceIds(batching.context),
                  32,
                  batching,
                ),
              },
            }
          : {}),
      });
    } catch (error) {
      await model.dispose();
      await llama.dispose();
      throw new AgentError(
        "IA_ERR_MODEL_LOAD",
        `${options.modelPath}: cannot create a context of ${options.contextSize} tokens × ${parallel} sequences (${(error as Error).message}); try a smaller --context`,
        { cause: error },
      );
    }
    batching.context = context;
    const slots: Slot[] = [];
    for (let i = 0; i < parallel; i++) {
      const sequence = context.getSequence();
      slots.push({
        sequence,
        chat: new LlamaChat({ contextSequence: sequence, autoDisposeSequence: false }),
        completion: new LlamaCompletion({ contextSequence: sequence, autoDisposeSequence: false }),
      });
    }
    // llama.cpp's log lines reach JS asynchronously, so a "failed to mlock" can arrive after
    // loadModel resolves: let them drain before judging (seen: the check said "locked").
    if (options.mlock) await new Promise((resolve) => setTimeout(resolve, 100));
    const offloaded = llama.gpu !== false && model.gpuLayers > 0;
    const mlock = LlamaRuntime.#mlockState(options.mlock, llamaWarnings, model.size || fileSize(options.modelPath), offloaded);
    // The one log line for a planned lock that did not take. `--mlock on` asked for it (a
    // warning; smoke fails its check); `auto` only runs unlocked, which is operator detail
    // (info, kept off a console on the same terminal). llama.cpp's own line went to debug above.
    if (mlock.requested && !mlock.locked) {
      if (options.mlockRequired) log.warn({ fix: mlockFix() }, mlock.detail);
      else log.info({ fix: mlockFix() }, mlock.detail);
    }
    const info: RuntimeInfo = {
      modelPath: options.modelPath,
      modelLabel: options.modelLabel,
      isDemo: options.isDemo,
      threads: options.threads,
      contextSize: context.contextSize,
      parallelSequences: parallel,
      mlock,
      loadMs: Math.round(performance.now() - started),
      backend: `${llama.gpu === false ? "cpu" : `${llama.gpu}, ${model.gpuLayers} layers offloaded`} (${String(llama.buildType)} binaries)`,
      engine: "inline",
    };
    const adapter = options.adaptThreads
      ? new ThreadAdapter({
          planned: options.threads,
          cores: availableParallelism(),
          apply: (threads) => (llama.maxThreads = threads),
          onChange: (threads, others) =>
            log.info(
              { threads, otherProcessesCores: Math.round(others * 100) / 100 },
              threads < options.threads ? "other processes keep the cores busy: fewer threads" : "cores free again: planned threads",
            ),
        })
      : undefined;
    return new LlamaRuntime(info, llama, model, context, slots, batching, adapter);
  }

  /**
   * Whether the weights really are locked. llama.cpp reports a failed mlock only as a log line,
   * and that line is not the whole truth: it locks from a buffer's unaligned start for the size
   * rounded up to pages, so the range can end one page into PROT_NONE memory (a malloc arena's
   * reserve, a thread stack guard) and mlock() returns ENOMEM, yet the kernel has already
   * locked and faulted in every page of the buffer itself (measured on the dev VM: ENOMEM in
   * strace, "failed to mlock" from llama.cpp, and 1,100 kB `Locked` in smaps for the 1,100 kB
   * buffer). So on Linux the kernel's count decides; the line only explains. Elsewhere, and
   * when layers sit in VRAM (not counted there), the line decides.
   */
  static #mlockState(requested: boolean, warnings: string[], weightBytes: number, offloaded: boolean): MlockState {
    const lockedBytes = readLockedBytes();
    if (!requested) return { requested, locked: false, lockedBytes, detail: "mlock off as planned" };
    const failure = warnings
      .find((w) => MLOCK_FAILURE.test(w))
      ?.split("\n")[0]
      ?.replace(/^warning:\s*/, "");
    const mib = (bytes: number) => `${Math.round(bytes / 2 ** 20).toLocaleString("en-US")} MiB`;
    // Node itself locks nothing, but the count is per process: the weights count as locked when
    // it covers nearly all of them (llama.cpp's buffers round up, never down).
    const kernelSaysLocked = lockedBytes === null || offloaded ? failure === undefined : lockedBytes >= weightBytes * 0.9;
    if (kernelSaysLocked) {
      const held = lockedBytes ? ` (${mib(lockedBytes)} locked)` : "";
      const note =
        failure === undefined
          ? ""
          : `; llama.cpp still logged "${failure}": mlock() failed for part of its range, typically the page past the end of its buffer that it rounds the lock up to, after the kernel had locked the buffer`;
      return { requested, locked: true, lockedBytes, detail: `model pinned in RAM${held}${note}` };
    }
    const why = failure ?? `the kernel has ${mib(lockedBytes ?? 0)} locked for ${mib(weightBytes)} of weights`;
    return {
      requested,
      locked: false,
      lockedBytes,
      detail: `mlock was planned but did not take effect (${why}); the model runs unlocked and may be paged out. Fix: ${mlockFix()}`,
    };
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
    this.#batching.generating += 1;
    this.#threads?.begin();
    try {
      if (request.mode === "raw") {
        const result = await slot.completion.generateCompletionWithMeta(request.prompt ?? "", common);
        text = result.response;
        stopReason = result.metadata.stopReason;
      } else {
        const result = await slot.chat.generateResponse(toHistory(request), common);
        text = result.response;
        stopReason = result.metadata.stopReason;
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
    const promptTokens = meter.usedInputTokens - inputBefore;
    const completionTokens = meter.usedOutputTokens - outputBefore;
    const ttftMs = (firstTokenAt ?? finished) - started;
    const generationSeconds = (finished - (firstTokenAt ?? finished)) / 1000;
    return {
      text,
      finishReason: finishReasonOf(stopReason, request.signal?.aborted ?? false),
      usage: { promptTokens, completionTokens },
      timings: {
        ttftMs: round(ttftMs),
        tokensPerSecond: completionTokens > 1 && generationSeconds > 0 ? round((completionTokens - 1) / generationSeconds) : 0,
        promptTokensPerSecond: ttftMs > 0 ? round((promptTokens * 1000) / ttftMs) : 0,
        totalMs: round(finished - started),
        queuedMs: 0,
      },
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
    const ttftMs = (firstAt ?? finished) - started;
    const generationSeconds = (finished - (firstAt ?? finished)) / 1000;
    await slot.sequence.clearHistory();
    return {
      promptTokens: tokens.length,
      completionTokens: generated,
      ttftMs: round(ttftMs),
      promptTokensPerSecond: ttftMs > 0 ? round((tokens.length * 1000) / ttftMs) : 0,
      tokensPerSecond: generated > 1 && generationSeconds > 0 ? round((generated - 1) / generationSeconds) : 0,
    };
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
    await this.#model.dispose();
    await this.#llama.dispose();
  }
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}
