import { mkdir, open, readFile, rename, rm } from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";
import path from "node:path";
import type { Logger } from "../../../common/logger.js";
import { encodeRecord, scanJournal } from "./journalRecord.js";
import type { JournalRecord } from "./journalRecord.js";

interface PendingLine {
  line: string;
  durable: boolean;
  resolve: () => void;
  reject: (error: Error) => void;
}

export interface JournalFileStats {
  /** Records appended by this process (a compaction's rewrite not counted). */
  records: number;
  /** fdatasync calls, the compaction's included. */
  syncs: number;
  compactions: number;
  /** The file's size now. */
  bytes: number;
  /** Lines in the file now. */
  fileRecords: number;
}

/**
 * The journal file: recovery on open, appends with group commit, compaction by rewrite.
 *
 * One loop owns the file handle and does one thing at a time: write a batch (every line queued
 * since the last write, in one write and at most one fdatasync) or compact. Callers never wait
 * for each other's turn to queue; a line queued while a batch or a compaction is on the disk
 * goes out with the next batch.
 */
export class JournalFile {
  readonly path: string;
  readonly stats: JournalFileStats = { records: 0, syncs: 0, compactions: 0, bytes: 0, fileRecords: 0 };
  readonly #logger: Logger;
  #handle: FileHandle;
  #pending: PendingLine[] = [];
  #loop: Promise<void> | undefined;
  #compactWanted: (() => JournalRecord[]) | undefined;
  #compactWaiters: { resolve: () => void; reject: (error: Error) => void }[] = [];
  /** Asked after every batch; true starts a compaction with `snapshot`. */
  #shouldCompact: () => boolean = () => false;
  #snapshot: () => JournalRecord[] = () => [];
  /** After a failed compaction, the next waits until the file has grown to this many lines. */
  #retryCompactionAt = 0;

  private constructor(file: string, handle: FileHandle, logger: Logger) {
    this.path = file;
    this.#handle = handle;
    this.#logger = logger;
  }

  /**
   * Opens (creating the folder and file) and reads every intact record. A torn tail is cut off
   * with one warning; a damaged line inside the file is skipped with one warning each.
   */
  static async open(file: string, logger: Logger): Promise<{ file: JournalFile; records: JournalRecord[] }> {
    await mkdir(path.dirname(file), { recursive: true });
    // A leftover of a compaction that did not reach its rename; the journal itself is whole.
    await rm(`${file}.tmp`, { force: true });
    let data: Buffer;
    try {
      data = await readFile(file);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
      data = Buffer.alloc(0);
    }
    const scanned = scanJournal(data);
    for (const { offset, reason } of scanned.skipped) {
      const what = reason === "damaged" ? "a damaged record (bad checksum or JSON)" : "a record this version does not know";
      logger.warn({ file, offset }, `request journal ${file}: skipped ${what} at byte ${offset}`);
    }
    if (scanned.tornTail) {
      const { offset, bytes } = scanned.tornTail;
      logger.warn(
        { file, offset, bytes },
        `request journal ${file}: dropped a torn last record at byte ${offset} (${bytes} bytes, a write cut short); truncated to the last good line`,
      );
      // Not through the append handle: on Windows an append-only handle may not set the length.
      const truncating = await open(file, "r+");
      try {
        await truncating.truncate(scanned.goodBytes);
        await truncating.datasync();
      } finally {
        await truncating.close();
      }
    }
    const handle = await open(file, "a");
    if (data.length === 0) await syncFolder(path.dirname(file));
    const journalFile = new JournalFile(file, handle, logger);
    journalFile.stats.bytes = scanned.goodBytes;
    journalFile.stats.fileRecords = scanned.records.length;
    return { file: journalFile, records: scanned.records };
  }

  /** When to compact, and what the file should then hold. */
  setCompaction(shouldCompact: () => boolean, snapshot: () => JournalRecord[]): void {
    this.#shouldCompact = shouldCompact;
    this.#snapshot = snapshot;
  }

  /** Resolves when the line is written and, if `durable`, on the disk. */
  append(record: JournalRecord, durable: boolean): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#pending.push({ line: encodeRecord(record), durable, resolve, reject });
      this.#run();
    });
  }

  /** Rewrites the file to what `snapshot` returns, now (after the batch on the disk, if any). */
  compact(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#compactWanted = this.#snapshot;
      this.#compactWaiters.push({ resolve, reject });
      this.#run();
    });
  }

  /** Writes what is queued, then closes the handle. */
  async close(): Promise<void> {
    while (this.#loop) await this.#loop;
    await this.#handle.close();
  }

  #run(): void {
    this.#loop ??= this.#work()
      .catch((error: unknown) => this.#logger.error({ err: error, file: this.path }, `request journal ${this.path}: writer stopped`))
      .finally(() => {
        this.#loop = undefined;
        // An append that came in while the loop was returning still needs a writer.
        if (this.#pending.length > 0 || this.#compactWanted) this.#run();
      });
  }

  async #work(): Promise<void> {
    // Lets every append of this tick (ten accepts from one Promise.all, the messages of one socket read) join the first batch.
    await Promise.resolve();
    while (this.#pending.length > 0 || this.#compactWanted) {
      if (this.#compactWanted) await this.#compact(this.#compactWanted);
      else await this.#writeBatch(this.#pending.splice(0));
      if (!this.#compactWanted && this.stats.fileRecords >= this.#retryCompactionAt && this.#shouldCompact()) {
        this.#compactWanted = this.#snapshot;
      }
    }
  }

  async #writeBatch(batch: PendingLine[]): Promise<void> {
    const data = Buffer.from(batch.map((pending) => pending.line).join(""), "utf8");
    try {
      await writeAll(this.#handle, data);
      this.stats.records += batch.length;
      this.stats.fileRecords += batch.length;
      this.stats.bytes += data.length;
      if (batch.some((pending) => pending.durable)) {
        await this.#handle.datasync();
        this.stats.syncs++;
      }
    } catch (error) {
      this.#logger.error({ err: error, file: this.path }, `request journal ${this.path}: a write failed`);
      for (const pending of batch) pending.reject(error as Error);
      return;
    }
    for (const pending of batch) pending.resolve();
  }

  /**
   * Writes the live state to `<file>.tmp`, syncs it, and renames it over the journal (atomic on
   * POSIX and on Windows). The lines queued when it starts are already in the state the snapshot
   * is taken from, so they are done when the rename is; lines queued while it runs wait and go
   * into the new file. A crash before the rename leaves the old file whole; after it, the new.
   */
  async #compact(snapshot: () => JournalRecord[]): Promise<void> {
    this.#compactWanted = undefined;
    const waiters = this.#compactWaiters.splice(0);
    const covered = this.#pending.splice(0);
    const records = snapshot();
    const data = Buffer.from(records.map(encodeRecord).join(""), "utf8");
    const tmp = `${this.path}.tmp`;
    let closedOld = false;
    try {
      const handle = await open(tmp, "w");
      try {
        await writeAll(handle, data);
        await handle.datasync();
        this.stats.syncs++;
      } finally {
        await handle.close();
      }
      // Closed before the rename: Windows may refuse to replace a file that is open.
      await this.#handle.close();
      closedOld = true;
      await rename(tmp, this.path);
      await syncFolder(path.dirname(this.path));
    } catch (error) {
      this.#logger.warn({ err: error, file: this.path }, `request journal ${this.path}: compaction failed; appending to the old file`);
      await rm(tmp, { force: true }).catch(() => undefined);
      this.#retryCompactionAt = this.stats.fileRecords * 2;
      if (closedOld) this.#handle = await open(this.path, "a");
      // The covered lines were not written anywhere yet: they go out with the next batch.
      this.#pending.unshift(...covered);
      for (const waiter of waiters) waiter.reject(error as Error);
      return;
    }
    this.#handle = await open(this.path, "a");
    this.stats.compactions++;
    this.stats.bytes = data.length;
    this.stats.fileRecords = records.length;
    for (const pending of covered) pending.resolve();
    for (const waiter of waiters) waiter.resolve();
  }
}

async function writeAll(handle: FileHandle, data: Buffer): Promise<void> {
  let written = 0;
  while (written < data.length) written += (await handle.write(data, written, data.length - written)).bytesWritten;
}

/** Makes a new name in the folder (a created file, a rename) durable. POSIX only: Windows cannot open a folder for that. */
async function syncFolder(folder: string): Promise<void> {
  if (process.platform === "win32") return;
  const handle = await open(folder, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
