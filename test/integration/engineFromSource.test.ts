import { spawn } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { unbuiltCheckout } from "../helpers/bundle.js";
import { modelArgs, synthModel, tempDir } from "../helpers/models.js";

// A checkout that was never built (no dist/), as `npm ci && npm start` meets it: the engine
// child process must run the same source as the agent, not a bundle that is not there.
const dir = tempDir("iagent-from-source-");
const copy = path.join(dir, "checkout");
let model: string;

function runFromSource(args: string[]): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    // What `npm start -- <args>` runs, from the copy's own folder.
    const child = spawn(process.execPath, ["--import", "tsx", "agent/main.ts", ...args], {
      cwd: copy,
      env: { ...process.env, NO_COLOR: "1" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), 90_000);
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

beforeAll(async () => {
  unbuiltCheckout(copy);
  model = await synthModel(dir);
});

describe("the engine process from a checkout without a build", () => {
  it("answers with the default engine, and there is still no dist/", async () => {
    const result = await runFromSource([
      "ask",
      ...modelArgs(model),
      "--temperature",
      "0",
      "--seed",
      "1",
      "--max-tokens",
      "8",
      "--json",
      "hello",
    ]);
    expect(result.stderr).not.toContain("dist");
    expect(result.signal).toBeNull();
    expect(result.code).toBe(0);
    const answer = JSON.parse(result.stdout) as { text: string; usage: { completionTokens: number } };
    expect(answer.usage.completionTokens).toBe(8);
    expect(existsSync(path.join(copy, "dist"))).toBe(false);
  });

  it("runs the edited source in the engine: a change in the engine's code is live without a build", async () => {
    // The engine worker announces itself in its log; an edit to that line must show up at once.
    const worker = path.join(copy, "agent", "engine", "process", "engineWorker.ts");
    const original = readFileSync(worker, "utf8");
    const marker = `engine-from-source-${process.pid}`;
    writeFileSync(worker, `${original}\nprocess.stderr.write("${marker}\\n");\n`);
    try {
      const result = await runFromSource(["ask", ...modelArgs(model), "--max-tokens", "4", "hello"]);
      expect(result.code).toBe(0);
      expect(result.stderr).toContain(marker);
    } finally {
      writeFileSync(worker, original);
    }
  });
});
