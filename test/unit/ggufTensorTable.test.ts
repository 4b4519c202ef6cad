import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GgmlType, GgufValueType, tensorByteSize } from "../../models/gguf/ggufFormat.js";
import type { GgufFile, GgufMetadataEntry } from "../../models/gguf/ggufFormat.js";
import { readGguf } from "../../models/gguf/ggufReader.js";
import { checkModelGguf, validateModelFile } from "../../models/gguf/ggufValidator.js";
import { SYNTHETIC_WEIGHT_TYPES, planSyntheticModel, writeSyntheticModel } from "../../models/synth/syntheticModel.js";
import { SYNTHETIC_SHAPES } from "../../models/synth/syntheticShapes.js";
import type { SyntheticShape } from "../../models/synth/syntheticShapes.js";
import { FFN_400, editTensorTable, expectRefusal, without, writeRetyped, writeVariant } from "../helpers/ggufVariants.js";

let dir: string;
let validPath: string;
let validBytes: Buffer;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "ia-gguf-validator-"));
  validPath = join(dir, "valid.gguf");
  await writeSyntheticModel({ shape: "tiny", type: "q8_0", seed: 1, outPath: validPath });
  validBytes = await readFile(validPath);
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("checkModelGguf on edited tensor tables", () => {
  async function validFile(): Promise<GgufFile> {
    return readGguf(validPath);
  }

  it("reports a ggml type it does not know instead of crashing", async () => {
    const file = await validFile();
    const first = file.tensors[0];
    if (first === undefined) throw new Error("no tensors");
    file.tensors[0] = { ...first, type: 77, byteSize: undefined };
    expect(() => checkModelGguf(file)).toThrow(
      expect.objectContaining({
        code: "IA_ERR_GGUF_TENSOR",
        message: expect.stringContaining(
          `${validPath}: tensor 'token_embd.weight': ggml type 77, which this llama.cpp does not know, shape [128, 2048]`,
        ),
      }),
    );
  });

  it("reports tensor offsets that do not follow each other", async () => {
    const file = await validFile();
    const second = file.tensors[1];
    if (second === undefined) throw new Error("no tensors");
    file.tensors[1] = { ...second, offset: second.offset + 32 };
    expect(() => checkModelGguf(file)).toThrow(
      expect.objectContaining({
        code: "IA_ERR_GGUF_TENSOR",
        message: expect.stringContaining("next tensor 'blk.0.attn_norm.weight' should start at data offset 278528; it starts at 278560"),
      }),
    );
  });

  it("reports nested metadata arrays, which llama.cpp cannot read", async () => {
    const file = await validFile();
    file.metadata.set("x.nested", { type: GgufValueType.ARRAY, value: { itemType: GgufValueType.ARRAY, items: [] } });
    expect(() => checkModelGguf(file)).toThrow(
      expect.objectContaining({ code: "IA_ERR_GGUF_MALFORMED", message: expect.stringContaining("'x.nested'") }),
    );
  });
});

describe("tensor types, row blocks and data sizes (what gguf.cpp would refuse)", () => {
  it("accepts the tiny synthetic model of every --type", async () => {
    for (const type of SYNTHETIC_WEIGHT_TYPES) {
      const path = join(dir, `tiny-${type}.gguf`);
      await writeSyntheticModel({ shape: "tiny", type, seed: 3, outPath: path });
      const summary = await validateModelFile(path);
      expect(summary.fileType, type).toBe(type.toUpperCase());
      expect(summary.tensorDataBytes).toBe(
        planSyntheticModel(SYNTHETIC_SHAPES.tiny, type).tensors.reduce((sum, t) => sum + (tensorByteSize(t.dims, t.type) ?? NaN), 0),
      );
    }
  });

  it("accepts Q4_K weights whose rows are whole 256-element blocks", async () => {
    const shape: SyntheticShape = { ...SYNTHETIC_SHAPES.tiny, embeddingLength: 256, headDim: 64, feedForwardLength: 512 };
    const path = await writeVariant(
      dir,
      "q4_k.gguf",
      (m, t) => ({
        metadata: without(m, "general.file_type"),
        tensors: t.map((x) => (x.role === "weight" || x.role === "embedding" ? { ...x, type: GgmlType.Q4_K } : x)),
      }),
      shape,
    );
    const summary = await validateModelFile(path);
    expect(summary).toMatchObject({ fileType: "Q4_K", embeddingLength: 256 });
  });

  it("refuses a Q8_0 tensor whose row length is not a multiple of 32, naming tensor, type and shape", async () => {
    // The same file with ffn_down in F16 is valid: only the block rule catches the retyped one.
    await validateModelFile(await writeVariant(dir, "ffn-400.gguf", (m, t) => ({ metadata: m, tensors: t }), FFN_400));
    const path = await writeRetyped(dir, "ffn-400-q8_0.gguf", "blk.0.ffn_down.weight", [400, 128], GgmlType.Q8_0, FFN_400);
    await expectRefusal(
      path,
      "IA_ERR_GGUF_TENSOR",
      "tensor 'blk.0.ffn_down.weight': type Q8_0 needs the first dimension to be a multiple of 32 (its block size), got [400, 128]",
    );
  });

  it("refuses K-quant rows that are not whole 256-element blocks", async () => {
    const path = await writeRetyped(dir, "q4_k-128.gguf", "blk.1.ffn_gate.weight", [128, 384], GgmlType.Q4_K);
    await expectRefusal(
      path,
      "IA_ERR_GGUF_TENSOR",
      "tensor 'blk.1.ffn_gate.weight': type Q4_K needs the first dimension to be a multiple of 256 (its block size), got [128, 384]",
    );
  });

  it("refuses removed and unknown ggml type ids", async () => {
    const removed: [number, string][] = [
      [4, "Q4_2"],
      [5, "Q4_3"],
      [31, "Q4_0_4_4"],
      [32, "Q4_0_4_8"],
      [33, "Q4_0_8_8"],
      [36, "IQ4_NL_4_4"],
      [37, "IQ4_NL_4_8"],
      [38, "IQ4_NL_8_8"],
    ];
    const template = await writeVariant(dir, "type-template.gguf", (m, t) => ({ metadata: m, tensors: t }));
    const bytes = await readFile(template);
    for (const [id, name] of [...removed, [43, undefined] as const, [255, undefined] as const]) {
      const path = join(dir, `type-${id}.gguf`);
      await writeFile(path, bytes);
      await editTensorTable(path, { "blk.2.attn_k.weight": { type: id } });
      const what =
        name === undefined ? `ggml type ${id}, which this llama.cpp does not know` : `ggml type ${id} (${name}), which ggml has removed`;
      await expectRefusal(path, "IA_ERR_GGUF_TENSOR", `tensor 'blk.2.attn_k.weight': ${what}, shape [128, 64]`, "0-3, 6-30, 34-35, 39-42");
    }
  });

  it("refuses a tensor retyped without rewriting its data (its size no longer fits before the next tensor)", async () => {
    const path = await writeVariant(dir, "retyped-f32.gguf", (m, t) => ({ metadata: m, tensors: t }));
    await editTensorTable(path, { "blk.0.attn_q.weight": { type: GgmlType.F32 } });
    await expectRefusal(
      path,
      "IA_ERR_GGUF_TENSOR",
      "tensor 'blk.0.attn_q.weight' (type F32, shape [128, 128]) takes 65536 bytes (65536 padded to general.alignment 32), so the next tensor 'blk.0.attn_q.bias'",
      "(32768 bytes after this one)",
    );
  });

  it("refuses a first tensor that does not start at data offset 0", async () => {
    const path = await writeVariant(dir, "first-offset.gguf", (m, t) => ({ metadata: m, tensors: t }));
    await editTensorTable(path, { "token_embd.weight": { offset: 32 } });
    await expectRefusal(
      path,
      "IA_ERR_GGUF_TENSOR",
      "tensor 'token_embd.weight' (type F16, shape [128, 2048]) is the first tensor",
      "it starts at 32",
    );
  });

  it("honours general.alignment: padded tensors pass, a table padded to another alignment does not", async () => {
    const alignment = (value: number): GgufMetadataEntry => ({ type: GgufValueType.UINT32, value });
    const path = await writeVariant(dir, "align-1024.gguf", (m, t) => ({
      metadata: [...m, ["general.alignment", alignment(1024)]],
      tensors: t,
    }));
    const file = await readGguf(path);
    // attn_k.bias is 64 F32 (256 bytes), padded to 1024.
    const names = file.tensors.map((t) => t.name);
    const kBias = names.indexOf("blk.0.attn_k.bias");
    expect((file.tensors[kBias + 1]?.offset ?? 0) - (file.tensors[kBias]?.offset ?? 0)).toBe(1024);
    await validateModelFile(path);
    // The same table read with the default 32-byte alignment: the padding after the first
    // norm (128 F32, 512 bytes) is too wide.
    expect(() => checkModelGguf({ ...file, alignment: 32 })).toThrow(
      expect.objectContaining({
        code: "IA_ERR_GGUF_TENSOR",
        message: expect.stringContaining(
          "tensor 'blk.0.attn_norm.weight' (type F32, shape [128]) takes 512 bytes (512 padded to general.alignment 32)",
        ),
      }),
    );
  });

  it("refuses tensor data that ends past the end of the file, naming the tensor", async () => {
    const path = join(dir, "cut-in-tensor.gguf");
    const file = await readGguf(validPath);
    const last = file.tensors.at(-1);
    const ffnDown = file.tensors.find((t) => t.name === "blk.3.ffn_down.weight");
    if (last === undefined || ffnDown === undefined) throw new Error("no tensors");
    await writeFile(path, validBytes.subarray(0, file.dataOffset + ffnDown.offset + 100));
    await expectRefusal(
      path,
      "IA_ERR_GGUF_TRUNCATED",
      "tensor 'blk.3.ffn_down.weight' (type Q8_0, shape [384, 128]) needs 52224 bytes",
      "truncated",
    );
  });
});
