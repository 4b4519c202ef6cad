import { createServer } from "node:http";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runAgent } from "../helpers/bundle.js";
import { synthModel, tempDir } from "../helpers/models.js";

// `models pull` and `--model <hf:uri>` in the real bundle, against a local server standing
// in for a lab mirror of huggingface.co (--model-mirror). Nothing leaves the machine.
const dir = tempDir("iagent-pull-");
let server: Server;
let mirror: string;
let served: Buffer;
const requests: string[] = [];

beforeAll(async () => {
  served = readFileSync(await synthModel(dir));
  server = createServer((request, response) => {
    requests.push(`${request.method} ${request.url}`);
    const known = ["/lab/models/resolve/main/", "/lab-as-qwen/Qwen/"];
    if (!known.some((prefix) => request.url?.startsWith(prefix)) || request.url?.includes("missing")) {
      response.writeHead(404).end("not found");
      return;
    }
    const range = /bytes=(\d+)-(\d*)/.exec(request.headers.range ?? "");
    const start = range ? Number(range[1]) : 0;
    const end = range && range[2] ? Number(range[2]) : served.length - 1;
    response.writeHead(range ? 206 : 200, {
      "Content-Length": end - start + 1,
      "Accept-Ranges": "bytes",
      ETag: '"tiny-1"',
      ...(range ? { "Content-Range": `bytes ${start}-${end}/${served.length}` } : {}),
    });
    response.end(served.subarray(start, end + 1));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  mirror = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

describe("pulling a model through a mirror", () => {
  const modelsDir = path.join(dir, "models");
  const common = () => ["--models-dir", modelsDir, "--model-mirror", mirror, "--log-level", "error"];

  it("downloads an hf: URI, validates it, and records its SHA-256", async () => {
    const result = await runAgent(["models", "pull", "hf:lab/models/tiny.gguf", ...common()]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain("valid");
    expect(readFileSync(path.join(modelsDir, "tiny.gguf")).equals(served)).toBe(true);
    const records = JSON.parse(readFileSync(path.join(modelsDir, "checksums.json"), "utf8")) as Record<string, { sha256: string }>;
    expect(records["tiny.gguf"]?.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(requests.some((r) => r.includes("/lab/models/resolve/main/tiny.gguf"))).toBe(true);
  });

  it("then answers with it by URI without downloading again", async () => {
    const before = requests.length;
    const result = await runAgent(["ask", "--model", "hf:lab/models/tiny.gguf", "--max-tokens", "4", "--mlock", "off", ...common(), "hi"]);
    expect(result.code, result.stderr).toBe(0);
    expect(requests.length).toBe(before);
  });

  it("enforces the recorded SHA-256 after: a changed file fails verify with exit 3", async () => {
    const file = path.join(modelsDir, "tiny.gguf");
    const bytes = readFileSync(file);
    bytes[bytes.length - 1] = bytes[bytes.length - 1]! ^ 0xff;
    writeFileSync(file, bytes);
    const result = await runAgent(["models", "verify", file]);
    expect(result.code).toBe(3);
    expect(result.stdout).toMatch(/FAIL\s+SHA-256/);
  });

  it("refuses a catalog model whose bytes differ from the catalog's SHA-256, keeping nothing under its name", async () => {
    // The mirror serves the tiny model under the official file name, so the hash cannot match.
    const result = await runAgent([
      "models",
      "pull",
      "qwen2.5-0.5b-instruct-q4_k_m",
      "--models-dir",
      modelsDir,
      "--model-mirror",
      `${mirror}/lab-as-qwen`,
      "--log-level",
      "error",
    ]);
    expect(result.signal).toBeNull();
    expect(result.code, result.stderr).toBe(3);
    expect(result.stderr).toMatch(/IA_ERR_CHECKSUM.*qwen2\.5-0\.5b-instruct-q4_k_m\.gguf/);
    expect(existsSync(path.join(modelsDir, "qwen2.5-0.5b-instruct-q4_k_m.gguf"))).toBe(false);
  });

  it("names the URL and the status when the mirror does not have the file", async () => {
    const result = await runAgent(["models", "pull", "hf:lab/models/missing.gguf", ...common()]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("IA_ERR_DOWNLOAD");
    expect(result.stderr).toContain("missing.gguf");
    expect(result.stderr).toContain("404");
  });
});
