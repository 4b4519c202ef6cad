// Writes the single-file ESM bundle dist/instrument-agent.mjs and prints its size.
// node-llama-cpp and serialport's native binding stay external: both read files that sit
// beside them in node_modules (prebuilt binaries, llama.cpp sources), which a bundle
// cannot carry.
import { build } from "esbuild";
import { chmodSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const { version } = JSON.parse(readFileSync(path.join(root, "package.json"), "utf8"));
const outfile = path.join(root, "dist", "instrument-agent.mjs");

await build({
  entryPoints: [path.join(root, "agent", "main.ts")],
  outfile,
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  external: ["node-llama-cpp", "@serialport/bindings-cpp"],
  define: { __IAGENT_VERSION__: JSON.stringify(version) },
  // Some CommonJS dependencies (mqtt) call require(); ESM output has none of its own.
  banner: {
    js: "#!/usr/bin/env node\nimport { createRequire as __iagentCreateRequire } from 'node:module';\nconst require = __iagentCreateRequire(import.meta.url);",
  },
  legalComments: "none",
  logLevel: "warning",
});
chmodSync(outfile, 0o755);
const bytes = statSync(outfile).size;
console.log(`${path.relative(process.cwd(), outfile)}: ${(bytes / 1024).toFixed(0)} KiB`);
