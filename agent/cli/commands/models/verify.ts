import path from "node:path";
import { EXIT_CHECK_FAILED, EXIT_OK, toAgentError } from "../../../../common/errors.js";
import { listCatalog } from "../../../../models/catalog.js";
import { validateModelFile } from "../../../../models/gguf/ggufValidator.js";
import type { ModelFileSummary } from "../../../../models/gguf/ggufValidator.js";
import { ModelStore } from "../../../../models/modelStore.js";
import type { CommandSpec } from "../../commandSpec.js";
import { text } from "../../commandOption.js";

/** `models verify`: the GGUF checks and the SHA-256, each reported; exit 3 when one fails. */

interface VerifyOptions {
  sha256: string | undefined;
}

function renderGguf(summary: ModelFileSummary): string {
  return `ok    GGUF: ${summary.architecture} ${summary.fileType}, ${summary.blockCount} blocks, embedding ${summary.embeddingLength}\n`;
}

export const modelsVerifyCommand: CommandSpec<VerifyOptions> = {
  name: "verify",
  description: "validate a GGUF file and its SHA-256 (exit 3 when a check fails)",
  arguments: [{ syntax: "<file>", help: "the model file" }],
  settings: ["json"],
  defaults: { logLevel: "warn" },
  options: {
    sha256: { arg: "<hex>", help: "expected SHA-256 (default: the catalog's or the one recorded at download)", parse: text },
  },
  async run({ args, options, setUp }) {
    const file = args[0] ?? "";
    const expected = options.sha256?.toLowerCase();
    const { config } = setUp();
    const report: Record<string, unknown> = { file: path.resolve(file) };
    let summary: ModelFileSummary;
    try {
      summary = await validateModelFile(file);
      report.gguf = { ok: true, ...summary };
    } catch (error) {
      const agentError = toAgentError(error);
      report.gguf = { ok: false, error: agentError.toJSON() };
      report.ok = false;
      if (config.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      else process.stdout.write(`FAIL  ${agentError.code}: ${agentError.message}\n`);
      return EXIT_CHECK_FAILED;
    }
    const store = new ModelStore(path.dirname(path.resolve(file)));
    const catalogSha = listCatalog().find((e) => e.fileName === path.basename(file))?.sha256 ?? undefined;
    const check = await store.verifyFile(path.resolve(file), expected ?? catalogSha ?? undefined);
    report.checksum = check;
    report.ok = check.ok;
    if (config.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    else {
      process.stdout.write(renderGguf(summary));
      process.stdout.write(
        check.expected
          ? `${check.ok ? "ok  " : "FAIL"}  SHA-256 ${check.actual}${check.ok ? "" : ` (expected ${check.expected})`}\n`
          : `ok    SHA-256 ${check.actual} (nothing recorded to compare with)\n`,
      );
    }
    return check.ok ? EXIT_OK : EXIT_CHECK_FAILED;
  },
};
