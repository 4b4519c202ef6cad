import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { AgentError } from "./errors.js";

/**
 * llama.cpp's own `llama-bench`, run as a child between the agent's runs so that the ratio
 * to llama.cpp comes from one interleaved run on the same file and machine. Build it from
 * the llama.cpp source node-llama-cpp ships, linked against the same prebuilt libraries
 * (README, "Speed").
 */

export interface ReferenceOptions {
  binary: string;
  modelPath: string;
  threads: number;
  promptTokens: number;
  genTokens: number;
}

export interface ReferenceSample {
  promptTokensPerSecond: number;
  tokensPerSecond: number;
}

interface LlamaBenchRow {
  n_prompt?: number;
  n_gen?: number;
  avg_ts?: number;
}

export function checkReferenceBinary(binary: string): string {
  if (!existsSync(binary)) throw new AgentError("IA_ERR_USAGE", `--llama-bench: no file at ${binary}; build llama-bench first (README, "Speed") or leave the flag out`);
  return binary;
}

/** One llama-bench invocation: pp<prompt> and tg<gen>, one repetition each after its warm-up. */
export function runReference(options: ReferenceOptions): Promise<ReferenceSample> {
  const args = ["-m", options.modelPath, "-t", String(options.threads), "-p", String(options.promptTokens), "-n", String(options.genTokens), "-r", "1", "-fa", "off", "-o", "json"];
  return new Promise((resolve, reject) => {
    execFile(options.binary, args, { maxBuffer: 8 * 2 ** 20, timeout: 600_000 }, (error, stdout, stderr) => {
      if (error) {
        reject(new AgentError("IA_ERR_BENCH_REFERENCE", `llama-bench ${args.join(" ")} failed: ${error.message}${stderr ? `; ${stderr.trim().split("\n").slice(-2).join("; ")}` : ""}`, { cause: error }));
        return;
      }
      try {
        const rows = JSON.parse(stdout) as LlamaBenchRow[];
        const pp = rows.find((r) => (r.n_prompt ?? 0) > 0 && (r.n_gen ?? 0) === 0)?.avg_ts;
        const tg = rows.find((r) => (r.n_gen ?? 0) > 0 && (r.n_prompt ?? 0) === 0)?.avg_ts;
        if (pp === undefined || tg === undefined) throw new Error("no pp and tg rows in its JSON");
        resolve({ promptTokensPerSecond: pp, tokensPerSecond: tg });
      } catch (parseError) {
        reject(new AgentError("IA_ERR_BENCH_REFERENCE", `llama-bench output could not be read (${(parseError as Error).message}): ${stdout.slice(0, 200)}`, { cause: parseError }));
      }
    });
  });
}
