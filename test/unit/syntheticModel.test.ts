import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtemp, open, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GgmlType, TokenType } from "../../models/gguf/ggufFormat.js";
import type { GgufFile } from "../../models/gguf/ggufFormat.js";
import { readGguf } from "../../models/gguf/ggufReader.js";
import { checkModelGguf, validateModelFile } from "../../models/gguf/ggufValidator.js";
import { layoutGguf } from "../../models/gguf/ggufWriter.js";
import { halfBits, planSyntheticModel, syntheticMetadata, writeSyntheticModel } from "../../models/synth/syntheticModel.js";
import type { SyntheticWeightType } from "../../models/synth/syntheticModel.js";
import { SYNTHETIC_SHAPES, syntheticShape } from "../../models/synth/syntheticShapes.js";
import type { SyntheticShape } from "../../models/synth/syntheticShapes.js";
import { buildSyntheticVocabulary, bytesToUnicode } from "../../models/synth/syntheticVocabulary.js";

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "ia-synth-"));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** The file the writer would produce, as the reader would see it, without writing the data. */
function plannedFile(shape: SyntheticShape, type: SyntheticWeightType): GgufFile {
  const vocab = buildSyntheticVocabulary({ size: shape.vocabSize, family: shape.family });
  const metadata = syntheticMetadata(shape, type, 1, vocab);
  const layout = layoutGguf(`${shape.name}.gguf`, metadata, planSyntheticModel(shape, type).tensors);
  return {
    path: `${shape.name}.gguf`,
    version: 3,
    metadata: new Map(metadata),
    tensors: layout.tensors,
    alignment: layout.alignment,
    dataOffset: layout.dataOffset,
    fileBytes: layout.totalBytes,
  };
}

function decodeHalf(bits: number): number {
  const exponent = (bits >> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  const sign = bits & 0x8000 ? -1 : 1;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 31) return mantissa === 0 ? sign * Infinity : NaN;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

async function tensorBytes(file: GgufFile, name: string): Promise<Buffer> {
  const tensor = file.tensors.find((t) => t.name === name);
  if (tensor?.byteSize === undefined) throw new Error(`no tensor ${name}`);
  const handle = await open(file.path, "r");
  try {
    const bytes = Buffer.alloc(tensor.byteSize);
    await handle.read(bytes, 0, bytes.length, file.dataOffset + tensor.offset);
    return bytes;
  } finally {
    await handle.close();
  }
}

describe("writeSyntheticModel", () => {
  it("writes a tiny model that validates", async () => {
    const outPath = join(dir, "tiny-q4.gguf");
    const progress: number[] = [];
    const result = await writeSyntheticModel({
      shape: "tiny",
      type: "q4_0",
      seed: 5,
      outPath,
      onProgress: (p) => progress.push(p.bytesWritten),
    });
    expect(result).toMatchObject({ path: outPath, shape: "tiny", type: "q4_0", seed: 5, tensorCount: 50 });
    expect(progress.at(-1)).toBe(result.bytes);
    expect(result.bytes).toBeLessThan(4_000_000);
    const summary = await validateModelFile(outPath);
    expect(summary).toMatchObject({ architecture: "qwen2", fileType: "Q4_0", vocabSize: 2048, fileBytes: result.bytes });
  });

  it("is deterministic for a seed and differs for another seed", async () => {
    const write = (name: string, seed: number) =>
      writeSyntheticModel({ shape: "tiny-qwen3", type: "f16", seed, outPath: join(dir, name), sha256: true });
    const [a, b, c] = [await write("a.gguf", 42), await write("b.gguf", 42), await write("c.gguf", 43)];
    expect(a.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(b.sha256).toBe(a.sha256);
    expect(c.sha256).not.toBe(a.sha256);
    expect(c.bytes).toBe(a.bytes);
  });

  it("writes sane weights: finite small f16 values, valid Q8_0 block scales, norms near 1", async () => {
    const f16 = await readGguf((await writeSyntheticModel({ shape: "tiny", type: "f16", seed: 9, outPath: join(dir, "f16.gguf") })).path);
    const q8 = await readGguf((await writeSyntheticModel({ shape: "tiny", type: "q8_0", seed: 9, outPath: join(dir, "q8.gguf") })).path);

    const halves = await tensorBytes(f16, "blk.0.ffn_down.weight");
    const values = Array.from({ length: halves.length / 2 }, (_, i) => decodeHalf(halves.readUInt16LE(i * 2)));
    expect(values.every((v) => Number.isFinite(v) && Math.abs(v) <= 1 / Math.sqrt(384))).toBe(true);
    expect(values.some((v) => v < 0) && values.some((v) => v > 0)).toBe(true);

    const blocks = await tensorBytes(q8, "token_embd.weight");
    for (let at = 0; at < blocks.length; at += 34 * 97) {
      const scale = decodeHalf(blocks.readUInt16LE(at));
      expect(scale).toBeGreaterThan(0);
      expect(scale * 127).toBeLessThan(0.05);
    }

    const norm = await tensorBytes(q8, "blk.1.attn_norm.weight");
    const norms = new Float32Array(norm.buffer, norm.byteOffset, norm.length / 4);
    expect(norms.every((v) => v > 0.9 && v < 1.1)).toBe(true);
  });

  it("refuses an unknown shape name, listing the known ones", () => {
    expect(() => syntheticShape("qwen9-100b")).toThrow(
      expect.objectContaining({ code: "IA_ERR_USAGE", message: expect.stringContaining("qwen2.5-0.5b") }),
    );
  });
});

describe("synthetic shapes have the real tensor tables", () => {
  it("qwen2.5-0.5b: 290 tensors with Qwen2.5-0.5B's shapes and 494,032,768 parameters", () => {
    const plan = planSyntheticModel(SYNTHETIC_SHAPES["qwen2.5-0.5b"], "q8_0");
    expect(plan.tensors).toHaveLength(290);
    expect(plan.parameterCount).toBe(494_032_768);
    const dims = new Map(plan.tensors.map((t) => [t.name, t.dims]));
    expect(dims.get("token_embd.weight")).toEqual([896, 151936]);
    expect(dims.get("output_norm.weight")).toEqual([896]);
    expect(dims.has("output.weight")).toBe(false);
    for (let i = 0; i < 24; i++) {
      const block = plan.tensors.filter((t) => t.name.startsWith(`blk.${i}.`)).map((t) => [t.name.slice(`blk.${i}.`.length), t.dims]);
      expect(Object.fromEntries(block)).toEqual({
        "attn_norm.weight": [896],
        "attn_q.weight": [896, 896],
        "attn_q.bias": [896],
        "attn_k.weight": [896, 128],
        "attn_k.bias": [128],
        "attn_v.weight": [896, 128],
        "attn_v.bias": [128],
        "attn_output.weight": [896, 896],
        "ffn_norm.weight": [896],
        "ffn_gate.weight": [896, 4864],
        "ffn_up.weight": [896, 4864],
        "ffn_down.weight": [4864, 896],
      });
    }
    expect(plan.tensors.filter((t) => t.type === GgmlType.Q8_0)).toHaveLength(1 + 24 * 7);
    expect(plan.tensors.filter((t) => t.type === GgmlType.F32)).toHaveLength(1 + 24 * 5);
  });

  it("qwen2.5-1.5b has 1,543,714,304 parameters and qwen3-0.6b 596,049,920", () => {
    expect(planSyntheticModel(SYNTHETIC_SHAPES["qwen2.5-1.5b"], "f16").parameterCount).toBe(1_543_714_304);
    const qwen3 = planSyntheticModel(SYNTHETIC_SHAPES["qwen3-0.6b"], "q4_0");
    expect(qwen3.parameterCount).toBe(596_049_920);
    const dims = new Map(qwen3.tensors.map((t) => [t.name, t.dims]));
    expect(dims.get("blk.0.attn_q.weight")).toEqual([1024, 2048]);
    expect(dims.get("blk.0.attn_k.weight")).toEqual([1024, 1024]);
    expect(dims.get("blk.0.attn_output.weight")).toEqual([2048, 1024]);
    expect(dims.get("blk.27.attn_q_norm.weight")).toEqual([128]);
    expect(dims.has("blk.0.attn_q.bias")).toBe(false);
  });

  it("every shape's planned file passes the validator, with the f16 KV bytes per token", () => {
    const expectedKv: Record<string, number> = {
      tiny: 2 * 4 * 2 * 32 * 2,
      "tiny-qwen3": 2 * 4 * 2 * 64 * 2,
      "qwen2.5-0.5b": 2 * 24 * 2 * 64 * 2,
      "qwen2.5-1.5b": 2 * 28 * 2 * 128 * 2,
      "qwen3-0.6b": 2 * 28 * 8 * 128 * 2,
    };
    for (const shape of Object.values(SYNTHETIC_SHAPES)) {
      const summary = checkModelGguf(plannedFile(shape, "q8_0"));
      expect(summary.kvBytesPerToken, shape.name).toBe(expectedKv[shape.name]);
      expect(summary.vocabSize).toBe(shape.vocabSize);
      expect(summary.contextLength).toBe(shape.contextLength);
    }
  });
});

describe("buildSyntheticVocabulary", () => {
  it("builds Qwen's layout at the real size, with merges that make existing tokens", () => {
    const vocab = buildSyntheticVocabulary({ size: 151936 });
    expect(vocab.tokens).toHaveLength(151936);
    expect(vocab.tokenTypes).toHaveLength(151936);
    expect(new Set(vocab.tokens).size).toBe(151936);
    expect(vocab.tokens.slice(151643, 151646)).toEqual(["<|endoftext|>", "<|im_start|>", "<|im_end|>"]);
    expect(vocab.tokenTypes.slice(151643, 151646)).toEqual([TokenType.CONTROL, TokenType.CONTROL, TokenType.CONTROL]);
    expect(vocab.eosTokenId).toBe(151645);
    expect(vocab.tokens[151665]).toBe("[PAD151665]");
    expect(vocab.tokenTypes[151935]).toBe(TokenType.UNUSED);
    expect(vocab.merges).toHaveLength(151643 - 256);

    const byteTokens = bytesToUnicode();
    expect(new Set(vocab.tokens.slice(0, 256))).toEqual(new Set(byteTokens));
    expect(vocab.tokens[220]).toBe("Ġ");
    expect(vocab.tokens[198]).toBe("Ċ");

    const known = new Set(vocab.tokens);
    for (const merge of vocab.merges) {
      const [left, right, ...rest] = merge.split(" ");
      if (
        rest.length > 0 ||
        left === undefined ||
        right === undefined ||
        !known.has(left) ||
        !known.has(right) ||
        !known.has(left + right)
      ) {
        throw new Error(`inconsistent merge '${merge}'`);
      }
    }
  });

  it("keeps the control tokens right after the BPE part for small sizes", () => {
    const vocab = buildSyntheticVocabulary({ size: 2048, family: "qwen3" });
    expect(vocab.tokens).toHaveLength(2048);
    expect(vocab.tokens[vocab.imEndId]).toBe("<|im_end|>");
    expect(vocab.tokens.indexOf("<think>")).toBeGreaterThan(vocab.imEndId);
    expect(vocab.bpeTokenCount).toBe(2048 - 3 - 32);
  });

  it("encodes the f16 scale it writes", () => {
    expect(decodeHalf(halfBits(0.02 / 127))).toBeCloseTo(0.02 / 127, 7);
    expect(decodeHalf(halfBits(1))).toBe(1);
  });
});
