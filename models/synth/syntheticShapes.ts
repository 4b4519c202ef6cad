import { AgentError } from "../../common/errors.js";

/**
 * Shapes for random-weight models. The real ones carry the exact hyperparameters of the
 * published checkpoints (Hugging Face config.json, as llama.cpp's converter maps them), so
 * a synthetic file has the real tensor table and times the same kernels.
 */
export interface SyntheticShape {
  name: SyntheticShapeName;
  architecture: "qwen2" | "qwen3";
  /** Which Qwen tokenizer's added tokens and chat template to use. */
  family: "qwen2" | "qwen3";
  contextLength: number;
  embeddingLength: number;
  blockCount: number;
  feedForwardLength: number;
  headCount: number;
  headCountKv: number;
  /** Per-head width; qwen2 always uses embedding / heads. */
  headDim: number;
  /** Rows of token_embd (the padded vocabulary). */
  vocabSize: number;
  /** No separate output.weight: llama.cpp reuses token_embd. */
  tiedEmbeddings: boolean;
  ropeFreqBase: number;
  rmsEpsilon: number;
  /** attn_q/k/v biases (Qwen2). */
  qkvBias: boolean;
  /** attn_q_norm/attn_k_norm (Qwen3). */
  qkNorm: boolean;
}

export const SYNTHETIC_SHAPE_NAMES = ["tiny", "tiny-qwen3", "qwen2.5-0.5b", "qwen2.5-1.5b", "qwen3-0.6b"] as const;
export type SyntheticShapeName = (typeof SYNTHETIC_SHAPE_NAMES)[number];

const QWEN_VOCAB = 151936;

export const SYNTHETIC_SHAPES: Readonly<Record<SyntheticShapeName, SyntheticShape>> = {
  // A few MB: loads and answers in well under a second, for tests.
  tiny: {
    name: "tiny",
    architecture: "qwen2",
    family: "qwen2",
    contextLength: 4096,
    embeddingLength: 128,
    blockCount: 4,
    feedForwardLength: 384,
    headCount: 4,
    headCountKv: 2,
    headDim: 32,
    vocabSize: 2048,
    tiedEmbeddings: true,
    ropeFreqBase: 1_000_000,
    rmsEpsilon: 1e-6,
    qkvBias: true,
    qkNorm: false,
  },
  // Qwen3 layout in miniature: head width * heads (256) differs from the hidden size (128).
  "tiny-qwen3": {
    name: "tiny-qwen3",
    architecture: "qwen3",
    family: "qwen3",
    contextLength: 4096,
    embeddingLength: 128,
    blockCount: 4,
    feedForwardLength: 384,
    headCount: 4,
    headCountKv: 2,
    headDim: 64,
    vocabSize: 2048,
    tiedEmbeddings: true,
    ropeFreqBase: 1_000_000,
    rmsEpsilon: 1e-6,
    qkvBias: false,
    qkNorm: true,
  },
  "qwen2.5-0.5b": {
    name: "qwen2.5-0.5b",
    architecture: "qwen2",
    family: "qwen2",
    contextLength: 32768,
    embeddingLength: 896,
    blockCount: 24,
    feedForwardLength: 4864,
    headCount: 14,
    headCountKv: 2,
    headDim: 64,
    vocabSize: QWEN_VOCAB,
    tiedEmbeddings: true,
    ropeFreqBase: 1_000_000,
    rmsEpsilon: 1e-6,
    qkvBias: true,
    qkNorm: false,
  },
  "qwen2.5-1.5b": {
    name: "qwen2.5-1.5b",
    architecture: "qwen2",
    family: "qwen2",
    contextLength: 32768,
    embeddingLength: 1536,
    blockCount: 28,
    feedForwardLength: 8960,
    headCount: 12,
    headCountKv: 2,
    headDim: 128,
    vocabSize: QWEN_VOCAB,
    tiedEmbeddings: true,
    ropeFreqBase: 1_000_000,
    rmsEpsilon: 1e-6,
    qkvBias: true,
    qkNorm: false,
  },
  "qwen3-0.6b": {
    name: "qwen3-0.6b",
    architecture: "qwen3",
    family: "qwen3",
    contextLength: 40960,
    embeddingLength: 1024,
    blockCount: 28,
    feedForwardLength: 3072,
    headCount: 16,
    headCountKv: 8,
    headDim: 128,
    vocabSize: QWEN_VOCAB,
    tiedEmbeddings: true,
    ropeFreqBase: 1_000_000,
    rmsEpsilon: 1e-6,
    qkvBias: false,
    qkNorm: true,
  },
};

/** The shape of that name, or IA_ERR_USAGE listing the known names. */
export function syntheticShape(name: string): SyntheticShape {
  const shape = SYNTHETIC_SHAPES[name as SyntheticShapeName] as SyntheticShape | undefined;
  if (shape === undefined) {
    throw new AgentError("IA_ERR_USAGE", `unknown synthetic model shape '${name}'; expected one of ${SYNTHETIC_SHAPE_NAMES.join(", ")}`);
  }
  return shape;
}

/** What a tensor holds decides how it is stored and filled. */
export type SyntheticTensorRole = "embedding" | "weight" | "norm" | "bias";

export interface PlannedTensor {
  name: string;
  /** ggml order: row length first. */
  dims: number[];
  role: SyntheticTensorRole;
}

/** The tensor table of a shape, in the order llama.cpp's converter writes it. */
export function planSyntheticTensors(shape: SyntheticShape): PlannedTensor[] {
  const e = shape.embeddingLength;
  const ff = shape.feedForwardLength;
  const q = shape.headDim * shape.headCount;
  const kv = shape.headDim * shape.headCountKv;
  const tensors: PlannedTensor[] = [{ name: "token_embd.weight", dims: [e, shape.vocabSize], role: "embedding" }];
  for (let i = 0; i < shape.blockCount; i++) {
    const add = (name: string, dims: number[], role: SyntheticTensorRole): void => {
      tensors.push({ name: `blk.${i}.${name}`, dims, role });
    };
    add("attn_norm.weight", [e], "norm");
    add("attn_q.weight", [e, q], "weight");
    if (shape.qkvBias) add("attn_q.bias", [q], "bias");
    add("attn_k.weight", [e, kv], "weight");
    if (shape.qkvBias) add("attn_k.bias", [kv], "bias");
    add("attn_v.weight", [e, kv], "weight");
    if (shape.qkvBias) add("attn_v.bias", [kv], "bias");
    add("attn_output.weight", [q, e], "weight");
    if (shape.qkNorm) {
      add("attn_q_norm.weight", [shape.headDim], "norm");
      add("attn_k_norm.weight", [shape.headDim], "norm");
    }
    add("ffn_norm.weight", [e], "norm");
    add("ffn_gate.weight", [e, ff], "weight");
    add("ffn_up.weight", [e, ff], "weight");
    add("ffn_down.weight", [ff, e], "weight");
  }
  tensors.push({ name: "output_norm.weight", dims: [e], role: "norm" });
  if (!shape.tiedEmbeddings) tensors.push({ name: "output.weight", dims: [e, shape.vocabSize], role: "weight" });
  return tensors;
}
