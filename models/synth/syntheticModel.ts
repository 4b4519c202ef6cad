import { createHash } from "node:crypto";
import { AgentError } from "../../common/errors.js";
import { GgmlType, GgufValueType, LLAMA_FILE_TYPE_OF, elementCount, ggmlTypeInfo } from "../gguf/ggufFormat.js";
import type { GgufMetadataEntry } from "../gguf/ggufFormat.js";
import { writeGguf } from "../gguf/ggufWriter.js";
import type { GgufTensorSource, GgufWriteProgress } from "../gguf/ggufWriter.js";
import { planSyntheticTensors, syntheticShape } from "./syntheticShapes.js";
import type { PlannedTensor, SyntheticShape, SyntheticShapeName } from "./syntheticShapes.js";
import { buildSyntheticVocabulary, chatTemplateFor } from "./syntheticVocabulary.js";
import type { SyntheticVocabulary } from "./syntheticVocabulary.js";

export const SYNTHETIC_WEIGHT_TYPES = ["f16", "q8_0", "q4_0"] as const;
export type SyntheticWeightType = (typeof SYNTHETIC_WEIGHT_TYPES)[number];

export interface WriteSyntheticModelOptions {
  /** A shape name (`tiny`, `qwen2.5-0.5b`, ...) or a shape object. */
  shape: SyntheticShapeName | SyntheticShape;
  /** Storage of the 2-D weights and token_embd; norms and biases stay F32. */
  type: SyntheticWeightType;
  /** PRNG seed: the same seed, shape and type give the same bytes. Defaults to `1`. */
  seed?: number;
  outPath: string;
  /** Called after each written chunk. Defaults to none. */
  onProgress?: (progress: GgufWriteProgress) => void;
  /** Also hash the file while writing it. Defaults to `false`. */
  sha256?: boolean;
}

export interface SyntheticModelResult {
  path: string;
  bytes: number;
  tensorCount: number;
  shape: SyntheticShapeName;
  type: SyntheticWeightType;
  seed: number;
  sha256?: string;
}

/** Embeddings and biases are drawn from about ±0.02, as in a freshly initialised model. */
const EMBEDDING_RANGE = 0.02;
const CHUNK_BYTES = 1 << 22;

const GGML_TYPE_OF: Readonly<Record<SyntheticWeightType, number>> = { f16: GgmlType.F16, q8_0: GgmlType.Q8_0, q4_0: GgmlType.Q4_0 };
const FILE_TYPE_OF: Readonly<Record<SyntheticWeightType, number>> = {
  f16: LLAMA_FILE_TYPE_OF.F16,
  q8_0: LLAMA_FILE_TYPE_OF.Q8_0,
  q4_0: LLAMA_FILE_TYPE_OF.Q4_0,
};

/**
 * Writes a loadable random-weight model of a shape: real tensor table, Qwen metadata,
 * a synthetic byte-level BPE vocabulary and the Qwen chat template. Streams the tensor
 * data from a seeded PRNG through two reused buffers; never holds the file in memory.
 */
export async function writeSyntheticModel(options: WriteSyntheticModelOptions): Promise<SyntheticModelResult> {
  const shape = typeof options.shape === "string" ? syntheticShape(options.shape) : options.shape;
  if (!SYNTHETIC_WEIGHT_TYPES.includes(options.type)) {
    throw new AgentError(
      "IA_ERR_USAGE",
      `unknown synthetic weight type '${String(options.type)}'; expected one of ${SYNTHETIC_WEIGHT_TYPES.join(", ")}`,
    );
  }
  const seed = (options.seed ?? 1) >>> 0;
  const plan = planSyntheticModel(shape, options.type);
  const buffers = new AlternatingBuffers(CHUNK_BYTES);
  const sources: GgufTensorSource[] = plan.tensors.map((tensor, index) => ({
    name: tensor.name,
    dims: tensor.dims,
    type: tensor.type,
    chunks: () => tensorChunks(tensor, mixSeed(seed, index), buffers),
  }));
  const hash = options.sha256 === true ? createHash("sha256") : undefined;
  const result = await writeGguf(options.outPath, {
    metadata: syntheticMetadata(shape, options.type, seed, buildSyntheticVocabulary({ size: shape.vocabSize, family: shape.family })),
    tensors: sources,
    ...(options.onProgress === undefined ? {} : { onProgress: options.onProgress }),
    ...(hash === undefined ? {} : { onData: (chunk: Uint8Array) => hash.update(chunk) }),
  });
  return {
    path: result.path,
    bytes: result.bytes,
    tensorCount: result.tensors.length,
    shape: shape.name,
    type: options.type,
    seed,
    ...(hash === undefined ? {} : { sha256: hash.digest("hex") }),
  };
}

export interface SyntheticTensorPlan extends PlannedTensor {
  /** ggml type number. */
  type: number;
}

export interface SyntheticModelPlan {
  shape: SyntheticShape;
  tensors: SyntheticTensorPlan[];
  parameterCount: number;
}

/** The tensor table a shape and weight type produce, without writing anything. */
export function planSyntheticModel(shape: SyntheticShape, type: SyntheticWeightType): SyntheticModelPlan {
  const tensors = planSyntheticTensors(shape).map((t) => ({
    ...t,
    type: t.role === "norm" || t.role === "bias" ? GgmlType.F32 : GGML_TYPE_OF[type],
  }));
  return { shape, tensors, parameterCount: tensors.reduce((sum, t) => sum + elementCount(t.dims), 0) };
}

/** All the metadata llama.cpp needs to load a Qwen model, in llama.cpp's converter order. */
export function syntheticMetadata(
  shape: SyntheticShape,
  type: SyntheticWeightType,
  seed: number,
  vocab: SyntheticVocabulary,
): [string, GgufMetadataEntry][] {
  const a = shape.architecture;
  const u32 = (value: number): GgufMetadataEntry => ({ type: GgufValueType.UINT32, value });
  const f32 = (value: number): GgufMetadataEntry => ({ type: GgufValueType.FLOAT32, value });
  const str = (value: string): GgufMetadataEntry => ({ type: GgufValueType.STRING, value });
  const entries: [string, GgufMetadataEntry][] = [
    ["general.architecture", str(a)],
    ["general.type", str("model")],
    ["general.name", str(`synthetic ${shape.name} ${type} (random weights, seed ${seed})`)],
    ["general.file_type", u32(FILE_TYPE_OF[type])],
    ["general.quantization_version", u32(2)],
    [`${a}.context_length`, u32(shape.contextLength)],
    [`${a}.embedding_length`, u32(shape.embeddingLength)],
    [`${a}.block_count`, u32(shape.blockCount)],
    [`${a}.feed_forward_length`, u32(shape.feedForwardLength)],
    [`${a}.attention.head_count`, u32(shape.headCount)],
    [`${a}.attention.head_count_kv`, u32(shape.headCountKv)],
    [`${a}.rope.freq_base`, f32(shape.ropeFreqBase)],
    [`${a}.attention.layer_norm_rms_epsilon`, f32(shape.rmsEpsilon)],
  ];
  if (a === "qwen3") entries.push([`${a}.attention.key_length`, u32(shape.headDim)], [`${a}.attention.value_length`, u32(shape.headDim)]);
  entries.push(
    ["tokenizer.ggml.model", str("gpt2")],
    ["tokenizer.ggml.pre", str("qwen2")],
    ["tokenizer.ggml.tokens", { type: GgufValueType.ARRAY, value: { itemType: GgufValueType.STRING, items: vocab.tokens } }],
    ["tokenizer.ggml.token_type", { type: GgufValueType.ARRAY, value: { itemType: GgufValueType.INT32, items: vocab.tokenTypes } }],
    ["tokenizer.ggml.merges", { type: GgufValueType.ARRAY, value: { itemType: GgufValueType.STRING, items: vocab.merges } }],
    ["tokenizer.ggml.eos_token_id", u32(vocab.eosTokenId)],
    ["tokenizer.ggml.padding_token_id", u32(vocab.paddingTokenId)],
    ["tokenizer.ggml.bos_token_id", u32(vocab.bosTokenId)],
    ["tokenizer.ggml.add_bos_token", { type: GgufValueType.BOOL, value: false }],
    ["tokenizer.chat_template", str(chatTemplateFor(shape.family))],
  );
  return entries;
}

/** Two chunk buffers used in turn: the writer keeps at most one chunk in flight. */
class AlternatingBuffers {
  private readonly buffers: [Buffer, Buffer];
  private next = 0;

  constructor(readonly size: number) {
    this.buffers = [Buffer.alloc(size), Buffer.alloc(size)];
  }

  take(): Buffer {
    this.next ^= 1;
    return this.buffers[this.next as 0 | 1];
  }
}

function* tensorChunks(tensor: SyntheticTensorPlan, seed: number, buffers: AlternatingBuffers): Generator<Uint8Array> {
  const rng = new XorShift32(seed);
  if (tensor.type === GgmlType.F32) {
    yield f32Values(tensor, rng);
    return;
  }
  const info = ggmlTypeInfo(tensor.type);
  if (info === undefined) throw new AgentError("IA_ERR_INTERNAL", `no ggml type info for synthetic tensor '${tensor.name}'`);
  const total = (elementCount(tensor.dims) / info.blockSize) * info.typeSize;
  // Whole blocks per chunk, so every chunk starts at a block boundary.
  const chunkBytes = Math.floor(buffers.size / info.typeSize) * info.typeSize;
  const range = weightRange(tensor);
  for (let done = 0; done < total;) {
    const length = Math.min(chunkBytes, total - done);
    const buffer = buffers.take();
    rng.fill(buffer, length);
    if (tensor.type === GgmlType.Q8_0) setBlockScales(buffer, length, info.typeSize, halfBits(range / 127));
    else if (tensor.type === GgmlType.Q4_0) setBlockScales(buffer, length, info.typeSize, halfBits(range / 8));
    else toHalves(buffer, length, range);
    yield buffer.subarray(0, length);
    done += length;
  }
}

/**
 * Matrices get ±1/sqrt(row length), which keeps each layer's output near unit scale, so the
 * layers (not the input embedding) decide the next token and a tiny model says varied
 * things instead of repeating its last token.
 */
function weightRange(tensor: PlannedTensor): number {
  return tensor.role === "embedding" ? EMBEDDING_RANGE : 1 / Math.sqrt(tensor.dims[0] ?? 1);
}

/** Norm weights near 1, biases near 0. */
function f32Values(tensor: SyntheticTensorPlan, rng: XorShift32): Buffer {
  const count = elementCount(tensor.dims);
  const values = new Float32Array(count);
  const center = tensor.role === "norm" ? 1 : 0;
  const spread = tensor.role === "norm" ? 0.05 : EMBEDDING_RANGE;
  for (let i = 0; i < count; i++) values[i] = center + (rng.nextUnit() * 2 - 1) * spread;
  return Buffer.from(values.buffer, values.byteOffset, values.byteLength);
}

/** Overwrites the leading f16 scale `d` of every block; the random quants stay. */
function setBlockScales(buffer: Buffer, length: number, blockBytes: number, scale: number): void {
  const low = scale & 0xff;
  const high = scale >>> 8;
  for (let at = 0; at < length; at += blockBytes) {
    buffer[at] = low;
    buffer[at + 1] = high;
  }
}

/**
 * Turns random bits into f16 values with a random sign and a magnitude between range/8
 * and range: keep each half's sign, mantissa and lowest exponent bit, and add a fixed
 * exponent (no carry can reach the sign bit, the exponent stays below 31).
 */
function toHalves(buffer: Buffer, length: number, range: number): void {
  const exponent = Math.floor(Math.log2(range)) + 13;
  if (exponent < 1 || exponent > 29) throw new AgentError("IA_ERR_INTERNAL", `weight range ${range} is outside f16's normal numbers`);
  const add = (exponent << 10) | (exponent << 26);
  const words = new Int32Array(buffer.buffer, buffer.byteOffset, Math.ceil(length / 4));
  for (let i = 0; i < words.length; i++) words[i] = ((words[i] ?? 0) & 0x87ff87ff) + add;
}

/** IEEE half-precision bits of a small positive normal number. */
export function halfBits(value: number): number {
  const exponent = Math.floor(Math.log2(value));
  const mantissa = Math.round((value / 2 ** exponent - 1) * 1024);
  if (exponent < -14 || exponent > 15) throw new AgentError("IA_ERR_INTERNAL", `${value} is not a normal f16 value`);
  return mantissa === 1024 ? (exponent + 16) << 10 : ((exponent + 15) << 10) | mantissa;
}

/** Marsaglia's xorshift32: fast, seedable, plenty for random weights. */
export class XorShift32 {
  private state: number;

  constructor(seed: number) {
    this.state = seed | 0 || 0x6d2b79f5;
  }

  next(): number {
    let x = this.state;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.state = x;
    return x >>> 0;
  }

  /** A float in [0, 1). */
  nextUnit(): number {
    return this.next() / 2 ** 32;
  }

  /** Fills the first `length` bytes (rounded up to whole words) of `buffer`, which must be 4-byte aligned. */
  fill(buffer: Buffer, length: number): void {
    const words = new Int32Array(buffer.buffer, buffer.byteOffset, Math.ceil(length / 4));
    let x = this.state;
    for (let i = 0; i < words.length; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      words[i] = x;
    }
    this.state = x;
  }
}

/** A per-tensor seed, so a tensor's bytes do not depend on how the ones before it were drawn. */
function mixSeed(seed: number, index: number): number {
  let h = (seed ^ Math.imul(index + 1, 0x9e3779b9)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  h ^= h >>> 16;
  return h | 0 || 1;
}
