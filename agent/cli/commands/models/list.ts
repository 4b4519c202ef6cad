import path from "node:path";
import { EXIT_OK } from "../../../../common/errors.js";
import { listCatalog } from "../../../../models/catalog.js";
import { ModelStore } from "../../../../models/modelStore.js";
import type { CommandSpec } from "../../commandSpec.js";

/** `models list`: the catalog, and which entries are in the models folder. */
export const modelsListCommand: CommandSpec<Record<never, never>> = {
  name: "list",
  description: "the catalog of Qwen GGUF builds and which are present in --models-dir (--json)",
  settings: ["modelsDir", "json"],
  defaults: { logLevel: "warn" },
  options: {},
  async run({ setUp }) {
    const { config } = setUp();
    const store = new ModelStore(config.modelsDir);
    const rows = listCatalog().map((entry) => ({ ...entry, present: store.has(entry.fileName) }));
    if (config.json) {
      process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
      return EXIT_OK;
    }
    const lines = rows.map((r) => `${r.present ? "*" : " "} ${r.id.padEnd(32)} ${(r.sizeBytes / 1e6).toFixed(0).padStart(6)} MB  ${r.uri}`);
    process.stdout.write(
      `  ${"id".padEnd(32)} ${"size".padStart(9)}  source\n${lines.join("\n")}\n\n* present in ${path.resolve(config.modelsDir)}\n`,
    );
    return EXIT_OK;
  },
};
