/**
 * The models directory: where model files live and `checksums.json`, the SHA-256 of each
 * file as recorded at its first download. README, "Models": a catalog hash is enforced
 * when there is one; otherwise the hash seen at first download is recorded here and
 * enforced on every later verify, so a file that changes on disk is caught.
 */
import { createHash, randomBytes } from "node:crypto";
import { createReadStream, readFileSync, statSync } from "node:fs";
import { mkdir, open, rename, rm, stat } from "node:fs/promises";
import path from "node:path";
import { AgentError } from "../common/errors.js";

export const CHECKSUMS_FILE = "checksums.json";

export interface ChecksumRecord {
  /** Lower-case hex. */
  sha256: string;
  bytes: number;
  /** Where the file came from (URL or URI). */
  source: string;
  /** ISO 8601 time of recording. */
  recordedAt: string;
}

export interface FileDigest {
  sha256: string;
  bytes: number;
}

export interface VerifyResult {
  /** True when the hash matches the expected one, or when there is nothing to compare with. */
  ok: boolean;
  /** The hash compared with: the one given, else the recorded one, else null. */
  expected: string | null;
  expectedFrom: "given" | "recorded" | "none";
  actual: string;
  bytes: number;
  path: string;
}

export interface RecordChecksumOptions {
  /** Overwrite a different recorded hash. Defaults to `false`: a different hash throws IA_ERR_CHECKSUM. */
  replace?: boolean;
}

const SHA256_HEX = /^[0-9a-f]{64}$/;

/** Lower-cases a SHA-256 and checks it is 64 hex digits; `what` names it in the error. */
export function normalizeSha256(value: string, what: string): string {
  const sha = value.trim().toLowerCase();
  if (!SHA256_HEX.test(sha))
    throw new AgentError("IA_ERR_USAGE", `${what}: expected a SHA-256 of 64 hex digits, got ${JSON.stringify(value)}`);
  return sha;
}

async function regularFileSize(filePath: string): Promise<number> {
  let info;
  try {
    info = await stat(filePath);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT")
      throw new AgentError("IA_ERR_MODEL_NOT_FOUND", `${filePath}: no such file`, { cause: error });
    throw error;
  }
  if (!info.isFile()) throw new AgentError("IA_ERR_MODEL_NOT_FILE", `${filePath}: not a regular file`);
  return info.size;
}

/** Streams a file through SHA-256; `onProgress(doneBytes, totalBytes)` after each read. */
export async function sha256File(filePath: string, onProgress?: (doneBytes: number, totalBytes: number) => void): Promise<FileDigest> {
  const totalBytes = await regularFileSize(filePath);
  const hash = createHash("sha256");
  let bytes = 0;
  for await (const chunk of createReadStream(filePath, { highWaterMark: 1 << 20 })) {
    hash.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
    onProgress?.(bytes, totalBytes);
  }
  return { sha256: hash.digest("hex"), bytes };
}

function checkFileName(fileName: string): void {
  if (fileName === "" || fileName === "." || fileName === ".." || /[/\\]/.test(fileName)) {
    throw new AgentError("IA_ERR_USAGE", `model file name ${JSON.stringify(fileName)}: expected a plain file name, without directories`);
  }
}

function parseRecords(text: string, file: string): Record<string, ChecksumRecord> {
  const fail = (why: string): never => {
    throw new AgentError("IA_ERR_CHECKSUM", `${file}: ${why}; fix or delete the file (its hashes are re-recorded at the next download)`);
  };
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    return fail(`not valid JSON (${(error as Error).message})`);
  }
  if (data === null || typeof data !== "object" || Array.isArray(data))
    return fail("expected an object of {fileName: {sha256, bytes, source, recordedAt}}");
  for (const [name, entry] of Object.entries(data)) {
    const e = entry as Partial<ChecksumRecord> | null;
    if (!e || typeof e.sha256 !== "string" || !SHA256_HEX.test(e.sha256) || typeof e.bytes !== "number") {
      fail(`entry ${JSON.stringify(name)} needs sha256 (64 lower-case hex digits) and bytes (a number)`);
    }
  }
  return data as Record<string, ChecksumRecord>;
}

export class ModelStore {
  readonly dir: string;
  #writes: Promise<unknown> = Promise.resolve();

  constructor(dir: string) {
    this.dir = path.resolve(dir);
  }

  get checksumsPath(): string {
    return path.join(this.dir, CHECKSUMS_FILE);
  }

  pathFor(fileName: string): string {
    checkFileName(fileName);
    return path.join(this.dir, fileName);
  }

  /** Whether a regular file by that name is in the directory (partial downloads have other names). */
  has(fileName: string): boolean {
    return statSync(this.pathFor(fileName), { throwIfNoEntry: false })?.isFile() ?? false;
  }

  /** All records; `{}` when `checksums.json` does not exist yet. */
  records(): Record<string, ChecksumRecord> {
    let text: string;
    try {
      text = readFileSync(this.checksumsPath, "utf8");
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return {};
      throw error;
    }
    return parseRecords(text, this.checksumsPath);
  }

  recordedChecksum(fileName: string): ChecksumRecord | undefined {
    const records = this.records();
    return Object.hasOwn(records, fileName) ? records[fileName] : undefined;
  }

  /**
   * Records a file's hash (atomically: temp file, fsync, rename). Writes from one store are
   * serialized; a different hash already recorded is refused unless `replace` is set.
   */
  recordChecksum(fileName: string, digest: FileDigest & { source: string }, options: RecordChecksumOptions = {}): Promise<ChecksumRecord> {
    checkFileName(fileName);
    const record: ChecksumRecord = {
      sha256: normalizeSha256(digest.sha256, `checksum of ${fileName}`),
      bytes: digest.bytes,
      source: digest.source,
      recordedAt: new Date().toISOString(),
    };
    const write = this.#writes.then(async () => {
      const records = this.records();
      const previous = records[fileName];
      if (previous && previous.sha256 !== record.sha256 && options.replace !== true) {
        throw new AgentError(
          "IA_ERR_CHECKSUM",
          `${fileName}: SHA-256 ${record.sha256} differs from the one recorded ${previous.recordedAt} (${previous.sha256}) in ${this.checksumsPath}`,
        );
      }
      records[fileName] = record;
      await this.#writeRecords(records);
      return record;
    });
    this.#writes = write.catch(() => undefined);
    return write;
  }

  /**
   * Hashes a file (a name in this directory, or a path) and compares it with
   * `expectedSha256`, else the recorded hash; with neither, `ok` is true and `expected` null.
   */
  async verifyFile(
    fileOrPath: string,
    expectedSha256?: string,
    onProgress?: (doneBytes: number, totalBytes: number) => void,
  ): Promise<VerifyResult> {
    const isName = !/[/\\]/.test(fileOrPath);
    const filePath = isName ? this.pathFor(fileOrPath) : path.resolve(fileOrPath);
    const recordName = path.dirname(filePath) === this.dir ? path.basename(filePath) : undefined;
    const recorded = recordName === undefined ? undefined : this.recordedChecksum(recordName);
    const given = expectedSha256 === undefined ? undefined : normalizeSha256(expectedSha256, `expected SHA-256 of ${filePath}`);
    const expected = given ?? recorded?.sha256 ?? null;
    const digest = await sha256File(filePath, onProgress);
    return {
      ok: expected === null || expected === digest.sha256,
      expected,
      expectedFrom: given !== undefined ? "given" : recorded ? "recorded" : "none",
      actual: digest.sha256,
      bytes: digest.bytes,
      path: filePath,
    };
  }

  async #writeRecords(records: Record<string, ChecksumRecord>): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const sorted = Object.fromEntries(Object.entries(records).sort(([a], [b]) => a.localeCompare(b)));
    const temp = `${this.checksumsPath}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
    try {
      const handle = await open(temp, "wx");
      try {
        await handle.writeFile(`${JSON.stringify(sorted, null, 2)}\n`);
        // Lab hosts lose power: without the fsync the rename can survive a crash and the data not.
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(temp, this.checksumsPath);
    } catch (error) {
      await rm(temp, { force: true });
      throw error;
    }
  }
}
