import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { AgentError } from "../../common/errors.js";
import { downloadModelFile, hasPartialDownload } from "../../models/modelDownload.js";
import type { DownloadProgress } from "../../models/modelDownload.js";
import { ModelStore } from "../../models/modelStore.js";

const MiB = 1024 * 1024;
// Not a multiple of ipull's 5 MiB chunk, like real files.
const FILE_SIZE = 16 * MiB + 12_345;
const PROBE_RANGE = "bytes=0-0";

interface ServedRequest {
  method: string;
  url: string;
  range: string | null;
  /** Bytes of the range asked for (the whole file without a Range header). */
  askedBytes: number;
}

interface FileServer {
  url(name?: string): string;
  requests: ServedRequest[];
  /** Replaces the file (and its ETag), as a re-uploaded remote file would be. */
  setData(data: Buffer): void;
  /** Every request whose range covers this offset is cut there (socket destroyed). Null: healthy. */
  cutAt: number | null;
  status500: boolean;
  close(): Promise<void>;
}

function fakeModel(size: number): Buffer {
  const data = randomBytes(size);
  data.write("GGUF", 0, "latin1");
  return data;
}

function sha256(data: Buffer): string {
  return createHash("sha256").update(data).digest("hex");
}

/** A CDN-like server: 206 with Content-Range, Accept-Ranges, Content-Length, ETag. */
async function startFileServer(initial: Buffer): Promise<FileServer> {
  let data = initial;
  let etag = `"${sha256(data).slice(0, 16)}"`;
  const state: FileServer = {
    url: (name = "model.gguf") => `http://127.0.0.1:${(server.address() as AddressInfo).port}/${name}`,
    requests: [],
    setData(next) {
      data = next;
      etag = `"${sha256(data).slice(0, 16)}"`;
    },
    cutAt: null,
    status500: false,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  const server: Server = createServer((req, res) => {
    const range = req.headers.range ?? null;
    const match = /^bytes=(\d+)-(\d*)$/.exec(range ?? "");
    const start = match ? Number(match[1]) : 0;
    const end = match?.[2] ? Math.min(Number(match[2]), data.length - 1) : data.length - 1;
    state.requests.push({ method: req.method ?? "", url: req.url ?? "", range, askedBytes: end - start + 1 });
    if (state.status500) {
      res.writeHead(500).end("internal error");
      return;
    }
    if (!req.url?.startsWith("/model.gguf")) {
      res.writeHead(404).end("not found");
      return;
    }
    const headers: Record<string, string> = {
      "Accept-Ranges": "bytes",
      ETag: etag,
      "Content-Type": "application/octet-stream",
      "Content-Length": String(end - start + 1),
    };
    if (match) headers["Content-Range"] = `bytes ${start}-${end}/${data.length}`;
    res.writeHead(match ? 206 : 200, headers);
    if (req.method === "HEAD") {
      res.end();
      return;
    }
    const cut = state.cutAt;
    if (cut !== null && start < cut && cut <= end) {
      res.write(data.subarray(start, cut), () => res.socket?.destroy());
      return;
    }
    res.end(data.subarray(start, end + 1));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return state;
}

async function expectAgentError(promise: Promise<unknown>, code: string): Promise<AgentError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(AgentError);
  expect((error as AgentError).code).toBe(code);
  return error as AgentError;
}

describe("downloadModelFile against a local HTTP server", () => {
  const data = fakeModel(FILE_SIZE);
  const dataSha = sha256(data);
  let server: FileServer;
  let dir: string;

  beforeAll(() => {
    expect(data.subarray(0, 4).toString("latin1")).toBe("GGUF");
  });

  beforeEach(async () => {
    server = await startFileServer(data);
    dir = mkdtempSync(path.join(os.tmpdir(), "ia-download-"));
  });

  afterEach(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("downloads a file over plain http with progress and the right SHA-256", async () => {
    const progress: DownloadProgress[] = [];
    const result = await downloadModelFile({
      url: server.url(),
      dirPath: dir,
      fileName: "tiny.gguf",
      expectedSha256: dataSha.toUpperCase(),
      expectedSizeBytes: FILE_SIZE,
      onProgress: (p) => progress.push(p),
    });
    expect(result).toEqual({ path: path.join(dir, "tiny.gguf"), sha256: dataSha, bytes: FILE_SIZE, resumedFromBytes: 0 });
    expect(sha256(readFileSync(result.path))).toBe(dataSha);
    expect(readdirSync(dir)).toEqual(["tiny.gguf"]);
    expect(progress.length).toBeGreaterThan(2);
    expect(progress.at(-1)).toMatchObject({ downloadedBytes: FILE_SIZE, totalBytes: FILE_SIZE });
    const counts = progress.map((p) => p.downloadedBytes);
    expect(counts).toEqual([...counts].sort((a, b) => a - b));
    expect(progress.some((p) => p.speedBytesPerSecond > 0)).toBe(true);
  });

  it("resumes an interrupted download with Range requests for the missing part only", async () => {
    // First run: every request reaching offset 12 MiB is cut there, so the chunk holding
    // it never completes and the download stalls; the chunks before and after it do.
    server.cutAt = 12 * MiB + 1000;
    const first = await expectAgentError(
      downloadModelFile({ url: server.url(), dirPath: dir, fileName: "tiny.gguf", expectedSha256: dataSha, stallTimeoutMs: 1500 }),
      "IA_ERR_DOWNLOAD",
    );
    expect(first.message).toMatch(/run again to resume/);
    expect(server.requests.some((r) => r.range !== null && r.range !== PROBE_RANGE && Number(/bytes=(\d+)/.exec(r.range)?.[1]) > 0)).toBe(
      true,
    );
    expect(existsSync(path.join(dir, "tiny.gguf"))).toBe(false);
    expect(await hasPartialDownload(dir, "tiny.gguf")).toBe(true);

    server.cutAt = null;
    server.requests.length = 0;
    const second = await downloadModelFile({ url: server.url(), dirPath: dir, fileName: "tiny.gguf", expectedSha256: dataSha });
    expect(second.sha256).toBe(dataSha);
    expect(sha256(readFileSync(second.path))).toBe(dataSha);
    expect(second.resumedFromBytes).toBeGreaterThan(0);
    expect(second.resumedFromBytes).toBeLessThan(FILE_SIZE);

    const ranged = server.requests.filter((r) => r.range !== null && r.range !== PROBE_RANGE);
    expect(ranged.length).toBeGreaterThan(0);
    for (const request of ranged) expect(request.range).toMatch(/^bytes=[1-9]\d*-\d*$/);
    expect(ranged.reduce((sum, r) => sum + r.askedBytes, 0)).toBeLessThan(FILE_SIZE);
    expect(readdirSync(dir)).toEqual(["tiny.gguf"]);
  });

  it("starts over instead of resuming when the remote file changed (new ETag)", async () => {
    server.cutAt = 12 * MiB + 1000;
    await expectAgentError(
      downloadModelFile({ url: server.url(), dirPath: dir, fileName: "tiny.gguf", stallTimeoutMs: 1500 }),
      "IA_ERR_DOWNLOAD",
    );
    expect(await hasPartialDownload(dir, "tiny.gguf")).toBe(true);

    const reuploaded = fakeModel(FILE_SIZE);
    server.setData(reuploaded);
    server.cutAt = null;
    const result = await downloadModelFile({ url: server.url(), dirPath: dir, fileName: "tiny.gguf" });
    expect(result.resumedFromBytes).toBe(0);
    expect(result.sha256).toBe(sha256(reuploaded));
  });

  it("refuses a file whose SHA-256 differs and leaves nothing under the final name", async () => {
    const corrupted = Buffer.from(data);
    corrupted[FILE_SIZE - 10] = (corrupted[FILE_SIZE - 10] ?? 0) ^ 0xff;
    server.setData(corrupted);
    const error = await expectAgentError(
      downloadModelFile({ url: server.url(), dirPath: dir, fileName: "tiny.gguf", expectedSha256: dataSha }),
      "IA_ERR_CHECKSUM",
    );
    expect(error.message).toContain("tiny.gguf");
    expect(error.message).toContain(dataSha);
    expect(error.message).toContain(sha256(corrupted));
    expect(existsSync(path.join(dir, "tiny.gguf"))).toBe(false);
    expect(readdirSync(dir)).toEqual(["tiny.gguf.corrupt"]);
  });

  it("refuses before downloading when the server's size differs from the expected size", async () => {
    const error = await expectAgentError(
      downloadModelFile({ url: server.url(), dirPath: dir, fileName: "tiny.gguf", expectedSizeBytes: FILE_SIZE + 1 }),
      "IA_ERR_CHECKSUM",
    );
    expect(error.message).toContain(String(FILE_SIZE));
    expect(readdirSync(dir)).toEqual([]);
  });

  it("turns a 404 into IA_ERR_DOWNLOAD naming the URL", async () => {
    const url = server.url("missing.gguf");
    const error = await expectAgentError(downloadModelFile({ url, dirPath: dir, fileName: "missing.gguf" }), "IA_ERR_DOWNLOAD");
    expect(error.message).toContain(url);
    expect(error.message).toContain("404");
    expect(readdirSync(dir)).toEqual([]);
  });

  it("turns a 500 and a refused connection into IA_ERR_DOWNLOAD at once, not after retries", async () => {
    server.status500 = true;
    const started = Date.now();
    const e500 = await expectAgentError(downloadModelFile({ url: server.url(), dirPath: dir, fileName: "tiny.gguf" }), "IA_ERR_DOWNLOAD");
    expect(e500.message).toContain("500");

    const closedUrl = server.url();
    await server.close();
    const refused = await expectAgentError(downloadModelFile({ url: closedUrl, dirPath: dir, fileName: "tiny.gguf" }), "IA_ERR_DOWNLOAD");
    expect(refused.message).toContain(closedUrl);
    expect(refused.message).toContain("ECONNREFUSED");
    expect(Date.now() - started).toBeLessThan(10_000);
    server = await startFileServer(data);
  });

  it("stops on abort with IA_ERR_CANCELLED and no file under the final name", async () => {
    const controller = new AbortController();
    controller.abort(new Error("operator pressed Ctrl-C"));
    await expectAgentError(
      downloadModelFile({ url: server.url(), dirPath: dir, fileName: "tiny.gguf", signal: controller.signal }),
      "IA_ERR_CANCELLED",
    );
    const later = new AbortController();
    const aborted = downloadModelFile({
      url: server.url(),
      dirPath: dir,
      fileName: "tiny.gguf",
      signal: later.signal,
      onProgress: (p) => {
        if (p.downloadedBytes > 0) later.abort();
      },
    });
    await expectAgentError(aborted, "IA_ERR_CANCELLED");
    expect(existsSync(path.join(dir, "tiny.gguf"))).toBe(false);
  });

  it("ModelStore records the SHA-256 at first download and a later verify of a changed file fails", async () => {
    const store = new ModelStore(dir);
    expect(store.has("tiny.gguf")).toBe(false);
    expect(store.recordedChecksum("tiny.gguf")).toBeUndefined();

    // The rule of the README's "Models", as the resolver applies it: no catalog hash, so record.
    const url = server.url();
    const result = await downloadModelFile({
      url,
      dirPath: dir,
      fileName: "tiny.gguf",
      expectedSha256: store.recordedChecksum("tiny.gguf")?.sha256,
    });
    await store.recordChecksum("tiny.gguf", { sha256: result.sha256, bytes: result.bytes, source: url });

    expect(store.has("tiny.gguf")).toBe(true);
    expect(store.recordedChecksum("tiny.gguf")).toMatchObject({ sha256: dataSha, bytes: FILE_SIZE, source: url });
    const onDisk = JSON.parse(readFileSync(path.join(dir, "checksums.json"), "utf8")) as Record<string, { sha256: string }>;
    expect(onDisk["tiny.gguf"]?.sha256).toBe(dataSha);
    expect(readdirSync(dir).sort()).toEqual(["checksums.json", "tiny.gguf"]);

    const good = await store.verifyFile("tiny.gguf");
    expect(good).toMatchObject({ ok: true, expected: dataSha, expectedFrom: "recorded", actual: dataSha, bytes: FILE_SIZE });

    const changed = Buffer.from(data);
    changed[1000] = (changed[1000] ?? 0) ^ 0x01;
    writeFileSync(path.join(dir, "tiny.gguf"), changed);
    const bad = await store.verifyFile(path.join(dir, "tiny.gguf"));
    expect(bad).toMatchObject({ ok: false, expected: dataSha, expectedFrom: "recorded", actual: sha256(changed) });

    // A different hash cannot silently replace the recorded one...
    await expectAgentError(
      store.recordChecksum("tiny.gguf", { sha256: sha256(changed), bytes: FILE_SIZE, source: url }),
      "IA_ERR_CHECKSUM",
    );
    // ...and a later download is held to it.
    server.setData(changed);
    await expectAgentError(
      downloadModelFile({ url, dirPath: dir, fileName: "tiny.gguf", expectedSha256: store.recordedChecksum("tiny.gguf")?.sha256 }),
      "IA_ERR_CHECKSUM",
    );
  });
});

describe("ModelStore without a network", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), "ia-store-"));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("verifies against a given hash, reports missing files and refuses a malformed checksums.json", async () => {
    const store = new ModelStore(dir);
    const data = fakeModel(4096);
    writeFileSync(store.pathFor("a.gguf"), data);
    expect(await store.verifyFile("a.gguf")).toMatchObject({ ok: true, expected: null, expectedFrom: "none", actual: sha256(data) });
    expect(await store.verifyFile("a.gguf", "0".repeat(64))).toMatchObject({ ok: false, expectedFrom: "given" });
    await expectAgentError(store.verifyFile("absent.gguf"), "IA_ERR_MODEL_NOT_FOUND");
    expect(() => store.pathFor("../escape.gguf")).toThrow(AgentError);
    writeFileSync(store.checksumsPath, "{ not json");
    expect(() => store.recordedChecksum("a.gguf")).toThrow(/checksums\.json/);
  });
});
