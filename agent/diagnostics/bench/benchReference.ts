import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { AgentError } from "../../../common/errors.js";
import { FLASH_ATTENTION } from "../../engine/llamaRuntimeOptions.js";

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

export function checkReferenceBinary(binary: string, flag = "--llama-bench"): string {
  if (!existsSync(binary))
    throw new AgentError("IA_ERR_USAGE", `${flag}: no file at ${binary}; build it first (README, "Speed") or leave the flag out`);
  return binary;
}

export interface BatchedReferenceOptions extends ReferenceOptions {
  /** Parallel sequence counts, e.g. [1, 2, 4]. */
  parallel: number[];
}

/** Runs one llama.cpp tool and resolves with its output; a failure names the command and its last stderr lines. */
export function runTool(name: string, binary: string, args: string[]): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = execFile(binary, args, { maxBuffer: 16 * 2 ** 20, timeout: 600_000 }, (error, stdout, stderr) => {
      if (!error) {
        resolve({ stdout, stderr });
        return;
      }
      const tail = stderr ? `; ${stderr.trim().split("\n").slice(-2).join("; ")}` : "";
      reject(new AgentError("IA_ERR_BENCH_REFERENCE", `${name} ${args.join(" ")} failed: ${error.message}${tail}`, { cause: error }));
    });
    // Nothing to read: llama-completion would otherwise wait on an open stdin after its answer.
    child.stdin?.end();
  });
}

/**
 * llama.cpp's `llama-batched-bench`: generation tokens/s with n sequences decoded in one
 * batch, the ceiling for the agent's concurrent requesters on this CPU. Keyed by n.
 */
export async function runBatchedReference(options: BatchedReferenceOptions): Promise<Map<number, number>> {
  const most = Math.max(...options.parallel);
  const args = [
    "-m",
    options.modelPath,
    "-t",
    String(options.threads),
    "-c",
    String(most * (options.promptTokens + options.genTokens + 16)),
    "-b",
    "512",
    "-npp",
    String(options.promptTokens),
    "-ntg",
    String(options.genTokens),
    "-npl",
    options.parallel.join(","),
    "-fa",
    FLASH_ATTENTION,
    "--output-format",
    "jsonl",
  ];
  const { stdout } = await runTool("llama-batched-bench", options.binary, args);
  const figures = new Map<number, number>();
  for (const line of stdout.split("\n")) {
    if (!line.startsWith("{")) continue;
    try {
      const row = JSON.parse(line) as { pl?: number; speed_tg?: number };
      if (typeof row.pl === "number" && typeof row.speed_tg === "number") figures.set(row.pl, row.speed_tg);
    } catch {
      // a log line that happens to start with "{": not a result row
    }
  }
  if (!options.parallel.every((n) => figures.has(n))) {
    throw new AgentError(
      "IA_ERR_BENCH_REFERENCE",
      `llama-batched-bench printed no speed_tg rows for ${options.parallel.join(",")}: ${stdout.slice(0, 200)}`,
    );
  }
  return figures;
}

/** One llama-bench invocation: pp<prompt> and tg<gen>, one repetition each after its warm-up. */
export async function runReference(options: ReferenceOptions): Promise<ReferenceSample> {
  const args = [
    "-m",
    options.modelPath,
    "-t",
    String(options.threads),
    "-p",
    String(options.promptTokens),
    "-n",
    String(options.genTokens),
    "-r",
    "1",
    "-fa",
    FLASH_ATTENTION,
    "-o",
    "json",
  ];
  const { stdout } = await runTool("llama-bench", options.binary, args);
  try {
    const rows = JSON.parse(stdout) as LlamaBenchRow[];
    const pp = rows.find((r) => (r.n_prompt ?? 0) > 0 && (r.n_gen ?? 0) === 0)?.avg_ts;
    const tg = rows.find((r) => (r.n_gen ?? 0) > 0 && (r.n_prompt ?? 0) === 0)?.avg_ts;
    if (pp === undefined || tg === undefined) throw new Error("no pp and tg rows in its JSON");
    return { promptTokensPerSecond: pp, tokensPerSecond: tg };
  } catch (parseError) {
    throw new AgentError(
      "IA_ERR_BENCH_REFERENCE",
      `llama-bench output could not be read (${(parseError as Error).message}): ${stdout.slice(0, 200)}`,
      { cause: parseError },
    );
  }
}
