import type { ModelFootprint } from "./planTypes.js";

/** What a model needs in memory for one context size and sequence count. */

export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;

/** node-llama-cpp's default batch: min(context x sequences, 512). */
const DEFAULT_BATCH = 512;
const QWEN_VOCABULARY = 151_936;
/** Native libraries, graph metadata and the JS copy of the vocabulary (about 190 MB over llama-bench: docs/ARCHITECTURE.md#facts-the-code-relies-on). */
export const RUNTIME_BASE_BYTES = 128 * MiB;

export interface MemoryNeed {
  modelBytes: number;
  kvBytes: number;
  computeOverheadBytes: number;
  /** The share of compute buffers that grows with the model (10% of the file). */
  modelShareBytes: number;
  scratchBytes: number;
  batch: number;
  totalBytes: number;
}

/** Model file + KV cache + compute buffers + runtime, for one context size and sequence count. */
export function estimateMemory(footprint: ModelFootprint, contextSize: number, sequences: number): MemoryNeed {
  const batch = Math.min(contextSize * sequences, DEFAULT_BATCH);
  const kvBytes = footprint.kvBytesPerToken * contextSize * sequences;
  const logits = (footprint.vocabularySize ?? QWEN_VOCABULARY) * batch * 4;
  const attention = (footprint.attentionHeadCount ?? 0) * contextSize * sequences * batch * 4;
  const scratchBytes = Math.max(logits, attention);
  const modelShareBytes = Math.round(footprint.fileBytes * 0.1);
  const computeOverheadBytes = modelShareBytes + scratchBytes + RUNTIME_BASE_BYTES;
  return {
    modelBytes: footprint.fileBytes,
    kvBytes,
    computeOverheadBytes,
    modelShareBytes,
    scratchBytes,
    batch,
    totalBytes: footprint.fileBytes + kvBytes + computeOverheadBytes,
  };
}
