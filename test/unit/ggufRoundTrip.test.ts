import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtemp, open, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GgmlType, GgufValueType } from "../../models/gguf/ggufFormat.js";
import type { GgufMetadataEntry, GgufValue } from "../../models/gguf/ggufFormat.js";
import { readGguf } from "../../models/gguf/ggufReader.js";
import { layoutGguf, writeGguf } from "../../models/gguf/ggufWriter.js";
import { planSyntheticModel, syntheticMetadata, writeSyntheticModel } from "../../models/synth/syntheticModel.js";
import { SYNTHETIC_SHAPES } from "../../models/synth/syntheticShapes.js";
import { buildSyntheticVocabulary } from "../../models/synth/syntheticVocabulary.js";

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "ia-gguf-roundtrip-"));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** What a value reads back as: float32 loses precision, 64-bit integers come back as bigint. */
function asRead(type: GgufValueType, value: GgufValue): GgufValue {
  if (type === GgufValueType.FLOAT32 && typeof value === "number") return Math.fround(value);
  if ((type === GgufValueType.UINT64 || type === GgufValueType.INT64) && typeof value === "number") return BigInt(value);
  if (type === GgufValueType.ARRAY && typeof value === "object") {
    return { itemType: value.itemType, items: value.items.map((item) => asRead(value.itemType, item)) };
  }
  return value;
}

function expectedMap(entries: Iterable<readonly [string, GgufMetadataEntry]>): Map<string, GgufMetadataEntry> {
  return new Map([...entries].map(([key, entry]) => [key, { type: entry.type, value: asRead(entry.type, entry.value) }]));
}

describe("GGUF writer and reader", () => {
  it("read back a written tiny model: the same metadata and tensor table", async () => {
    const path = join(dir, "tiny.gguf");
    const result = await writeSyntheticModel({ shape: "tiny", type: "q8_0", seed: 3, outPath: path });
    const file = await readGguf(path);

    const shape = SYNTHETIC_SHAPES.tiny;
    const metadata = syntheticMetadata(shape, "q8_0", 3, buildSyntheticVocabulary({ size: shape.vocabSize, family: shape.family }));
    expect(file.metadata).toEqual(expectedMap(metadata));
    expect([...file.metadata.keys()]).toEqual(metadata.map(([key]) => key));

    const plan = planSyntheticModel(shape, "q8_0");
    const layout = layoutGguf(path, metadata, plan.tensors);
    expect(file.tensors).toEqual(layout.tensors);
    expect(file.tensors.map((t) => [t.name, t.dims, t.type])).toEqual(plan.tensors.map((t) => [t.name, t.dims, t.type]));
    expect(file.version).toBe(3);
    expect(file.alignment).toBe(32);
    expect(file.dataOffset).toBe(layout.dataOffset);
    expect(file.dataOffset % 32).toBe(0);
    expect(file.fileBytes).toBe(result.bytes);
    expect(result.bytes).toBe(layout.totalBytes);
  });

  it("round-trips every value type, nested arrays, a custom alignment and the tensor bytes", async () => {
    const path = join(dir, "values.gguf");
    const metadata: [string, GgufMetadataEntry][] = [
      ["general.alignment", { type: GgufValueType.UINT32, value: 64 }],
      ["t.u8", { type: GgufValueType.UINT8, value: 255 }],
      ["t.i8", { type: GgufValueType.INT8, value: -128 }],
      ["t.u16", { type: GgufValueType.UINT16, value: 65535 }],
      ["t.i16", { type: GgufValueType.INT16, value: -32768 }],
      ["t.u32", { type: GgufValueType.UINT32, value: 4294967295 }],
      ["t.i32", { type: GgufValueType.INT32, value: -2147483648 }],
      ["t.f32", { type: GgufValueType.FLOAT32, value: 0.1 }],
      ["t.bool", { type: GgufValueType.BOOL, value: true }],
      ["t.string", { type: GgufValueType.STRING, value: "héllo 的 <|im_end|>" }],
      ["t.u64", { type: GgufValueType.UINT64, value: 2n ** 64n - 1n }],
      ["t.i64", { type: GgufValueType.INT64, value: -(2n ** 63n) }],
      ["t.f64", { type: GgufValueType.FLOAT64, value: Math.PI }],
      ["t.empty", { type: GgufValueType.ARRAY, value: { itemType: GgufValueType.STRING, items: [] } }],
      ["t.floats", { type: GgufValueType.ARRAY, value: { itemType: GgufValueType.FLOAT32, items: [1.5, -2.25, 0] } }],
      [
        "t.nested",
        {
          type: GgufValueType.ARRAY,
          value: {
            itemType: GgufValueType.ARRAY,
            items: [
              { itemType: GgufValueType.INT32, items: [1, -2, 3] },
              { itemType: GgufValueType.STRING, items: ["a", ""] },
            ],
          },
        },
      ],
    ];
    const a = Float32Array.from({ length: 10 }, (_, i) => i + 0.5);
    const b = Buffer.from(Array.from({ length: 3 * 34 }, (_, i) => i % 251));
    await writeGguf(path, {
      metadata,
      version: 2,
      tensors: [
        { name: "a", dims: [10], type: GgmlType.F32, chunks: () => [Buffer.from(a.buffer)] },
        {
          name: "b",
          dims: [32, 3],
          type: GgmlType.Q8_0,
          chunks: async function* () {
            yield b.subarray(0, 50);
            yield b.subarray(50);
          },
        },
      ],
    });

    const file = await readGguf(path);
    expect(file.version).toBe(2);
    expect(file.metadata).toEqual(expectedMap(metadata));
    expect(file.alignment).toBe(64);
    expect(file.dataOffset % 64).toBe(0);
    expect(file.tensors).toEqual([
      { name: "a", dims: [10], type: GgmlType.F32, offset: 0, byteSize: 40 },
      { name: "b", dims: [32, 3], type: GgmlType.Q8_0, offset: 64, byteSize: 102 },
    ]);
    expect(file.fileBytes).toBe(file.dataOffset + 64 + 128);

    const handle = await open(path, "r");
    try {
      const readA = Buffer.alloc(40);
      const readB = Buffer.alloc(102);
      await handle.read(readA, 0, 40, file.dataOffset);
      await handle.read(readB, 0, 102, file.dataOffset + 64);
      expect(new Float32Array(readA.buffer, readA.byteOffset, 10)).toEqual(a);
      expect(readB.equals(b)).toBe(true);
    } finally {
      await handle.close();
    }
  });

  it("refuses a tensor whose producer yields the wrong number of bytes, and leaves no file behind", async () => {
    const path = join(dir, "short.gguf");
    const write = writeGguf(path, {
      metadata: [],
      tensors: [{ name: "a", dims: [8], type: GgmlType.F32, chunks: () => [Buffer.alloc(16)] }],
    });
    await expect(write).rejects.toMatchObject({ code: "IA_ERR_INTERNAL" });
    await expect(write).rejects.toThrow(/'a' produced 16 bytes; expected 32/);
    expect((await readdir(dir)).filter((name) => name.startsWith("short.gguf"))).toEqual([]);
  });

  it("refuses to write a row length that is not a whole number of blocks", () => {
    expect(() => layoutGguf("x.gguf", [], [{ name: "w", dims: [48, 2], type: GgmlType.Q8_0 }])).toThrow(
      expect.objectContaining({ code: "IA_ERR_GGUF_TENSOR", message: expect.stringContaining("x.gguf: tensor 'w'") }),
    );
  });

  it("reads a 151936-token vocabulary and its merges", async () => {
    const vocab = buildSyntheticVocabulary({ size: 151936 });
    const path = join(dir, "vocab.gguf");
    await writeGguf(path, {
      metadata: [
        ["tokenizer.ggml.tokens", { type: GgufValueType.ARRAY, value: { itemType: GgufValueType.STRING, items: vocab.tokens } }],
        ["tokenizer.ggml.token_type", { type: GgufValueType.ARRAY, value: { itemType: GgufValueType.INT32, items: vocab.tokenTypes } }],
        ["tokenizer.ggml.merges", { type: GgufValueType.ARRAY, value: { itemType: GgufValueType.STRING, items: vocab.merges } }],
      ],
      tensors: [],
    });
    const file = await readGguf(path);
    const tokens = file.metadata.get("tokenizer.ggml.tokens")?.value;
    const merges = file.metadata.get("tokenizer.ggml.merges")?.value;
    expect(tokens).toEqual({ itemType: GgufValueType.STRING, items: vocab.tokens });
    expect(merges).toEqual({ itemType: GgufValueType.STRING, items: vocab.merges });
    expect(file.metadata.get("tokenizer.ggml.token_type")?.value).toEqual({ itemType: GgufValueType.INT32, items: vocab.tokenTypes });
  });
});
