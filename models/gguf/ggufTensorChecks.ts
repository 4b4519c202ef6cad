import { alignUp, elementCount, ggmlRemovedTypeName, ggmlTypeInfo, ggmlTypeName, knownGgmlTypes } from "./ggufFormat.js";
import type { GgufFile, GgufTensorInfo } from "./ggufFormat.js";
import type { Hparams } from "./ggufHparams.js";
import type { Fail } from "./ggufMetadataReader.js";

/**
 * gguf.cpp's and llama_model_loader's per-tensor checks, so no file reaches llama.cpp that
 * it would refuse or abort on: each tensor's type is one this ggml knows, its row length
 * (the first dimension) is a whole number of the type's blocks, its byte size
 * (elements / block size * block bytes) fills exactly the space up to the next tensor's
 * offset (the data padded to `general.alignment`, first tensor at 0), and its data ends
 * inside the file. Returns the sum of the tensors' data bytes.
 */
export function checkTensorTable(file: GgufFile, fail: Fail): number {
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

export function checkTensorShapes(file: GgufFile, hp: Hparams, vocab: number, fail: Fail): void {
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
