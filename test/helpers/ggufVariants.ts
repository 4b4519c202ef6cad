import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { expect } from "vitest";
import { GgmlType, ggmlTypeInfo, tensorByteSize } from "../../models/gguf/ggufFormat.js";
import type { GgufMetadataEntry } from "../../models/gguf/ggufFormat.js";
import { readGguf } from "../../models/gguf/ggufReader.js";
import { validateModelFile } from "../../models/gguf/ggufValidator.js";
import { writeGguf } from "../../models/gguf/ggufWriter.js";
import type { GgufTensorSource } from "../../models/gguf/ggufWriter.js";
import { planSyntheticModel, syntheticMetadata } from "../../models/synth/syntheticModel.js";
import type { SyntheticTensorPlan } from "../../models/synth/syntheticModel.js";
import { SYNTHETIC_SHAPES } from "../../models/synth/syntheticShapes.js";
import type { SyntheticShape } from "../../models/synth/syntheticShapes.js";
import { buildSyntheticVocabulary } from "../../models/synth/syntheticVocabulary.js";

// Model files llama.cpp would refuse or abort on, made from the tiny synthetic model by editing
// its metadata and tensor table, and the refusal the validator must give for them.

export type Entries = [string, GgufMetadataEntry][];

/** A tiny model written with zeroed tensor data, its metadata and tensors edited first. */
export async function writeVariant(
  dir: string,
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
export interface TableEdit {
  dims?: number[];
  type?: number;
  offset?: number;
}

/**
 * Rewrites tensor-table entries of a GGUF in place (name, dim count, dims, type, offset:
 * fixed-size fields, so nothing moves). Makes the files the writer refuses to write.
 */
export async function editTensorTable(path: string, edits: Record<string, TableEdit>): Promise<void> {
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
export function naiveBytes(dims: readonly number[], type: number): number {
  const info = ggmlTypeInfo(type);
  if (info === undefined) throw new Error(`no type ${type}`);
  return (dims.reduce((a, b) => a * b, 1) / info.blockSize) * info.typeSize;
}

/**
 * A tiny model with one tensor given a type and shape the writer refuses: written as I8
 * [bytes, 1, ...] of exactly the bytes that type and shape would take, so the offsets and
 * the file size agree with the retyped entry, then the entry is rewritten.
 */
export async function writeRetyped(
  dir: string,
  name: string,
  tensor: string,
  dims: number[],
  type: number,
  shape: SyntheticShape = SYNTHETIC_SHAPES.tiny,
): Promise<string> {
  const bytes = naiveBytes(dims, type);
  const placeholder = [bytes, ...dims.slice(1).map(() => 1)];
  const path = await writeVariant(
    dir,
    name,
    (m, t) => ({ metadata: m, tensors: t.map((x) => (x.name === tensor ? { ...x, dims: placeholder, type: GgmlType.I8 } : x)) }),
    shape,
  );
  await editTensorTable(path, { [tensor]: { dims, type } });
  return path;
}

/** Tiny's layout with a 400-wide FFN: ffn_down's rows (400) are whole F16 rows but not Q8_0 blocks. */
export const FFN_400: SyntheticShape = { ...SYNTHETIC_SHAPES.tiny, feedForwardLength: 400 };

export const without = (metadata: Entries, key: string): Entries => metadata.filter(([k]) => k !== key);
export const replaced = (metadata: Entries, key: string, entry: GgufMetadataEntry): Entries =>
  metadata.map(([k, e]) => [k, k === key ? entry : e]);

export async function expectRefusal(path: string, code: string, ...fragments: string[]): Promise<void> {
  const error = await validateModelFile(path).then(
    () => undefined,
    (e: unknown) => e as { code?: string; message?: string },
  );
  expect(error, `expected ${code} for ${path}`).toBeDefined();
  expect(error?.code).toBe(code);
  expect(error?.message).toContain(path);
  for (const fragment of fragments) expect(error?.message).toContain(fragment);
}
