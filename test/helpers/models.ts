import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { writeSyntheticModel } from "../../models/synth/syntheticModel.js";
import type { SyntheticWeightType } from "../../models/synth/syntheticModel.js";
import type { SyntheticShapeName } from "../../models/synth/syntheticShapes.js";

/** A fresh temp directory for one test file. */
export function tempDir(prefix = "iagent-test-"): string {
  return mkdtempSync(path.join(tmpdir(), prefix));
}

/** Writes a random-weight model with the project's own writer; nothing is downloaded. */
export async function synthModel(dir: string, shape: SyntheticShapeName = "tiny", type: SyntheticWeightType = "q8_0", seed = 1): Promise<string> {
  const outPath = path.join(dir, `${shape}-${type}-${seed}.gguf`);
  await writeSyntheticModel({ shape, type, seed, outPath });
  return outPath;
}
