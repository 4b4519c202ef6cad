import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { unbuiltCheckout } from "../helpers/bundle.js";
import { runCommand } from "../helpers/packRelease.js";

// The import rule of docs/ARCHITECTURE.md bites: `npm run lint:imports`, which `npm test` runs
// before any test, fails on an import that breaks it, in a copy of the sources.
let copy: string;

beforeAll(() => {
  copy = unbuiltCheckout(mkdtempSync(path.join(tmpdir(), "ia-imports-")), [".dependency-cruiser.cjs"]);
});
afterAll(() => rmSync(copy, { recursive: true, force: true }));

function lintImports() {
  return runCommand("npm", ["run", "-s", "lint:imports"], { cwd: copy });
}

/** Writes `file` into the copy, runs the check, and removes it again. */
async function lintWith(file: string, source: string) {
  const target = path.join(copy, file);
  writeFileSync(target, source);
  try {
    return await lintImports();
  } finally {
    rmSync(target);
  }
}

describe("the import rule", () => {
  it("passes on the sources as they are", async () => {
    const result = await lintImports();
    expect(result.stdout + result.stderr).toContain("no dependency violations found");
    expect(result.code).toBe(0);
  });

  it.each([
    ["common/leak.ts", "common-is-a-leaf", 'import "../agent/config/config.js";\n'],
    ["models/leak.ts", "models-and-bridge-stand-alone", 'import "../agent/service/answerService.js";\n'],
    ["agent/service/leak.ts", "only-the-engine-imports-node-llama-cpp", 'import "node-llama-cpp";\n'],
    ["agent/diagnostics/leak.ts", "only-the-mqtt-folder-imports-mqtt-and-aedes", 'import "mqtt";\n'],
    ["agent/host/leak.ts", "only-the-serial-link-imports-serialport", 'import "serialport";\n'],
    ["agent/service/leak.ts", "only-the-mcp-folder-imports-the-mcp-sdk", 'import "@modelcontextprotocol/sdk/server/mcp.js";\n'],
    ["agent/transports/serial/leak.ts", "transports-never-import-each-other", 'import "../mqtt/askVia.js";\n'],
  ])("fails on %s, naming the rule %s", async (file, rule, source) => {
    const result = await lintWith(file, source);
    expect(result.code).not.toBe(0);
    expect(result.stdout + result.stderr).toContain(`error ${rule}: ${file}`);
  });
});
