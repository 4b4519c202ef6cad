import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdir, mkdtemp, readFile, rm, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GgufValueType } from "../../models/gguf/ggufFormat.js";
import type { GgufMetadataEntry } from "../../models/gguf/ggufFormat.js";
import { validateModelFile } from "../../models/gguf/ggufValidator.js";
import { planSyntheticModel, writeSyntheticModel } from "../../models/synth/syntheticModel.js";
import { SYNTHETIC_SHAPES } from "../../models/synth/syntheticShapes.js";
import type { SyntheticShape } from "../../models/synth/syntheticShapes.js";
import { expectRefusal, replaced, without, writeVariant } from "../helpers/ggufVariants.js";

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
    const path = await writeVariant(dir, "no-ffn.gguf", (m, t) => ({ metadata: without(m, "qwen2.feed_forward_length"), tensors: t }));
    await expectRefusal(path, "IA_ERR_GGUF_METADATA", "'qwen2.feed_forward_length' is missing", "uint32");
  });

  it("refuses a well-formed GGUF without qwen2.attention.head_count", async () => {
    const path = await writeVariant(dir, "no-heads.gguf", (m, t) => ({ metadata: without(m, "qwen2.attention.head_count"), tensors: t }));
    await expectRefusal(path, "IA_ERR_GGUF_METADATA", "'qwen2.attention.head_count' is missing");
  });

  it("refuses metadata with the wrong type", async () => {
    const path = await writeVariant(dir, "u64-context.gguf", (m, t) => ({
      metadata: replaced(m, "qwen2.context_length", { type: GgufValueType.UINT64, value: 4096n }),
      tensors: t,
    }));
    await expectRefusal(path, "IA_ERR_GGUF_METADATA", "'qwen2.context_length' is a uint64; expected a uint32");
  });

  it("refuses a file without a vocabulary", async () => {
    const path = await writeVariant(dir, "no-tokens.gguf", (m, t) => ({ metadata: without(m, "tokenizer.ggml.tokens"), tensors: t }));
    await expectRefusal(path, "IA_ERR_GGUF_METADATA", "'tokenizer.ggml.tokens' is missing");
  });

  it("refuses an unsupported architecture, listing the supported ones", async () => {
    const path = await writeVariant(dir, "mamba.gguf", (m, t) => ({
      metadata: replaced(m, "general.architecture", { type: GgufValueType.STRING, value: "mamba" }),
      tensors: t,
    }));
    await expectRefusal(path, "IA_ERR_GGUF_ARCH", "'mamba'", "qwen2, qwen3, llama");
  });

  it("refuses a tensor shape that contradicts the metadata", async () => {
    const path = await writeVariant(dir, "wide-ffn.gguf", (m, t) => ({
      metadata: replaced(m, "qwen2.feed_forward_length", { type: GgufValueType.UINT32, value: 512 }),
      tensors: t,
    }));
    await expectRefusal(path, "IA_ERR_GGUF_TENSOR", "'blk.0.ffn_gate.weight' has shape [128, 384]; expected [128, 512]");
  });

  it("refuses a token embedding that does not match the vocabulary", async () => {
    const path = await writeVariant(dir, "short-embd.gguf", (m, t) => ({
      metadata: m,
      tensors: t.map((x) => (x.name === "token_embd.weight" ? { ...x, dims: [128, 2000] } : x)),
    }));
    await expectRefusal(path, "IA_ERR_GGUF_TENSOR", "'token_embd.weight' has shape [128, 2000]; expected [128, 2048]");
  });

  it("refuses a block count that differs from the blk.N groups", async () => {
    const fewer = await writeVariant(dir, "three-blocks.gguf", (m, t) => ({
      metadata: m,
      tensors: t.filter((x) => !x.name.startsWith("blk.3.")),
    }));
    await expectRefusal(fewer, "IA_ERR_GGUF_TENSOR", "'blk.3.attn_norm.weight' is missing");
    const more = await writeVariant(dir, "extra-block.gguf", (m, t) => ({
      metadata: m,
      tensors: [...t, { name: "blk.4.attn_norm.weight", dims: [128], role: "norm", type: 0 }],
    }));
    await expectRefusal(more, "IA_ERR_GGUF_TENSOR", "block 4", "block_count' is 4");
  });

  it("checks qwen3's q/k norms and its head width", async () => {
    const good = await writeVariant(dir, "qwen3.gguf", (m, t) => ({ metadata: m, tensors: t }), SYNTHETIC_SHAPES["tiny-qwen3"]);
    const summary = await validateModelFile(good);
    expect(summary).toMatchObject({ architecture: "qwen3", headDim: 64, embeddingLength: 128, kvBytesPerToken: 2 * 4 * 2 * 64 * 2 });
    const noNorm = await writeVariant(
      dir,
      "qwen3-no-norm.gguf",
      (m, t) => ({ metadata: m, tensors: t.filter((x) => x.name !== "blk.2.attn_k_norm.weight") }),
      SYNTHETIC_SHAPES["tiny-qwen3"],
    );
    await expectRefusal(noNorm, "IA_ERR_GGUF_TENSOR", "'blk.2.attn_k_norm.weight' is missing", "[64]");
  });

  it("lets llama files leave out head_count_kv (it defaults to head_count)", async () => {
    const shape: SyntheticShape = { ...SYNTHETIC_SHAPES.tiny, headCountKv: 4, qkvBias: false };
    const path = await writeVariant(
      dir,
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
