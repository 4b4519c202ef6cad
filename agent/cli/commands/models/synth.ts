import { mkdir } from "node:fs/promises";
import path from "node:path";
import { EXIT_OK } from "../../../../common/errors.js";
import { createProgressBar } from "../../../../common/progressBar.js";
import { SYNTHETIC_WEIGHT_TYPES, writeSyntheticModel } from "../../../../models/synth/syntheticModel.js";
import type { SyntheticWeightType } from "../../../../models/synth/syntheticModel.js";
import { SYNTHETIC_SHAPE_NAMES } from "../../../../models/synth/syntheticShapes.js";
import type { SyntheticShapeName } from "../../../../models/synth/syntheticShapes.js";
import type { CommandSpec } from "../../commandSpec.js";
import { oneOf, text, wholeNumber } from "../../commandOption.js";

/**
 * `models synth`: a random-weight GGUF with a real model's tensor shapes. Its `--shape` and
 * `--seed` are the model's shape and the weights' seed: this command takes neither the
 * deployment shape nor the sampling seed, so the names mean one thing here.
 */

interface SynthOptions {
  shape: SyntheticShapeName;
  type: SyntheticWeightType;
  seed: number;
  out: string | undefined;
}

export const modelsSynthCommand: CommandSpec<SynthOptions> = {
  name: "synth",
  description: "write a random-weight GGUF with the exact tensor shapes of a real model (for tests and benchmarks)",
  settings: ["modelsDir"],
  defaults: { logLevel: "warn" },
  options: {
    shape: { arg: "<shape>", help: "model shape", choices: SYNTHETIC_SHAPE_NAMES, default: "tiny", parse: oneOf(SYNTHETIC_SHAPE_NAMES) },
    type: { arg: "<type>", help: "weight type", choices: SYNTHETIC_WEIGHT_TYPES, default: "q8_0", parse: oneOf(SYNTHETIC_WEIGHT_TYPES) },
    seed: { arg: "<n>", help: "seed for the random weights", default: "1", parse: wholeNumber(0) },
    out: { arg: "<file>", help: "output file (default: <models-dir>/synth-<shape>-<type>.gguf)", parse: text },
  },
  help: "Speed does not depend on weight values, so these files time the same kernels as the real models.",
  async run({ options, setUp }) {
    const { shape, type, seed } = options;
    const { config } = setUp();
    const out = path.resolve(options.out ?? path.join(config.modelsDir, `synth-${shape}-${type}.gguf`));
    await mkdir(path.dirname(out), { recursive: true });
    const bar = createProgressBar({ label: `writing ${path.basename(out)}` });
    const result = await writeSyntheticModel({
      shape,
      type,
      seed,
      outPath: out,
      onProgress: (progress) => bar.update(progress.bytesWritten, progress.totalBytes),
    });
    bar.done();
    process.stdout.write(
      `${out}: ${shape} ${type}, ${result.tensorCount} tensors, ${(result.bytes / 1e6).toFixed(1)} MB (random weights)\n`,
    );
    return EXIT_OK;
  },
};
