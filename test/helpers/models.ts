import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import type { GgufMetadataEntry } from "../../models/gguf/ggufFormat.js";
import { readGguf } from "../../models/gguf/ggufReader.js";
import { writeGguf } from "../../models/gguf/ggufWriter.js";
import { writeSyntheticModel } from "../../models/synth/syntheticModel.js";
import type { SyntheticWeightType } from "../../models/synth/syntheticModel.js";
import type { SyntheticShapeName } from "../../models/synth/syntheticShapes.js";

const madeDirs = new Set<string>();
// Test models are up to half a gigabyte: leave none behind when the test process ends.
process.once("exit", () => {
  for (const dir of madeDirs) rmSync(dir, { recursive: true, force: true });
});

/** A fresh temp directory for one test file, removed when the test process exits. */
export function tempDir(prefix = "iagent-test-"): string {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  madeDirs.add(dir);
  return dir;
}

/** Writes a random-weight model with the project's own writer; nothing is downloaded. */
export async function synthModel(
  dir: string,
  shape: SyntheticShapeName = "tiny",
  type: SyntheticWeightType = "q8_0",
  seed = 1,
): Promise<string> {
  const outPath = path.join(dir, `${shape}-${type}-${seed}.gguf`);
  await writeSyntheticModel({ shape, type, seed, outPath });
  return outPath;
}

/**
 * Copies a GGUF with its metadata edited and its tensors as they were: makes well-formed
 * files that lack a key llama.cpp needs (the kind that aborts it) without a hand-built file.
 */
export async function rewriteGguf(
  source: string,
  target: string,
  edit: (metadata: Map<string, GgufMetadataEntry>) => void,
): Promise<string> {
  const file = await readGguf(source);
  const metadata = new Map(file.metadata);
  edit(metadata);
  const bytes = readFileSync(source);
  await writeGguf(target, {
    metadata,
    version: file.version,
    tensors: file.tensors.map((tensor) => ({
      name: tensor.name,
      dims: tensor.dims,
      type: tensor.type,
      chunks: () => {
        const start = file.dataOffset + tensor.offset;
        return [bytes.subarray(start, start + (tensor.byteSize ?? 0))];
      },
    })),
  });
  return target;
}

/** How integration tests run the agent on a synthetic model: that file, no mlock, one thread (the other core is the test's). */
export function modelArgs(model: string): string[] {
  return ["--model", model, "--mlock", "off", "--threads", "1"];
}
