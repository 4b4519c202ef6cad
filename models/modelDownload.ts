/**
 * Downloads one model file with progress, resume and checksum, through node-llama-cpp's
 * downloader (`createModelDownloader`, which drives `ipull`). Facts that shape this file,
 * seen with node-llama-cpp 3.21.1 / ipull 3.9.5:
 *
 * - ipull writes `<name>.ipull` in 5 MiB chunks over 3 parallel Range requests, appends its
 *   progress as JSON after the data, and on a later run (even after SIGKILL) asks only for
 *   the missing chunks. A chunk is written only when complete, so up to 5 MiB per stream
 *   is fetched again. When done it truncates the JSON and renames to `<name>`.
 * - It never checks ETag or If-Range: if the remote file changed between runs, the resumed
 *   file would splice two versions. We keep the ETag beside the partial file and start over
 *   when it changes.
 * - It retries network errors and HTTP 5xx about 150 times with back-off up to 5 s (many
 *   minutes), inside `createModelDownloader` too, with no way to set that from node-llama-cpp.
 *   So we probe the URL first (one ranged GET: fast IA_ERR_DOWNLOAD for 404/500/refused)
 *   and stop a transfer that makes no progress for `stallTimeoutMs`, keeping the partial file.
 * - `ModelDownloader.download({signal})` resolves normally, with the path, after an abort.
 * - ipull counts every complete chunk as 5 MiB, so near the end of a file whose size is not a
 *   multiple of 5 MiB it can report 100% with a chunk still missing; a cancel then renames the
 *   partial file (progress JSON and all) to the finished name. Plain node-llama-cpp use would
 *   put a broken file under the final name; we move it back to `.ipull` so the next run resumes.
 * - Unverified bytes never get the final name: ipull's "final" name is `<file>.download`;
 *   only after the SHA-256 and size check do we rename it to `<file>`.
 *
 * node-llama-cpp is imported lazily so commands that only verify files do not pay for it.
 */
import { mkdir, open, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import type { ModelDownloader } from "node-llama-cpp";
import { AgentError, isAgentError } from "../common/errors.js";
import { normalizeSha256, sha256File } from "./modelStore.js";

export interface DownloadProgress {
  downloadedBytes: number;
  totalBytes: number;
  /** Average over this run (bytes resumed from an earlier run do not count). */
  speedBytesPerSecond: number;
}

export interface DownloadModelFileOptions {
  /** An `http://` or `https://` URL (hf: URIs are resolved to URLs by the catalog). */
  url: string;
  /** Created when missing. */
  dirPath: string;
  /** A plain file name; the file is `<dirPath>/<fileName>` once verified. */
  fileName: string;
  /** Refuse the file unless its SHA-256 is this. Defaults to no hash check. */
  expectedSha256?: string;
  /** Refuse the file unless it has this many bytes. Defaults to no size check. */
  expectedSizeBytes?: number;
  /** Aborting keeps the partial download for the next call to resume. Defaults to none. */
  signal?: AbortSignal;
  onProgress?: (progress: DownloadProgress) => void;
  /** Give up (keeping the partial file) after this long without new bytes or an answer. Defaults to `60_000`. */
  stallTimeoutMs?: number;
  /** Extra request headers (e.g. Authorization). Defaults to none. */
  headers?: Record<string, string>;
}

export interface DownloadedModelFile {
  path: string;
  sha256: string;
  bytes: number;
  /**
   * Bytes kept from an earlier, interrupted run, as ipull counts them: complete 5 MiB chunks,
   * the short last chunk counted whole. 0 for a fresh download.
   */
  resumedFromBytes: number;
}

/** ipull's finished name; its partial file is `<file>.download.ipull`. */
export const DOWNLOAD_SUFFIX = ".download";
/** A downloaded file whose hash or size was wrong, kept for inspection. */
export const CORRUPT_SUFFIX = ".corrupt";
const SOURCE_SUFFIX = ".download.source.json";
const PARTIAL_SUFFIX = `${DOWNLOAD_SUFFIX}.ipull`;
const DEFAULT_STALL_TIMEOUT_MS = 60_000;

interface RemoteFile {
  url: string;
  sizeBytes: number | undefined;
  etag: string | null;
  lastModified: string | null;
}

function checkUrl(url: string): void {
  let parsed: URL | undefined;
  try {
    parsed = new URL(url);
  } catch {
    parsed = undefined;
  }
  if (parsed?.protocol !== "http:" && parsed?.protocol !== "https:") {
    throw new AgentError("IA_ERR_MODEL_NOT_FOUND", `${JSON.stringify(url)}: expected an http:// or https:// URL to download`);
  }
}

function networkReason(error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } } | undefined)?.cause;
  if (cause?.code || cause?.message) return [cause.code, cause.message].filter(Boolean).join(": ");
  return error instanceof Error ? error.message : String(error);
}

function cancelled(url: string, reason: unknown): AgentError {
  return isAgentError(reason)
    ? reason
    : new AgentError("IA_ERR_CANCELLED", `download of ${url} cancelled; run again to resume`, { cause: reason });
}

/** One ranged GET before the transfer: a 404, 500 or refused connection fails now, not after ipull's retries. */
async function probeRemote(url: string, options: DownloadModelFileOptions, timeoutMs: number): Promise<RemoteFile> {
  const signals = [AbortSignal.timeout(timeoutMs), ...(options.signal ? [options.signal] : [])];
  let response: Response;
  try {
    response = await fetch(url, {
      headers: { ...options.headers, Range: "bytes=0-0", "Accept-Encoding": "identity" },
      redirect: "follow",
      signal: AbortSignal.any(signals),
    });
  } catch (error) {
    if (options.signal?.aborted) throw cancelled(url, options.signal.reason);
    const reason = (error as Error).name === "TimeoutError" ? `no answer within ${timeoutMs / 1000} s` : networkReason(error);
    throw new AgentError("IA_ERR_DOWNLOAD", `cannot download ${url}: ${reason}`, { cause: error });
  }
  await response.body?.cancel().catch(() => undefined);
  if (!response.ok) {
    throw new AgentError("IA_ERR_DOWNLOAD", `cannot download ${url}: HTTP ${response.status} ${response.statusText}`.trimEnd());
  }
  const total =
    response.status === 206 ? /\/(\d+)\s*$/.exec(response.headers.get("content-range") ?? "")?.[1] : response.headers.get("content-length");
  return {
    url,
    sizeBytes: total == null ? undefined : Number(total),
    etag: response.headers.get("etag"),
    lastModified: response.headers.get("last-modified"),
  };
}

/**
 * Drops a partial download that belongs to another version of the remote file (other URL,
 * ETag, Last-Modified or size), then notes the current one for the next run.
 */
async function keepPartialOnlyIfSameRemote(stagingPath: string, remote: RemoteFile): Promise<void> {
  const sourcePath = stagingPath.slice(0, -DOWNLOAD_SUFFIX.length) + SOURCE_SUFFIX;
  const current = JSON.stringify(remote);
  const previous = await readFile(sourcePath, "utf8").catch(() => undefined);
  if (previous !== current) {
    await rm(stagingPath + ".ipull", { force: true });
    await rm(stagingPath, { force: true });
    await writeFile(sourcePath, current);
  }
}

async function exists(filePath: string): Promise<boolean> {
  return (await stat(filePath).catch(() => undefined)) !== undefined;
}

async function removeStaging(finalPath: string): Promise<void> {
  for (const suffix of [DOWNLOAD_SUFFIX, PARTIAL_SUFFIX, SOURCE_SUFFIX]) await rm(finalPath + suffix, { force: true });
}

/** Runs node-llama-cpp's downloader into `<fileName>.download`; returns the bytes resumed from. */
async function transfer(remote: RemoteFile, options: DownloadModelFileOptions, stallTimeoutMs: number): Promise<number> {
  const { createModelDownloader } = await import("node-llama-cpp");
  const url = remote.url;
  const stagingName = options.fileName + DOWNLOAD_SUFFIX;
  const stagingPath = path.join(options.dirPath, stagingName);
  const stagingExisted = await exists(stagingPath);
  const stop = new AbortController();
  const onAbort = (): void => stop.abort(options.signal?.reason);
  options.signal?.addEventListener("abort", onAbort, { once: true });
  if (options.signal?.aborted) onAbort();

  const startedAt = Date.now();
  let lastAdvanceAt = startedAt;
  let resumedFrom = 0;
  let highWater = 0;
  let totalBytes = remote.sizeBytes ?? 0;
  const report = (downloaded: number, total: number, moment: "during" | "start" | "end" = "during"): void => {
    if (total > 0) totalBytes = total;
    // ipull's count drops back when a stream retries a chunk, and can reach the total early
    // (see above): report and judge the high mark, and claim the last byte only when done.
    const counted = moment === "end" || totalBytes === 0 ? downloaded : Math.min(downloaded, totalBytes - 1);
    if (counted <= highWater && moment === "during") return;
    highWater = Math.max(highWater, counted);
    lastAdvanceAt = Date.now();
    const seconds = (lastAdvanceAt - startedAt) / 1000;
    try {
      options.onProgress?.({
        downloadedBytes: highWater,
        totalBytes,
        speedBytesPerSecond: seconds > 0 ? (highWater - resumedFrom) / seconds : 0,
      });
    } catch {
      // A progress callback must not break the download.
    }
  };
  const watchdog = setInterval(
    () => {
      if (Date.now() - lastAdvanceAt <= stallTimeoutMs) return;
      stop.abort(
        new AgentError(
          "IA_ERR_DOWNLOAD",
          `no data from ${url} for ${stallTimeoutMs / 1000} s after ${highWater} of ${totalBytes} bytes; the partial file ${options.fileName}${PARTIAL_SUFFIX} is kept: run again to resume`,
        ),
      );
    },
    Math.min(1000, Math.max(50, stallTimeoutMs / 4)),
  );

  try {
    const creating = createModelDownloader({
      modelUri: url,
      dirPath: options.dirPath,
      fileName: stagingName,
      headers: options.headers ?? {},
      skipExisting: true,
      deleteTempFileOnCancel: false,
      onProgress: (status) => report(status.downloadedSize, status.totalSize),
    });
    // createModelDownloader takes no signal and may sit in ipull's retries: race it.
    creating.catch(() => undefined);
    const stopped = new Promise<never>((_, reject) => {
      if (stop.signal.aborted) reject(stop.signal.reason);
      stop.signal.addEventListener("abort", () => reject(stop.signal.reason), { once: true });
    });
    stopped.catch(() => undefined);
    const downloader: ModelDownloader = await Promise.race([creating, stopped]);
    if (downloader.totalFiles !== 1 || downloader.entrypointFilename !== stagingName) {
      await downloader.cancel({ deleteTempFile: true });
      throw new AgentError("IA_ERR_DOWNLOAD", `${url}: split GGUF files (several parts) are not supported; use a single-file build`);
    }
    // A complete `.download` left by a killed run is skipped (all of it counts); otherwise cap
    // ipull's chunk count, which can reach the total with a chunk still missing.
    resumedFrom = stagingExisted ? downloader.downloadedSize : Math.min(downloader.downloadedSize, Math.max(0, downloader.totalSize - 1));
    report(resumedFrom, downloader.totalSize, "start");
    await downloader.download({ signal: stop.signal });
    if (stop.signal.aborted) throw stop.signal.reason;
    report(downloader.totalSize, downloader.totalSize, "end");
    return resumedFrom;
  } catch (error) {
    if (!stagingExisted && (await exists(stagingPath)) && !(await exists(stagingPath + ".ipull"))) {
      await rename(stagingPath, stagingPath + ".ipull").catch(() => undefined);
    }
    if (stop.signal.aborted) throw cancelled(url, stop.signal.reason);
    if (isAgentError(error)) throw error;
    const status = (error as { statusCode?: number }).statusCode;
    const reason = status === undefined ? networkReason(error) : `HTTP ${status}`;
    throw new AgentError("IA_ERR_DOWNLOAD", `downloading ${url} to ${options.dirPath} failed: ${reason}`, { cause: error });
  } finally {
    clearInterval(watchdog);
    options.signal?.removeEventListener("abort", onAbort);
  }
}

/**
 * Downloads `url` to `<dirPath>/<fileName>`, resuming an earlier interrupted run, and checks
 * the SHA-256 and size. A wrong file is moved to `<fileName>.corrupt` and IA_ERR_CHECKSUM
 * thrown; HTTP errors, refused connections and stalls throw IA_ERR_DOWNLOAD; an abort throws
 * IA_ERR_CANCELLED. Only a verified file ever has the final name.
 */
export async function downloadModelFile(options: DownloadModelFileOptions): Promise<DownloadedModelFile> {
  checkUrl(options.url);
  if (options.fileName === "" || /[/\\]/.test(options.fileName) || options.fileName.startsWith(".")) {
    throw new AgentError("IA_ERR_USAGE", `model file name ${JSON.stringify(options.fileName)}: expected a plain file name`);
  }
  const expectedSha256 =
    options.expectedSha256 === undefined ? undefined : normalizeSha256(options.expectedSha256, `expected SHA-256 of ${options.fileName}`);
  const stallTimeoutMs = options.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS;
  const dirPath = path.resolve(options.dirPath);
  const finalPath = path.join(dirPath, options.fileName);
  const stagingPath = finalPath + DOWNLOAD_SUFFIX;
  if (options.signal?.aborted) throw cancelled(options.url, options.signal.reason);

  const remote = await probeRemote(options.url, options, stallTimeoutMs);
  if (options.expectedSizeBytes !== undefined && remote.sizeBytes !== undefined && remote.sizeBytes !== options.expectedSizeBytes) {
    throw new AgentError(
      "IA_ERR_CHECKSUM",
      `${options.url} is ${remote.sizeBytes} bytes, expected ${options.expectedSizeBytes} for ${options.fileName}: not the file the catalog names`,
    );
  }
  try {
    await mkdir(dirPath, { recursive: true });
    await keepPartialOnlyIfSameRemote(stagingPath, remote);
  } catch (error) {
    throw new AgentError("IA_ERR_DOWNLOAD", `cannot write in ${dirPath}: ${(error as Error).message}`, { cause: error });
  }

  const resumedFromBytes = await transfer(remote, { ...options, dirPath }, stallTimeoutMs);
  const digest = await sha256File(stagingPath);
  const wrongSize = options.expectedSizeBytes !== undefined && digest.bytes !== options.expectedSizeBytes;
  if ((expectedSha256 !== undefined && digest.sha256 !== expectedSha256) || wrongSize) {
    const corruptPath = finalPath + CORRUPT_SUFFIX;
    await rename(stagingPath, corruptPath).catch(() => rm(stagingPath, { force: true }));
    await removeStaging(finalPath);
    const expected = [
      expectedSha256 && `SHA-256 ${expectedSha256}`,
      options.expectedSizeBytes !== undefined && `${options.expectedSizeBytes} bytes`,
    ]
      .filter(Boolean)
      .join(", ");
    throw new AgentError(
      "IA_ERR_CHECKSUM",
      `${options.fileName} from ${options.url}: expected ${expected}, got SHA-256 ${digest.sha256}, ${digest.bytes} bytes; ` +
        `moved to ${corruptPath} for inspection (delete it to free the space)`,
    );
  }
  // Durable before it gets the name a later load trusts.
  const handle = await open(stagingPath, "r+");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(stagingPath, finalPath);
  await removeStaging(finalPath);
  return { path: finalPath, sha256: digest.sha256, bytes: digest.bytes, resumedFromBytes };
}

/** Whether an interrupted download of `fileName` is waiting in `dirPath` to be resumed. */
export async function hasPartialDownload(dirPath: string, fileName: string): Promise<boolean> {
  const info = await stat(path.join(path.resolve(dirPath), fileName + PARTIAL_SUFFIX)).catch(() => undefined);
  return info?.isFile() ?? false;
}
