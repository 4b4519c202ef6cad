import { AgentError, EXIT_OK } from "../../../../common/errors.js";
import { validateModelFile } from "../../../../models/gguf/ggufValidator.js";
import { resolveModel } from "../../../../models/modelResolver.js";
import type { CommandSpec } from "../../commandSpec.js";

/** `models pull`: download with progress, resume and checksum, then validate. */
export const modelsPullCommand: CommandSpec<Record<never, never>> = {
  name: "pull",
  description: "download a catalog model or hf: URI with progress, resume and checksum",
  arguments: [{ syntax: "<id-or-uri>", help: "catalog id (see `models list`), hf:<user>/<repo>/<file> or an http(s) URL" }],
  settings: ["modelsDir", "modelMirror"],
  defaults: { logLevel: "warn" },
  options: {},
  async run({ args, setUp }) {
    const { config, logger } = setUp();
    const idOrUri = args[0] ?? "";
    if (idOrUri === "demo")
      throw new AgentError("IA_ERR_USAGE", "models pull demo: the demo model is synthesized, not downloaded (use --model demo)");
    const resolved = await resolveModel(idOrUri, { modelsDir: config.modelsDir, mirror: config.modelMirror, logger });
    const summary = await validateModelFile(resolved.path);
    process.stdout.write(
      `${resolved.path}: ${summary.architecture} ${summary.fileType}, ${(summary.fileBytes / 1e6).toFixed(1)} MB, valid\n`,
    );
    return EXIT_OK;
  },
};
