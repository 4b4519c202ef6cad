import { GgufValueType } from "./ggufFormat.js";
import type { Fail, GgufMetadataReader } from "./ggufMetadataReader.js";

/** The hyperparameters and tokenizer llama.cpp reads from a model's metadata, with its exact types and limits. */

export const SUPPORTED_ARCHITECTURES = ["qwen2", "qwen3", "llama"] as const;
export type SupportedArchitecture = (typeof SUPPORTED_ARCHITECTURES)[number];

/** llama.cpp's LLAMA_MAX_LAYERS. */
const MAX_BLOCKS = 512;

export interface Hparams {
  arch: SupportedArchitecture;
  contextLength: number;
  embd: number;
  blocks: number;
  ff: number;
  heads: number;
  kvHeads: number;
  keyLength: number;
  valueLength: number;
  experts: number;
}

export function readHparams(meta: GgufMetadataReader, fail: Fail): Hparams {
  const archName = meta.required("general.architecture", GgufValueType.STRING, "the model architecture");
  const arch = SUPPORTED_ARCHITECTURES.find((a) => a === archName);
  if (arch === undefined) {
    throw fail("IA_ERR_GGUF_ARCH", `architecture '${archName}' is not supported; expected one of ${SUPPORTED_ARCHITECTURES.join(", ")}`);
  }
  const k = (suffix: string): string => `${arch}.${suffix}`;
  const abort = "llama.cpp aborts the whole process without it";
  const contextLength = meta.positive(k("context_length"), "the trained context length");
  const embd = meta.positive(k("embedding_length"), "the hidden size");
  const blocks = meta.positive(k("block_count"), "the number of layers");
  if (blocks > MAX_BLOCKS)
    throw fail("IA_ERR_GGUF_METADATA", `metadata key '${k("block_count")}' is ${blocks}; expected at most ${MAX_BLOCKS}`);
  const ff = meta.positive(k("feed_forward_length"), `the FFN width; ${abort}`);
  const heads = meta.positive(k("attention.head_count"), `the attention head count; ${abort}`);
  const kvHeads = meta.positive(k("attention.head_count_kv"), "the KV head count", arch === "llama" ? heads : undefined);
  if (heads % kvHeads !== 0) {
    throw fail(
      "IA_ERR_GGUF_METADATA",
      `metadata key '${k("attention.head_count_kv")}' is ${kvHeads}, which does not divide ${heads} heads; expected a divisor of the head count`,
    );
  }
  const eps = meta.required(k("attention.layer_norm_rms_epsilon"), GgufValueType.FLOAT32, "the RMS norm epsilon");
  if (!(eps > 0))
    throw fail(
      "IA_ERR_GGUF_METADATA",
      `metadata key '${k("attention.layer_norm_rms_epsilon")}' is ${eps}; expected a small positive float32`,
    );
  meta.optional(k("rope.freq_base"), GgufValueType.FLOAT32, "the RoPE base");
  const defaultHead = embd % heads === 0 ? embd / heads : undefined;
  const keyLength = meta.optional(k("attention.key_length"), GgufValueType.UINT32) ?? defaultHead;
  const valueLength = meta.optional(k("attention.value_length"), GgufValueType.UINT32) ?? defaultHead;
  if (keyLength === undefined || valueLength === undefined || keyLength <= 0) {
    throw fail(
      "IA_ERR_GGUF_METADATA",
      `the hidden size ${embd} is not a multiple of ${heads} heads and '${k("attention.key_length")}' is absent; expected a head width`,
    );
  }
  const rot = meta.optional(k("rope.dimension_count"), GgufValueType.UINT32) ?? keyLength;
  if (valueLength !== keyLength || rot !== keyLength) {
    throw fail(
      "IA_ERR_GGUF_METADATA",
      `key length ${keyLength}, value length ${valueLength} and RoPE dimensions ${rot} differ; expected all equal for ${arch} (llama.cpp asserts this and aborts)`,
    );
  }
  const experts = meta.optional(k("expert_count"), GgufValueType.UINT32) ?? 0;
  return { arch, contextLength, embd, blocks, ff, heads, kvHeads, keyLength, valueLength, experts };
}

export function checkTokenizer(meta: GgufMetadataReader, fail: Fail): number {
  const model = meta.required("tokenizer.ggml.model", GgufValueType.STRING, "the tokenizer type, e.g. gpt2");
  const tokens = meta.stringArray("tokenizer.ggml.tokens", "the vocabulary", true) ?? [];
  if (tokens.length === 0) throw fail("IA_ERR_GGUF_METADATA", "metadata key 'tokenizer.ggml.tokens' is empty; expected the vocabulary");
  if (model === "gpt2") meta.stringArray("tokenizer.ggml.merges", "the BPE merges a gpt2 tokenizer needs", true);
  const types = meta.array("tokenizer.ggml.token_type", GgufValueType.INT32, "one token type per token", false);
  if (types !== undefined && types.length < tokens.length) {
    throw fail(
      "IA_ERR_GGUF_METADATA",
      `metadata key 'tokenizer.ggml.token_type' has ${types.length} items; expected ${tokens.length}, one per token`,
    );
  }
  const scores = meta.array("tokenizer.ggml.scores", GgufValueType.FLOAT32, "one score per token", false);
  if (scores !== undefined && scores.length < tokens.length) {
    throw fail(
      "IA_ERR_GGUF_METADATA",
      `metadata key 'tokenizer.ggml.scores' has ${scores.length} items; expected ${tokens.length}, one per token`,
    );
  }
  for (const key of ["bos", "eos", "padding"]) {
    const id = meta.optional(`tokenizer.ggml.${key}_token_id`, GgufValueType.UINT32);
    if (id !== undefined && id >= tokens.length) {
      throw fail(
        "IA_ERR_GGUF_METADATA",
        `metadata key 'tokenizer.ggml.${key}_token_id' is ${id}; expected a token id below the vocabulary size ${tokens.length}`,
      );
    }
  }
  return tokens.length;
}
