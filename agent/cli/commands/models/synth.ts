import { mkdir } from "node:fs/promises";
import path from "node:path";
import { AgentError, EXIT_OK } from "../../../../common/errors.js";
import { createProgressBar } from "../../../../common/progressBar.js";
import { SYNTHETIC_WEIGHT_TYPES, writeSyntheticModel } from "../../../../models/synth/syntheticModel.js";
import type { SyntheticWeightType } from "../../../../models/synth/syntheticModel.js";
import { writeScriptedModel } from "../../../../models/synth/scriptedModel.js";
import { SYNTHETIC_SHAPE_NAMES } from "../../../../models/synth/syntheticShapes.js";
import type { SyntheticShapeName } from "../../../../models/synth/syntheticShapes.js";
import type { CommandSpec } from "../../commandSpec.js";
import { oneOf, text, wholeNumber } from "../../commandOption.js";

/**
 * `models synth`: a random-weight GGUF with a real model's tensor shapes. Its `--shape` and
 * `--seed` are the model's shape and the weights' seed: this command takes neither the
 * deployment shape nor the sampling seed, so the names mean one thing here.
 */

const SHAPES = [...SYNTHETIC_SHAPE_NAMES, "scripted"] as const;

interface SynthOptions {
  shape: SyntheticShapeName | "scripted";
  reply: string | undefined;
  afterTool: string | undefined;
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
    shape: { arg: "<shape>", help: "model shape; scripted: says --reply", choices: SHAPES, default: "tiny", parse: oneOf(SHAPES) },
    reply: { arg: "<text>", help: "with --shape scripted: the answer to any question", parse: text },
    afterTool: { arg: "<text>", help: "with --shape scripted: the answer once a tool result is in the context", parse: text },
    type: { arg: "<type>", help: "weight type", choices: SYNTHETIC_WEIGHT_TYPES, default: "q8_0", parse: oneOf(SYNTHETIC_WEIGHT_TYPES) },
    seed: { arg: "<n>", help: "seed for the random weights", default: "1", parse: wholeNumber(0) },
    out: { arg: "<file>", help: "output file (default: <models-dir>/synth-<shape>-<type>.gguf)", parse: text },
  },
  help: "Speed does not depend on weight values, so these files time the same kernels as the real models.",
  async run({ options, setUp }) {
    const { shape, type, seed } = options;
    const { config } = setUp();
    if (shape === "scripted") return writeScripted(options, config.modelsDir);
    if (options.reply !== undefined || options.afterTool !== undefined) {
      throw new AgentError("IA_ERR_USAGE", "--reply and --after-tool go with --shape scripted");
    }
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

/** `--shape scripted`: a model that answers any question with the given text (tests assert what answers say). */
async function writeScripted(options: SynthOptions, modelsDir: string): Promise<number> {
  if (options.reply === undefined) throw new AgentError("IA_ERR_USAGE", "--shape scripted needs --reply <text>: what the model says");
  const out = path.resolve(options.out ?? path.join(modelsDir, "synth-scripted.gguf"));
  await mkdir(path.dirname(out), { recursive: true });
  const result = await writeScriptedModel({ reply: options.reply, afterToolText: options.afterTool, outPath: out });
  process.stdout.write(
    `${out}: scripted, ${result.pieces} pieces, ${(result.bytes / 1e3).toFixed(0)} kB (says ${JSON.stringify(options.reply)})\n`,
  );
  return EXIT_OK;
}
