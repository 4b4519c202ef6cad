import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdir, mkdtemp, readFile, rm, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GgmlType, GgufValueType, ggmlTypeInfo, tensorByteSize } from "../../models/gguf/ggufFormat.js";
import type { GgufFile, GgufMetadataEntry } from "../../models/gguf/ggufFormat.js";
import { readGguf } from "../../models/gguf/ggufReader.js";
import { checkModelGguf, validateModelFile } from "../../models/gguf/ggufValidator.js";
import { writeGguf } from "../../models/gguf/ggufWriter.js";
import type { GgufTensorSource } from "../../models/gguf/ggufWriter.js";
import { SYNTHETIC_WEIGHT_TYPES, planSyntheticModel, syntheticMetadata, writeSyntheticModel } from "../../models/synth/syntheticModel.js";
import type { SyntheticTensorPlan } from "../../models/synth/syntheticModel.js";
import { SYNTHETIC_SHAPES } from "../../models/synth/syntheticShapes.js";
import type { SyntheticShape } from "../../models/synth/syntheticShapes.js";
import { buildSyntheticVocabulary } from "../../models/synth/syntheticVocabulary.js";

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

type Entries = [string, GgufMetadataEntry][];

/** A tiny model written with zeroed tensor data, its metadata and tensors edited first. */
async function writeVariant(
  name: string,
  edit: (metadata: Entries, tensors: SyntheticTensorPlan[]) => { metadata: Entries; tensors: SyntheticTensorPlan[] },
  shape: SyntheticShape = SYNTHETIC_SHAPES.tiny,
): Promise<string> {
  const vocab = buildSyntheticVocabulary({ size: shape.vocabSize, family: shape.family });
  const edited = edit(syntheticMetadata(shape, "f16", 1, vocab), planSyntheticModel(shape, "f16").tensors);
  const path = join(dir, name);
  const sources: GgufTensorSource[] = edited.tensors.map((t) => ({
    name: t.name,
    dims: t.dims,
    type: t.type,
    chunks: () => [Buffer.alloc(tensorByteSize(t.dims, t.type) ?? 0)],
  }));
  await writeGguf(path, { metadata: edited.metadata, tensors: sources });
  return path;
}

/** What to change in one tensor-table entry after writing: same number of dimensions. */
interface TableEdit {
  dims?: number[];
  type?: number;
  offset?: number;
}

/**
 * Rewrites tensor-table entries of a GGUF in place (name, dim count, dims, type, offset:
 * fixed-size fields, so nothing moves). Makes the files the writer refuses to write.
 */
async function editTensorTable(path: string, edits: Record<string, TableEdit>): Promise<void> {
  const bytes = await readFile(path);
  const { dataOffset } = await readGguf(path);
  for (const [name, edit] of Object.entries(edits)) {
    const key = Buffer.alloc(8 + Buffer.byteLength(name));
    key.writeBigUInt64LE(BigInt(Buffer.byteLength(name)), 0);
    key.write(name, 8, "utf8");
    const at = bytes.subarray(0, dataOffset).lastIndexOf(key);
    if (at < 0) throw new Error(`no tensor '${name}' in ${path}`);
    let pos = at + key.length;
    const dimCount = bytes.readUInt32LE(pos);
    pos += 4;
    if (edit.dims !== undefined) {
      if (edit.dims.length !== dimCount) throw new Error(`'${name}' has ${dimCount} dims; the edit must keep that count`);
      edit.dims.forEach((dim, d) => bytes.writeBigUInt64LE(BigInt(dim), pos + 8 * d));
    }
    pos += 8 * dimCount;
    if (edit.type !== undefined) bytes.writeUInt32LE(edit.type, pos);
    pos += 4;
    if (edit.offset !== undefined) bytes.writeBigUInt64LE(BigInt(edit.offset), pos);
  }
  await writeFile(path, bytes);
}

/**
 * The bytes gguf.cpp would give a tensor of this type and shape if it did not check the
 * rows: elements / block size * block bytes.
 */
function naiveBytes(dims: readonly number[], type: number): number {
  const info = ggmlTypeInfo(type);
  if (info === undefined) throw new Error(`no type ${type}`);
  return (dims.reduce((a, b) => a * b, 1) / info.blockSize) * info.typeSize;
}

/**
 * A tiny model with one tensor given a type and shape the writer refuses: written as I8
 * [bytes, 1, ...] of exactly the bytes that type and shape would take, so the offsets and
 * the file size agree with the retyped entry, then the entry is rewritten.
 */
async function writeRetyped(
  name: string,
  tensor: string,
  dims: number[],
  type: number,
  shape: SyntheticShape = SYNTHETIC_SHAPES.tiny,
): Promise<string> {
  const bytes = naiveBytes(dims, type);
  const placeholder = [bytes, ...dims.slice(1).map(() => 1)];
  const path = await writeVariant(
    name,
    (m, t) => ({ metadata: m, tensors: t.map((x) => (x.name === tensor ? { ...x, dims: placeholder, type: GgmlType.I8 } : x)) }),
    shape,
  );
  await editTensorTable(path, { [tensor]: { dims, type } });
  return path;
}

/** Tiny's layout with a 400-wide FFN: ffn_down's rows (400) are whole F16 rows but not Q8_0 blocks. */
const FFN_400: SyntheticShape = { ...SYNTHETIC_SHAPES.tiny, feedForwardLength: 400 };

const without = (metadata: Entries, key: string): Entries => metadata.filter(([k]) => k !== key);
const replaced = (metadata: Entries, key: string, entry: GgufMetadataEntry): Entries =>
  metadata.map(([k, e]) => [k, k === key ? entry : e]);

async function expectRefusal(path: string, code: string, ...fragments: string[]): Promise<void> {
  const error = await validateModelFile(path).then(
    () => undefined,
    (e: unknown) => e as { code?: string; message?: string },
  );
  expect(error, `expected ${code} for ${path}`).toBeDefined();
  expect(error?.code).toBe(code);
  expect(error?.message).toContain(path);
  for (const fragment of fragments) expect(error?.message).toContain(fragment);
}

describe("validateModelFile", () => {
  it("accepts the tiny synthetic model and summarises it", async () => {
    const summary = await validateModelFile(validPath);
    expect(summary).toMatchObject({
      path: validPath,
      fileBytes: validBytes.length,
      architecture: "qwen2",
      fileType: "Q8_0",
      contextLength: 4096,
      embeddingLength: 128,
      blockCount: 4,
      feedForwardLength: 384,
      headCount: 4,
      headCountKv: 2,
      headDim: 32,
      vocabSize: 2048,
      hasChatTemplate: true,
      // 2 (K and V) * 4 blocks * 2 KV heads * 32 wide * 2 bytes (f16)
      kvBytesPerToken: 1024,
    });
    expect(summary.tensorDataBytes).toBeLessThanOrEqual(summary.fileBytes);
    expect(summary.parameterCount).toBe(planSyntheticModel(SYNTHETIC_SHAPES.tiny, "q8_0").parameterCount);
  });

  it("refuses a missing path", async () => {
    await expectRefusal(join(dir, "nope.gguf"), "IA_ERR_MODEL_NOT_FOUND");
  });

  it("refuses a directory", async () => {
    const path = join(dir, "a-directory.gguf");
    await mkdir(path);
    await expectRefusal(path, "IA_ERR_MODEL_NOT_FILE", "directory");
  });

  it("refuses an empty file", async () => {
    const path = join(dir, "empty.gguf");
    await writeFile(path, "");
    await expectRefusal(path, "IA_ERR_GGUF_EMPTY", "0 bytes");
  });

  it("refuses random bytes, saying what the first bytes were and that GGUF was expected", async () => {
    const path = join(dir, "random.gguf");
    await writeFile(path, Buffer.from("PK\u0003\u0004 this is a zip, not a model"));
    await expectRefusal(path, "IA_ERR_GGUF_MAGIC", '50 4b 03 04 ("PK..")', '"GGUF"');
  });

  it("refuses a file that ends inside the magic or the header", async () => {
    const twoBytes = join(dir, "two-bytes.gguf");
    await writeFile(twoBytes, "GG");
    await expectRefusal(twoBytes, "IA_ERR_GGUF_TRUNCATED");
    const header = join(dir, "header.gguf");
    await writeFile(header, validBytes.subarray(0, 12));
    await expectRefusal(header, "IA_ERR_GGUF_TRUNCATED", "the header");
  });

  it("refuses a file truncated inside the metadata", async () => {
    const path = join(dir, "metadata-cut.gguf");
    await writeFile(path, validBytes.subarray(0, 5000));
    await expectRefusal(path, "IA_ERR_GGUF_TRUNCATED", "metadata key", "ends at byte 5000");
  });

  it("refuses a file truncated inside the tensor data", async () => {
    const path = join(dir, "data-cut.gguf");
    await writeFile(path, validBytes);
    await truncate(path, validBytes.length - 1000);
    await expectRefusal(path, "IA_ERR_GGUF_TRUNCATED", "truncated", `${validBytes.length - 1000} bytes`);
  });

  it("refuses GGUF versions other than 2 and 3", async () => {
    for (const version of [1, 4, 0x03000000]) {
      const path = join(dir, `version-${version}.gguf`);
      const bytes = Buffer.from(validBytes);
      bytes.writeUInt32LE(version, 4);
      await writeFile(path, bytes);
      await expectRefusal(path, "IA_ERR_GGUF_VERSION", `version ${version}`, "expected version 2 or 3");
    }
  });

  it("refuses counts and lengths the file cannot hold instead of allocating them", async () => {
    const header = (tensors: bigint, kvs: bigint, rest: Buffer): Buffer => {
      const head = Buffer.alloc(24);
      head.write("GGUF", 0, "latin1");
      head.writeUInt32LE(3, 4);
      head.writeBigUInt64LE(tensors, 8);
      head.writeBigUInt64LE(kvs, 16);
      return Buffer.concat([head, rest]);
    };
    const hugeKey = Buffer.alloc(16);
    hugeKey.writeBigUInt64LE(2n ** 40n, 0);
    const hugeArray = Buffer.alloc(8 + 1 + 4 + 4 + 8);
    hugeArray.writeBigUInt64LE(1n, 0);
    hugeArray.write("k", 8);
    hugeArray.writeUInt32LE(GgufValueType.ARRAY, 9);
    hugeArray.writeUInt32LE(GgufValueType.UINT64, 13);
    hugeArray.writeBigUInt64LE(2n ** 50n, 17);
    const cases: [string, Buffer, string][] = [
      ["huge-kv-count", header(0n, 2n ** 60n, Buffer.alloc(64)), "metadata count"],
      ["huge-tensor-count", header(2n ** 40n, 0n, Buffer.alloc(64)), "tensor count"],
      ["huge-key", header(0n, 1n, hugeKey), "length"],
      ["huge-array", header(0n, 1n, hugeArray), "item count"],
    ];
    for (const [name, bytes, fragment] of cases) {
      const path = join(dir, `${name}.gguf`);
      await writeFile(path, bytes);
      await expectRefusal(path, "IA_ERR_GGUF_MALFORMED", fragment);
    }
  });

  it("refuses a well-formed GGUF without qwen2.feed_forward_length (llama.cpp would abort)", async () => {
    const path = await writeVariant("no-ffn.gguf", (m, t) => ({ metadata: without(m, "qwen2.feed_forward_length"), tensors: t }));
    await expectRefusal(path, "IA_ERR_GGUF_METADATA", "'qwen2.feed_forward_length' is missing", "uint32");
  });

  it("refuses a well-formed GGUF without qwen2.attention.head_count", async () => {
    const path = await writeVariant("no-heads.gguf", (m, t) => ({ metadata: without(m, "qwen2.attention.head_count"), tensors: t }));
    await expectRefusal(path, "IA_ERR_GGUF_METADATA", "'qwen2.attention.head_count' is missing");
  });

  it("refuses metadata with the wrong type", async () => {
    const path = await writeVariant("u64-context.gguf", (m, t) => ({
      metadata: replaced(m, "qwen2.context_length", { type: GgufValueType.UINT64, value: 4096n }),
      tensors: t,
    }));
    await expectRefusal(path, "IA_ERR_GGUF_METADATA", "'qwen2.context_length' is a uint64; expected a uint32");
  });

  it("refuses a file without a vocabulary", async () => {
    const path = await writeVariant("no-tokens.gguf", (m, t) => ({ metadata: without(m, "tokenizer.ggml.tokens"), tensors: t }));
    await expectRefusal(path, "IA_ERR_GGUF_METADATA", "'tokenizer.ggml.tokens' is missing");
  });

  it("refuses an unsupported architecture, listing the supported ones", async () => {
    const path = await writeVariant("mamba.gguf", (m, t) => ({
      metadata: replaced(m, "general.architecture", { type: GgufValueType.STRING, value: "mamba" }),
      tensors: t,
    }));
    await expectRefusal(path, "IA_ERR_GGUF_ARCH", "'mamba'", "qwen2, qwen3, llama");
  });

  it("refuses a tensor shape that contradicts the metadata", async () => {
    const path = await writeVariant("wide-ffn.gguf", (m, t) => ({
      metadata: replaced(m, "qwen2.feed_forward_length", { type: GgufValueType.UINT32, value: 512 }),
      tensors: t,
    }));
    await expectRefusal(path, "IA_ERR_GGUF_TENSOR", "'blk.0.ffn_gate.weight' has shape [128, 384]; expected [128, 512]");
  });

  it("refuses a token embedding that does not match the vocabulary", async () => {
    const path = await writeVariant("short-embd.gguf", (m, t) => ({
      metadata: m,
      tensors: t.map((x) => (x.name === "token_embd.weight" ? { ...x, dims: [128, 2000] } : x)),
    }));
    await expectRefusal(path, "IA_ERR_GGUF_TENSOR", "'token_embd.weight' has shape [128, 2000]; expected [128, 2048]");
  });

  it("refuses a block count that differs from the blk.N groups", async () => {
    const fewer = await writeVariant("three-blocks.gguf", (m, t) => ({
      metadata: m,
      tensors: t.filter((x) => !x.name.startsWith("blk.3.")),
    }));
    await expectRefusal(fewer, "IA_ERR_GGUF_TENSOR", "'blk.3.attn_norm.weight' is missing");
    const more = await writeVariant("extra-block.gguf", (m, t) => ({
      metadata: m,
      tensors: [...t, { name: "blk.4.attn_norm.weight", dims: [128], role: "norm", type: 0 }],
    }));
    await expectRefusal(more, "IA_ERR_GGUF_TENSOR", "block 4", "block_count' is 4");
  });

  it("checks qwen3's q/k norms and its head width", async () => {
    const good = await writeVariant("qwen3.gguf", (m, t) => ({ metadata: m, tensors: t }), SYNTHETIC_SHAPES["tiny-qwen3"]);
    const summary = await validateModelFile(good);
    expect(summary).toMatchObject({ architecture: "qwen3", headDim: 64, embeddingLength: 128, kvBytesPerToken: 2 * 4 * 2 * 64 * 2 });
    const noNorm = await writeVariant(
      "qwen3-no-norm.gguf",
      (m, t) => ({ metadata: m, tensors: t.filter((x) => x.name !== "blk.2.attn_k_norm.weight") }),
      SYNTHETIC_SHAPES["tiny-qwen3"],
    );
    await expectRefusal(noNorm, "IA_ERR_GGUF_TENSOR", "'blk.2.attn_k_norm.weight' is missing", "[64]");
  });

  it("lets llama files leave out head_count_kv (it defaults to head_count)", async () => {
    const shape: SyntheticShape = { ...SYNTHETIC_SHAPES.tiny, headCountKv: 4, qkvBias: false };
    const path = await writeVariant(
      "llama.gguf",
      (m, t) => ({
        metadata: m
          .filter(([k]) => k !== "qwen2.attention.head_count_kv")
          .map(([k, e]): [string, GgufMetadataEntry] => [
            k === "general.architecture" ? k : k.replace(/^qwen2\./, "llama."),
            k === "general.architecture" ? { type: GgufValueType.STRING, value: "llama" } : e,
          ]),
        tensors: t,
      }),
      shape,
    );
    const summary = await validateModelFile(path);
    expect(summary).toMatchObject({ architecture: "llama", headCount: 4, headCountKv: 4, kvBytesPerToken: 2 * 4 * 4 * 32 * 2 });
  });
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
    await validateModelFile(await writeVariant("ffn-400.gguf", (m, t) => ({ metadata: m, tensors: t }), FFN_400));
    const path = await writeRetyped("ffn-400-q8_0.gguf", "blk.0.ffn_down.weight", [400, 128], GgmlType.Q8_0, FFN_400);
    await expectRefusal(
      path,
      "IA_ERR_GGUF_TENSOR",
      "tensor 'blk.0.ffn_down.weight': type Q8_0 needs the first dimension to be a multiple of 32 (its block size), got [400, 128]",
    );
  });

  it("refuses K-quant rows that are not whole 256-element blocks", async () => {
    const path = await writeRetyped("q4_k-128.gguf", "blk.1.ffn_gate.weight", [128, 384], GgmlType.Q4_K);
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
    const template = await writeVariant("type-template.gguf", (m, t) => ({ metadata: m, tensors: t }));
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
    const path = await writeVariant("retyped-f32.gguf", (m, t) => ({ metadata: m, tensors: t }));
    await editTensorTable(path, { "blk.0.attn_q.weight": { type: GgmlType.F32 } });
    await expectRefusal(
      path,
      "IA_ERR_GGUF_TENSOR",
      "tensor 'blk.0.attn_q.weight' (type F32, shape [128, 128]) takes 65536 bytes (65536 padded to general.alignment 32), so the next tensor 'blk.0.attn_q.bias'",
      "(32768 bytes after this one)",
    );
  });

  it("refuses a first tensor that does not start at data offset 0", async () => {
    const path = await writeVariant("first-offset.gguf", (m, t) => ({ metadata: m, tensors: t }));
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
    const path = await writeVariant("align-1024.gguf", (m, t) => ({
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
