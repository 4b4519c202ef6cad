import type { AgentConfig } from "../config/config.js";
import type { Logger } from "../../common/logger.js";
import type { ToolSpec } from "./modelRuntime.js";

/** What the engine loads and how: the agent's settings for one model, and what node-llama-cpp 3.21.1 is given for them. */

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
  /**
   * Evaluated on every slot right after load, so the first question does not pay for the
   * static part of its prompt: the system prompt and, with tools, their descriptions. Defaults to none.
   */
  warmUp?: { system: string; tools?: readonly ToolSpec[] | undefined } | undefined;
  /** Speculative decoding: a draft model or prompt lookup proposes tokens, checked in one batch. Defaults to none. */
  speculation?: SpeculationOptions | undefined;
  /** Load progress from 0 to 1. */
  onLoadProgress?: (fraction: number) => void;
}

/** The token predictor each sequence gets (node-llama-cpp's DraftSequenceTokenPredictor or InputLookupTokenPredictor). */
export type SpeculationOptions =
  | {
      kind: "draft";
      draftPath: string;
      draftLabel: string;
      /** Tokens drafted before each check (`--draft-max`). */
      draftMax: number;
      /** The draft stops at a token it gives a lower probability (`--draft-min-p`); 0 never stops. */
      draftMinP: number;
    }
  | { kind: "lookup" };

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

/**
 * Flash attention as llama.cpp decides it ("auto": on for the CPU backend), which is also
 * llama-bench's default. Measured here (Qwen2.5-0.5B Q8_0, 2 threads): prompt processing of
 * 512 tokens 11-13% faster, generation 5-8%, 4 batched sequences up to 17%. `bench` runs
 * llama.cpp's reference tools with the same setting, so the ratios compare like with like.
 */
export const FLASH_ATTENTION = "auto";
