import { statSync } from "node:fs";
import { availableParallelism } from "node:os";
import type { Llama, LlamaChat, LlamaCompletion, LlamaContext, LlamaContextSequence, LlamaLogLevel, LlamaModel } from "node-llama-cpp";
import { sleep } from "../../common/async.js";
import { AgentError } from "../../common/errors.js";
import { round } from "../../common/format.js";
import type { Logger } from "../../common/logger.js";
import { gatherGeneratingSequences } from "./batching.js";
import type { BatchOrderCounts } from "./batching.js";
import { FLASH_ATTENTION, llamaBackendOptions } from "./llamaRuntimeOptions.js";
import type { LlamaRuntimeOptions } from "./llamaRuntimeOptions.js";
import { MLOCK_FAILURE, mlockFix, mlockState } from "./mlockState.js";
import type { MlockState, RuntimeInfo } from "./modelRuntime.js";
import { preflightEngine } from "./preflight.js";
import { queuedSequenceIds } from "./queuedSequenceIds.js";
import { loadSpeculation } from "./speculation.js";
import type { SpeculationParts } from "./speculation.js";
import { ThreadAdapter } from "./threadAdapter.js";

/**
 * Loading llama.cpp for LlamaRuntime, one step per resource: the binaries, the model, the
 * context, the slots, the mlock check. Each step that acquires something registers its
 * disposer at once, so a failure at any later step releases everything acquired before it,
 * in reverse order, on one path (as node-llama-cpp's own `AsyncDisposeAggregator` does).
 */

type NodeLlamaCpp = typeof import("node-llama-cpp");

/** One context sequence with the chat and completion that generate on it. */
export interface Slot {
  sequence: LlamaContextSequence;
  chat: LlamaChat;
  completion: LlamaCompletion;
}

/** What the batching strategy shares with the runtime: how many sequences generate, and how batches were ordered. */
export interface BatchingState extends BatchOrderCounts {
  generating: number;
  context: LlamaContext | undefined;
}

/** Everything a loaded LlamaRuntime holds. */
export interface LlamaParts {
  info: RuntimeInfo;
  llama: Llama;
  model: LlamaModel;
  context: LlamaContext;
  slots: Slot[];
  batching: BatchingState;
  threads: ThreadAdapter | undefined;
  /** The draft model and its context, or prompt lookup (speculation.ts). */
  speculation: SpeculationParts;
}

/** Loads the llama.cpp binaries, the model and one context with a sequence per slot. */
export async function loadLlamaParts(options: LlamaRuntimeOptions): Promise<LlamaParts> {
  const log = options.logger.child({ component: "llama" });
  const started = performance.now();
  // Refuses, with the fix, hosts whose glibc or Windows cannot load the binaries at all.
  const engine = preflightEngine();
  const lib = await import("node-llama-cpp");
  const disposers: Array<() => Promise<void>> = [];
  try {
    const warnings: string[] = [];
    const llama = await loadLlama(lib, options, engine.kind === "localBuild", warnings, log);
    disposers.push(() => llama.dispose());
    const model = await loadModel(llama, options, warnings);
    disposers.push(() => model.dispose());
    const parallel = Math.max(1, options.parallelSequences ?? 1);
    const batching: BatchingState = { generating: 0, context: undefined, orderedBatches: 0, reorderedBatches: 0, unorderedBatches: 0 };
    const context = await createContext(model, options, parallel, batching);
    disposers.push(() => context.dispose());
    const speculation = await loadSpeculation(lib, llama, model, options, parallel, context, log);
    disposers.push(() => speculation.dispose());
    const slots = createSlots(lib, context, parallel, speculation);
    const mlock = await checkMlock(options, llama, model, warnings, log);
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
      speculation: speculation.description,
    };
    return { info, llama, model, context, slots, batching, threads: adaptThreads(llama, options, log), speculation };
  } catch (error) {
    for (const dispose of disposers.reverse()) await dispose().catch(() => undefined);
    throw error;
  }
}

async function loadLlama(
  lib: NodeLlamaCpp,
  options: LlamaRuntimeOptions,
  localBuild: boolean,
  warnings: string[],
  log: Logger,
): Promise<Llama> {
  const { getLlama, LlamaLogLevel } = lib;
  const common = {
    progressLogs: false as const,
    maxThreads: options.threads,
    logLevel: LlamaLogLevel.warn,
    logger: (level: LlamaLogLevel, message: string) => {
      const text = message.trim();
      if (!text) return;
      warnings.push(text);
      // A failed mlock is summarised once, with the fix, after loading (checkMlock).
      if (MLOCK_FAILURE.test(text)) log.debug(text);
      else if (level === LlamaLogLevel.error || level === LlamaLogLevel.fatal) log.error(text);
      else log.warn(text);
    },
  };
  const backend = llamaBackendOptions(options);
  // A local build (made on an old-glibc host with `source download`) sits in a folder
  // named after its cmake options, which only the "lastBuild" lookup finds; its GPU type is
  // the one it was built with.
  return localBuild
    ? getLlama("lastBuild", { ...common, numa: backend.numa, skipDownload: true })
    : getLlama({ ...common, gpu: backend.gpu, numa: backend.numa, build: "never" });
}

async function loadModel(llama: Llama, options: LlamaRuntimeOptions, warnings: string[]): Promise<LlamaModel> {
  try {
    return await llama.loadModel({
      modelPath: options.modelPath,
      gpuLayers: llamaBackendOptions(options).gpuLayers,
      useMlock: options.mlock,
      ...(options.onLoadProgress ? { onLoadProgress: options.onLoadProgress } : {}),
    });
  } catch (error) {
    const detail = warnings.slice(-3).join("; ");
    throw new AgentError(
      "IA_ERR_MODEL_LOAD",
      `${options.modelPath}: llama.cpp could not load the model (${(error as Error).message}${detail ? `; ${detail}` : ""})`,
      { cause: error },
    );
  }
}

async function createContext(
  model: LlamaModel,
  options: LlamaRuntimeOptions,
  parallel: number,
  batching: BatchingState,
): Promise<LlamaContext> {
  try {
    const context = await model.createContext({
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
    batching.context = context;
    return context;
  } catch (error) {
    throw new AgentError(
      "IA_ERR_MODEL_LOAD",
      `${options.modelPath}: cannot create a context of ${options.contextSize} tokens × ${parallel} sequences (${(error as Error).message}); try a smaller --context`,
      { cause: error },
    );
  }
}

function createSlots(lib: NodeLlamaCpp, context: LlamaContext, parallel: number, speculation: SpeculationParts): Slot[] {
  return Array.from({ length: parallel }, () => {
    const tokenPredictor = speculation.predictorFor();
    const sequence = context.getSequence(tokenPredictor ? { tokenPredictor } : undefined);
    return {
      sequence,
      chat: new lib.LlamaChat({ contextSequence: sequence, autoDisposeSequence: false }),
      completion: new lib.LlamaCompletion({ contextSequence: sequence, autoDisposeSequence: false }),
    };
  });
}

/** Whether the planned lock took (mlockState.ts), logged once when it did not. */
async function checkMlock(
  options: LlamaRuntimeOptions,
  llama: Llama,
  model: LlamaModel,
  warnings: string[],
  log: Logger,
): Promise<MlockState> {
  // llama.cpp's log lines reach JS asynchronously, so a "failed to mlock" can arrive after
  // loadModel resolves: let them drain before judging (seen: the check said "locked").
  if (options.mlock) await sleep(100);
  const offloaded = llama.gpu !== false && model.gpuLayers > 0;
  const mlock = mlockState(options.mlock, warnings, model.size || fileSize(options.modelPath), offloaded);
  // The one log line for a planned lock that did not take. `--mlock on` asked for it (a
  // warning; smoke fails its check); `auto` only runs unlocked, which is operator detail
  // (info, kept off a console on the same terminal). llama.cpp's own line went to debug above.
  if (mlock.requested && !mlock.locked) {
    if (options.mlockRequired) log.warn({ fix: mlockFix() }, mlock.detail);
    else log.info({ fix: mlockFix() }, mlock.detail);
  }
  return mlock;
}

function adaptThreads(llama: Llama, options: LlamaRuntimeOptions, log: Logger): ThreadAdapter | undefined {
  if (!options.adaptThreads) return undefined;
  return new ThreadAdapter({
    planned: options.threads,
    cores: availableParallelism(),
    apply: (threads) => (llama.maxThreads = threads),
    onChange: (threads, others) =>
      log.info(
        { threads, otherProcessesCores: round(others) },
        threads < options.threads ? "other processes keep the cores busy: fewer threads" : "cores free again: planned threads",
      ),
  });
}

function fileSize(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}
