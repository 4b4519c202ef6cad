import { basename } from "node:path";
import { AgentError } from "../../common/errors.js";
import type { ErrorCode } from "../../common/errors.js";
import {
  GgmlType,
  GgufValueType,
  LLAMA_FILE_TYPE_LABELS,
  alignUp,
  elementCount,
  ggmlRemovedTypeName,
  ggmlTypeInfo,
  ggmlTypeName,
  ggufValueTypeName,
  knownGgmlTypes,
} from "./ggufFormat.js";
import type { GgufFile, GgufMetadataEntry, GgufTensorInfo } from "./ggufFormat.js";
import { readGguf } from "./ggufReader.js";

export const SUPPORTED_ARCHITECTURES = ["qwen2", "qwen3", "llama"] as const;
export type SupportedArchitecture = (typeof SUPPORTED_ARCHITECTURES)[number];

/** llama.cpp's LLAMA_MAX_LAYERS. */
const MAX_BLOCKS = 512;

/** What the resource policy and the model runtime need to know about a model file. */
export interface ModelFileSummary {
  path: string;
  fileBytes: number;
  ggufVersion: number;
  architecture: SupportedArchitecture;
  /** `general.name`, or the file name without `.gguf`. */
  name: string;
  /** Quantization label such as `Q8_0` or `Q4_K_M`, from `general.file_type` or the weights. */
  fileType: string;
  parameterCount: number;
  tensorCount: number;
  /** Context length the model was trained with (`<arch>.context_length`). */
  contextLength: number;
  embeddingLength: number;
  blockCount: number;
  feedForwardLength: number;
  headCount: number;
  headCountKv: number;
  /** Per-head key width (`attention.key_length`, else embedding / heads). */
  headDim: number;
  vocabSize: number;
  /** Sum of the tensors' data bytes (what loading maps into memory). */
  tensorDataBytes: number;
  /** KV cache bytes per context token with f16 K and V: blocks * kvHeads * (keyLen + valueLen) * 2. */
  kvBytesPerToken: number;
  hasChatTemplate: boolean;
}

/**
 * Reads a model file's GGUF header and refuses, with a coded AgentError naming the file,
 * anything that would make llama.cpp fail or abort the process: see `checkModelGguf`.
 */
export async function validateModelFile(path: string): Promise<ModelFileSummary> {
  return checkModelGguf(await readGguf(path));
}

interface Hparams {
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

/**
 * Checks a parsed GGUF for the architectures this agent runs: tensor table layout and
 * types, data that ends within the file, required metadata with llama.cpp's exact types,
 * a usable tokenizer, and tensor shapes that agree with the metadata.
 */
export function checkModelGguf(file: GgufFile): ModelFileSummary {
  const fail = (code: ErrorCode, message: string): AgentError => new AgentError(code, `${file.path}: ${message}`);
  checkNoNestedArrays(file, fail);
  const tensorDataBytes = checkTensorTable(file, fail);
  const meta = new MetadataReader(file, fail);
  const hp = readHparams(meta, fail);
  const vocabSize = checkTokenizer(meta, fail);
  checkTensorShapes(file, hp, vocabSize, fail);
  const chatTemplate = meta.optional("tokenizer.chat_template", GgufValueType.STRING);
  return {
    path: file.path,
    fileBytes: file.fileBytes,
    ggufVersion: file.version,
    architecture: hp.arch,
    name: meta.optional("general.name", GgufValueType.STRING) ?? basename(file.path).replace(/\.gguf$/i, ""),
    fileType: fileTypeLabel(file, meta),
    parameterCount: file.tensors.reduce((sum, t) => sum + elementCount(t.dims), 0),
    tensorCount: file.tensors.length,
    contextLength: hp.contextLength,
    embeddingLength: hp.embd,
    blockCount: hp.blocks,
    feedForwardLength: hp.ff,
    headCount: hp.heads,
    headCountKv: hp.kvHeads,
    headDim: hp.keyLength,
    vocabSize,
    tensorDataBytes,
    kvBytesPerToken: hp.blocks * hp.kvHeads * (hp.keyLength + hp.valueLength) * 2,
    hasChatTemplate: chatTemplate !== undefined && chatTemplate.length > 0,
  };
}

type Fail = (code: ErrorCode, message: string) => AgentError;

function checkNoNestedArrays(file: GgufFile, fail: Fail): void {
  for (const [key, entry] of file.metadata) {
    const value = entry.value;
    if (typeof value === "object" && value.itemType === GgufValueType.ARRAY) {
      throw fail(
        "IA_ERR_GGUF_MALFORMED",
        `metadata key '${key}' is an array of arrays, which llama.cpp cannot read; expected an array of scalars or strings`,
      );
    }
  }
}

/**
 * gguf.cpp's and llama_model_loader's per-tensor checks, so no file reaches llama.cpp that
 * it would refuse or abort on: each tensor's type is one this ggml knows, its row length
 * (the first dimension) is a whole number of the type's blocks, its byte size
 * (elements / block size * block bytes) fills exactly the space up to the next tensor's
 * offset (the data padded to `general.alignment`, first tensor at 0), and its data ends
 * inside the file. Returns the sum of the tensors' data bytes.
 */
function checkTensorTable(file: GgufFile, fail: Fail): number {
  const sizes = file.tensors.map((tensor) => tensorDataBytes(tensor, fail));
  let dataBytes = 0;
  for (const [i, tensor] of file.tensors.entries()) {
    const bytes = sizes[i] ?? 0;
    const padded = alignUp(bytes, file.alignment);
    if (i === 0 && tensor.offset !== 0) {
      throw fail(
        "IA_ERR_GGUF_TENSOR",
        `${describeTensor(tensor)} is the first tensor, so its data must start at data offset 0 (llama.cpp reads tensor data back to back); it starts at ${tensor.offset}`,
      );
    }
    const next = file.tensors[i + 1];
    if (next !== undefined && next.offset - tensor.offset !== padded) {
      throw fail(
        "IA_ERR_GGUF_TENSOR",
        `${describeTensor(tensor)} takes ${bytes} bytes (${padded} padded to general.alignment ${file.alignment}), so the next tensor '${next.name}' ` +
          `should start at data offset ${tensor.offset + padded}; it starts at ${next.offset} (${next.offset - tensor.offset} bytes after this one)`,
      );
    }
    const end = file.dataOffset + tensor.offset + bytes;
    if (end > file.fileBytes) {
      throw fail(
        "IA_ERR_GGUF_TRUNCATED",
        `the file has ${file.fileBytes} bytes but ${describeTensor(tensor)} needs ${bytes} bytes from byte ${file.dataOffset + tensor.offset}, up to byte ${end}; ` +
          `expected at least ${end} bytes: the file is truncated (an interrupted download or copy?)`,
      );
    }
    dataBytes += bytes;
  }
  return dataBytes;
}

/** The tensor's data bytes, or a refusal when its type is unknown or its rows are not whole blocks. */
function tensorDataBytes(tensor: GgufTensorInfo, fail: Fail): number {
  const shape = shapeText(tensor.dims);
  const info = ggmlTypeInfo(tensor.type);
  if (info === undefined) {
    const removed = ggmlRemovedTypeName(tensor.type);
    const what =
      removed === undefined
        ? `ggml type ${tensor.type}, which this llama.cpp does not know`
        : `ggml type ${tensor.type} (${removed}), which ggml has removed`;
    throw fail(
      "IA_ERR_GGUF_TENSOR",
      `tensor '${tensor.name}': ${what}, shape ${shape}; expected a type such as F32, F16, BF16, Q8_0, Q4_0, Q4_K (ggml type ids ${idRanges(knownGgmlTypes())})`,
    );
  }
  const rowLength = tensor.dims[0] ?? 1;
  if (rowLength % info.blockSize !== 0) {
    throw fail(
      "IA_ERR_GGUF_TENSOR",
      `tensor '${tensor.name}': type ${info.name} needs the first dimension to be a multiple of ${info.blockSize} (its block size), got ${shape}`,
    );
  }
  return (elementCount(tensor.dims) / info.blockSize) * info.typeSize;
}

function describeTensor(tensor: GgufTensorInfo): string {
  return `tensor '${tensor.name}' (type ${ggmlTypeName(tensor.type)}, shape ${shapeText(tensor.dims)})`;
}

function shapeText(dims: readonly number[]): string {
  return `[${dims.join(", ")}]`;
}

/** `0-3, 6-30, 34-35` for a sorted list of ids. */
function idRanges(ids: readonly number[]): string {
  const ranges: string[] = [];
  for (let i = 0; i < ids.length;) {
    const first = ids[i] ?? 0;
    let last = first;
    while (ids[i + 1] === last + 1) last = ids[++i] ?? last;
    ranges.push(first === last ? `${first}` : `${first}-${last}`);
    i++;
  }
  return ranges.join(", ");
}

type ScalarOf<T extends GgufValueType> = T extends typeof GgufValueType.STRING
  ? string
  : T extends typeof GgufValueType.BOOL
    ? boolean
    : number;

/** Typed metadata getters that fail the way llama.cpp's strict `get_key` would, but with a message. */
class MetadataReader {
  constructor(
    private readonly file: GgufFile,
    private readonly fail: Fail,
  ) {}

  entry(key: string): GgufMetadataEntry | undefined {
    return this.file.metadata.get(key);
  }

  required<T extends GgufValueType>(key: string, type: T, why: string): ScalarOf<T> {
    const value = this.optional(key, type, why);
    if (value === undefined) {
      throw this.fail("IA_ERR_GGUF_METADATA", `metadata key '${key}' is missing; expected a ${ggufValueTypeName(type)} (${why})`);
    }
    return value;
  }

  optional<T extends GgufValueType>(key: string, type: T, why = "as llama.cpp reads it"): ScalarOf<T> | undefined {
    const entry = this.file.metadata.get(key);
    if (entry === undefined) return undefined;
    if (entry.type !== type) {
      const found = entry.type === GgufValueType.ARRAY ? "an array" : `a ${ggufValueTypeName(entry.type)}`;
      throw this.fail("IA_ERR_GGUF_METADATA", `metadata key '${key}' is ${found}; expected a ${ggufValueTypeName(type)} (${why})`);
    }
    return entry.value as ScalarOf<T>;
  }

  positive(key: string, why: string, fallback?: number): number {
    const value =
      fallback === undefined ? this.required(key, GgufValueType.UINT32, why) : (this.optional(key, GgufValueType.UINT32, why) ?? fallback);
    if (value <= 0) throw this.fail("IA_ERR_GGUF_METADATA", `metadata key '${key}' is ${value}; expected a positive uint32 (${why})`);
    return value;
  }

  /** A string array's items, checked to be strings. */
  stringArray(key: string, why: string, required: boolean): string[] | undefined {
    const items = this.array(key, GgufValueType.STRING, why, required);
    return items as string[] | undefined;
  }

  array(key: string, itemType: GgufValueType, why: string, required: boolean): unknown[] | undefined {
    const entry = this.file.metadata.get(key);
    const expected = `an array of ${ggufValueTypeName(itemType)}`;
    if (entry === undefined) {
      if (required) throw this.fail("IA_ERR_GGUF_METADATA", `metadata key '${key}' is missing; expected ${expected} (${why})`);
      return undefined;
    }
    const value = entry.value;
    if (entry.type !== GgufValueType.ARRAY || typeof value !== "object" || value.itemType !== itemType) {
      const found = typeof value === "object" ? `an array of ${ggufValueTypeName(value.itemType)}` : `a ${ggufValueTypeName(entry.type)}`;
      throw this.fail("IA_ERR_GGUF_METADATA", `metadata key '${key}' is ${found}; expected ${expected} (${why})`);
    }
    return value.items;
  }
}

function readHparams(meta: MetadataReader, fail: Fail): Hparams {
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

function checkTokenizer(meta: MetadataReader, fail: Fail): number {
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

interface ExpectedTensor {
  name: string;
  dims: number[];
  required: boolean;
}

function expectedTensors(hp: Hparams, vocab: number, has: (name: string) => boolean): ExpectedTensor[] {
  const { arch, embd: e, ff, heads, kvHeads, keyLength: hd } = hp;
  const q = arch === "qwen2" ? e : hd * heads;
  const kv = hd * kvHeads;
  const out: ExpectedTensor[] = [
    { name: "token_embd.weight", dims: [e, vocab], required: true },
    { name: "output_norm.weight", dims: [e], required: true },
    { name: "output.weight", dims: [e, vocab], required: false },
  ];
  if (arch === "qwen2") out.push({ name: "output.bias", dims: [vocab], required: false });
  for (let i = 0; i < hp.blocks; i++) {
    const b = (name: string, dims: number[], required = true): void => {
      out.push({ name: `blk.${i}.${name}`, dims, required });
    };
    b("attn_norm.weight", [e]);
    if (has(`blk.${i}.attn_qkv.weight`)) {
      b("attn_qkv.weight", [e, q + 2 * kv]);
      b("attn_qkv.bias", [q + 2 * kv], false);
    } else {
      b("attn_q.weight", [e, q]);
      b("attn_k.weight", [e, kv]);
      b("attn_v.weight", [e, kv]);
      b("attn_q.bias", [q], false);
      b("attn_k.bias", [kv], false);
      b("attn_v.bias", [kv], false);
    }
    b("attn_output.weight", [q, e]);
    if (arch === "llama") b("attn_output.bias", [e], false);
    if (arch === "qwen3") {
      b("attn_q_norm.weight", [hd]);
      b("attn_k_norm.weight", [hd]);
    }
    b("ffn_norm.weight", [e]);
    if (hp.experts === 0) {
      b("ffn_gate.weight", [e, ff]);
      b("ffn_down.weight", [ff, e]);
      b("ffn_up.weight", [e, ff]);
    }
  }
  return out;
}

function checkTensorShapes(file: GgufFile, hp: Hparams, vocab: number, fail: Fail): void {
  const byName = new Map(file.tensors.map((t) => [t.name, t]));
  for (const tensor of file.tensors) {
    const block = /^blk\.(\d+)\./.exec(tensor.name)?.[1];
    if (block !== undefined && Number(block) >= hp.blocks) {
      throw fail(
        "IA_ERR_GGUF_TENSOR",
        `tensor '${tensor.name}' belongs to block ${block} but '${hp.arch}.block_count' is ${hp.blocks}; expected blocks 0-${hp.blocks - 1}`,
      );
    }
  }
  for (const expected of expectedTensors(hp, vocab, (name) => byName.has(name))) {
    const tensor = byName.get(expected.name);
    if (tensor === undefined) {
      if (!expected.required) continue;
      throw fail(
        "IA_ERR_GGUF_TENSOR",
        `tensor '${expected.name}' is missing; expected shape [${expected.dims.join(", ")}] for a ${hp.arch} model of ${hp.blocks} blocks`,
      );
    }
    if (!sameShape(tensor.dims, expected.dims)) {
      throw fail(
        "IA_ERR_GGUF_TENSOR",
        `tensor '${tensor.name}' has shape [${tensor.dims.join(", ")}]; expected [${expected.dims.join(", ")}] from the metadata ` +
          `(embedding ${hp.embd}, FFN ${hp.ff}, ${hp.heads} heads, ${hp.kvHeads} KV heads, head width ${hp.keyLength}, vocabulary ${vocab})`,
      );
    }
  }
}

function sameShape(actual: readonly number[], expected: readonly number[]): boolean {
  for (let i = 0; i < Math.max(actual.length, expected.length, 1); i++) {
    if ((actual[i] ?? 1) !== (expected[i] ?? 1)) return false;
  }
  return true;
}

function fileTypeLabel(file: GgufFile, meta: MetadataReader): string {
  const fileType = meta.optional("general.file_type", GgufValueType.UINT32);
  if (fileType !== undefined) return LLAMA_FILE_TYPE_LABELS.get(fileType) ?? `unknown(${fileType})`;
  const elementsByType = new Map<number, number>();
  for (const tensor of file.tensors) {
    if (tensor.dims.length < 2) continue;
    elementsByType.set(tensor.type, (elementsByType.get(tensor.type) ?? 0) + elementCount(tensor.dims));
  }
  let best: number = GgmlType.F32;
  let bestCount = -1;
  for (const [type, count] of elementsByType) {
    if (count > bestCount) [best, bestCount] = [type, count];
  }
  return ggmlTypeName(best);
}
