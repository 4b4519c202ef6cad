import { basename } from "node:path";
import { AgentError } from "../../common/errors.js";
import type { ErrorCode } from "../../common/errors.js";
import { GgmlType, GgufValueType, LLAMA_FILE_TYPE_LABELS, elementCount, ggmlTypeName } from "./ggufFormat.js";
import type { GgufFile } from "./ggufFormat.js";
import { checkTokenizer, readHparams } from "./ggufHparams.js";
import type { SupportedArchitecture } from "./ggufHparams.js";
import { GgufMetadataReader } from "./ggufMetadataReader.js";
import type { Fail } from "./ggufMetadataReader.js";
import { readGguf } from "./ggufReader.js";
import { checkTensorShapes, checkTensorTable } from "./ggufTensorChecks.js";

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

/**
 * Checks a parsed GGUF for the architectures this agent runs: tensor table layout and
 * types, data that ends within the file, required metadata with llama.cpp's exact types,
 * a usable tokenizer, and tensor shapes that agree with the metadata.
 */
export function checkModelGguf(file: GgufFile): ModelFileSummary {
  const fail = (code: ErrorCode, message: string): AgentError => new AgentError(code, `${file.path}: ${message}`);
  checkNoNestedArrays(file, fail);
  const tensorDataBytes = checkTensorTable(file, fail);
  const meta = new GgufMetadataReader(file, fail);
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

function fileTypeLabel(file: GgufFile, meta: GgufMetadataReader): string {
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
