import { spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { GgmlType, ggmlTypeInfo } from "../../models/gguf/ggufFormat.js";
import { readGguf } from "../../models/gguf/ggufReader.js";
import { writeGguf } from "../../models/gguf/ggufWriter.js";
import { writeSyntheticModel } from "../../models/synth/syntheticModel.js";
import { SYNTHETIC_SHAPES } from "../../models/synth/syntheticShapes.js";
import type { SyntheticShape } from "../../models/synth/syntheticShapes.js";
import { ROOT } from "../helpers/bundle.js";
import { tempDir } from "../helpers/models.js";

// A tiny model with one tensor retyped to Q8_0 although its rows (400 elements) are not whole
// 32-element blocks, its data sized as that type and shape would be: every offset and the file
// size agree, so only the block-size rule catches it. The CLI runs from source in a child
// process, with the inline engine and with the default engine process, and must refuse the
// file with exit code 2 before llama.cpp sees it.
const dir = tempDir("iagent-bad-tensor-");
const good = path.join(dir, "ffn-400-f16.gguf");
const bad = path.join(dir, "ffn-400-ffn_down-q8_0.gguf");
const TENSOR = "blk.0.ffn_down.weight";
const DIMS = [400, 128];
/** Tiny's layout with a 400-wide FFN: whole F16 rows, not whole Q8_0 blocks. */
const SHAPE: SyntheticShape = { ...SYNTHETIC_SHAPES.tiny, feedForwardLength: 400 };

interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function runCli(args: string[], timeoutMs = 60_000): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", "agent/main.ts", ...args], {
      cwd: ROOT,
      env: { ...process.env, NO_COLOR: "1" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`agent ${args.join(" ")} did not finish in ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, timeoutMs);
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** Copies `source` with `name` written as I8 [bytes, 1] of the Q8_0 size, then retypes that table entry. */
async function writeRetypedCopy(source: string, target: string, name: string, dims: number[]): Promise<void> {
  const q8 = ggmlTypeInfo(GgmlType.Q8_0);
  if (q8 === undefined) throw new Error("no Q8_0");
  const bytes = (dims.reduce((a, b) => a * b, 1) / q8.blockSize) * q8.typeSize;
  const file = await readGguf(source);
  const data = readFileSync(source);
  await writeGguf(target, {
    metadata: file.metadata,
    tensors: file.tensors.map((t) => {
      if (t.name === name) return { name, dims: [bytes, 1], type: GgmlType.I8, chunks: () => [Buffer.alloc(bytes, 0x11)] };
      const start = file.dataOffset + t.offset;
      return { name: t.name, dims: t.dims, type: t.type, chunks: () => [data.subarray(start, start + (t.byteSize ?? 0))] };
    }),
  });
  // The table entry: u64 name length, name, u32 dim count, u64 dims, u32 type, u64 offset.
  const out = readFileSync(target);
  const key = Buffer.alloc(8 + name.length);
  key.writeBigUInt64LE(BigInt(name.length), 0);
  key.write(name, 8, "latin1");
  const at = out.indexOf(key);
  if (at < 0) throw new Error(`no '${name}' in ${target}`);
  const dimsAt = at + key.length + 4;
  dims.forEach((dim, d) => out.writeBigUInt64LE(BigInt(dim), dimsAt + 8 * d));
  out.writeUInt32LE(GgmlType.Q8_0, dimsAt + 8 * dims.length);
  writeFileSync(target, out);
}

beforeAll(async () => {
  await writeSyntheticModel({ shape: SHAPE, type: "f16", seed: 7, outPath: good });
  await writeRetypedCopy(good, bad, TENSOR, DIMS);
  const table = (await readGguf(bad)).tensors.find((t) => t.name === TENSOR);
  expect(table).toMatchObject({ dims: DIMS, type: GgmlType.Q8_0 });
});

describe("a tensor whose type does not fit its shape", () => {
  it("the same model with that tensor in F16 loads and answers (the shape itself is fine)", async () => {
    const result = await runCli(["ask", "--model", good, "--engine", "inline", "--max-tokens", "4", "hi"]);
    expect(result.stderr).not.toContain("IA_ERR_");
    expect(result.code).toBe(0);
  });

  for (const engine of [["--engine", "inline"], []]) {
    it(`ask ${engine.length === 0 ? "(default engine)" : engine.join(" ")} refuses it: exit 2, IA_ERR_GGUF_TENSOR naming the tensor`, async () => {
      const result = await runCli(["ask", "--model", bad, ...engine, "--max-tokens", "4", "hi"]);
      expect(result.signal).toBeNull();
      expect(result.code).toBe(2);
      expect(result.stderr).toContain("IA_ERR_GGUF_TENSOR");
      expect(result.stderr).toContain(`tensor '${TENSOR}': type Q8_0 needs the first dimension to be a multiple of 32`);
      expect(result.stderr).toContain("[400, 128]");
      expect(result.stdout).toBe("");
    });
  }

  it("models verify fails the check: exit 3, FAIL with the code and the tensor", async () => {
    const result = await runCli(["models", "verify", bad]);
    expect(result.signal).toBeNull();
    expect(result.code).toBe(3);
    expect(result.stdout).toContain("FAIL  IA_ERR_GGUF_TENSOR");
    expect(result.stdout).toContain(TENSOR);
  });
});
