import path from "node:path";
import type { Logger } from "../../../common/logger.js";
import { JournalFile } from "./journalFile.js";
import type { JournalFileStats } from "./journalFile.js";
import type { JournalRecord } from "./journalRecord.js";
import { JournalMemory } from "./journalMemory.js";
import type { JournalEntry, JournalMessage, JournaledQuestion } from "./journalTypes.js";

export type { JournalEntry, JournalMessage, JournalRoute, JournalState, JournaledQuestion } from "./journalTypes.js";

export interface RequestJournalOptions {
  /** The journal's own folder (the MQTT transport gives one per agent id and broker, under `<state-dir>/journal/`); the file is `<dir>/requests.jsonl`. */
  dir: string;
  logger: Logger;
  /** Questions kept (finished or not). Default 1000. */
  maxEntries?: number;
  /** Questions older than this (by `arrivedAt`) are dropped. Default 24 h. */
  maxAgeMs?: number;
  /** Conversation sessions kept, the most recently saved. Default 64. */
  maxSessions?: number;
  /** Clock, for tests. Default `Date.now`. */
  now?: () => number;
}

/** Records appended, fdatasyncs, compactions, the file's bytes now; and (an addition) the lines in the file now. */
export type JournalStats = JournalFileStats;

/**
 * The crash-safe request journal: every MQTT question the agent has acknowledged, what became of
 * it, and the conversation sessions, so that a crash or a power cut loses none of them. After a
 * restart the agent answers `unfinished()` again and replays a stored final to a duplicate.
 *
 * Why this format: `<dir>/requests.jsonl`, append-only, one record per line, each
 * line `<crc32 hex of the JSON>\t<JSON>\n`.
 * - Appending is the cheapest durable write there is: one write and one fdatasync per batch,
 *   whatever the file's size; concurrent appends share them (group commit), so N questions
 *   arriving together cost one sync, not N.
 * - A power cut can only tear the end of an append-only file. The checksum tells a torn or
 *   half-zeroed last line from a good one (JSON alone cannot: a cut can leave valid JSON), so
 *   recovery drops exactly the torn tail and keeps everything before it; one damaged line in the
 *   middle costs that line only. node:zlib's crc32 needs no dependency.
 * - Plain text lines can be read with `tail` and `jq` (after `cut -f2`), and behave the same on
 *   Linux and Windows; rename-over for compaction is atomic on both.
 * - The file is bounded by compaction: when it holds more than about twice the live records it
 *   is rewritten to `requests.jsonl.tmp`, synced and renamed over the journal. Appends made
 *   meanwhile are queued and written to the new file after the rename.
 *
 * Durability: `accept`, `finish`, `expire` and `saveSession` resolve only when their record is on
 * the disk (the agent acknowledges an MQTT message to the broker after `accept`). `markAnswering`
 * is not synced: lost, the question is answered again from the start, as it would be anyway.
 */
export class RequestJournal {
  readonly #file: JournalFile;
  readonly #state: JournalMemory;
  readonly #now: () => number;
  /** The write of each `accepted` not yet on the disk: a duplicate accept waits for it too. */
  readonly #acceptWrites = new Map<string, Promise<void>>();
  #closing: Promise<void> | undefined;

  private constructor(file: JournalFile, state: JournalMemory, now: () => number) {
    this.#file = file;
    this.#state = state;
    this.#now = now;
  }

  static async open(options: RequestJournalOptions): Promise<RequestJournal> {
    const now = options.now ?? Date.now;
    const state = new JournalMemory({
      maxEntries: options.maxEntries ?? DEFAULT_MAX_ENTRIES,
      maxAgeMs: options.maxAgeMs ?? DEFAULT_MAX_AGE_MS,
      maxSessions: options.maxSessions ?? DEFAULT_MAX_SESSIONS,
    });
    const { file, records } = await JournalFile.open(path.join(options.dir, "requests.jsonl"), options.logger);
    for (const record of records) state.apply(record);
    state.prune(now());
    const shouldCompact = () => file.stats.fileRecords >= COMPACT_MIN_RECORDS && file.stats.fileRecords > 2 * state.liveRecordCount();
    file.setCompaction(shouldCompact, () => state.liveRecords());
    // A failed compaction has been logged; the journal works on the old file.
    if (shouldCompact()) await file.compact().catch(() => undefined);
    return new RequestJournal(file, state, now);
  }

  /** Durable when it resolves. A key already journaled is not added again (returns the existing entry). */
  async accept(question: JournaledQuestion): Promise<JournalEntry> {
    this.#assertOpen();
    const existing = this.#state.entries.get(question.key);
    if (existing) {
      await this.#acceptWrites.get(question.key);
      return copyEntry(existing);
    }
    const { key, id, route, request, arrivedAt } = question;
    const record = plainJson<JournalRecord>({ type: "accepted", key, id, route, request, arrivedAt });
    this.#state.apply(record);
    const entry = this.#state.entries.get(key)!;
    this.#state.prune(this.#now());
    const write = this.#file.append(record, true);
    this.#acceptWrites.set(key, write);
    try {
      await write;
    } catch (error) {
      // Not on the disk, so not accepted: the broker redelivers, and that accept starts afresh.
      if (this.#state.entries.get(key) === entry && entry.state === "accepted") this.#state.entries.delete(key);
      throw error;
    } finally {
      if (this.#acceptWrites.get(key) === write) this.#acceptWrites.delete(key);
    }
    return copyEntry(entry);
  }

  /** Not durable: after a crash an answering question is answered again from the start. */
  markAnswering(key: string): void {
    if (this.#closing || this.#state.entries.get(key)?.state !== "accepted") return;
    const record: JournalRecord = { type: "answering", key };
    this.#state.apply(record);
    // A failed write has been logged; the state in memory is right either way.
    this.#file.append(record, false).catch(() => undefined);
  }

  /** Durable when it resolves. A key not journaled (or pruned) or already finished is left as it is. */
  async finish(key: string, final: Record<string, unknown>): Promise<void> {
    this.#assertOpen();
    const entry = this.#state.entries.get(key);
    if (!entry || entry.state === "done") return;
    const record = plainJson<JournalRecord>({ type: "final", key, final });
    this.#state.apply(record);
    await this.#file.append(record, true);
  }

  /** Durable when it resolves: the question will not be answered (too old to answer after a restart). */
  async expire(key: string): Promise<void> {
    this.#assertOpen();
    const entry = this.#state.entries.get(key);
    if (!entry || entry.state === "done" || entry.state === "expired") return;
    const record: JournalRecord = { type: "expired", key };
    this.#state.apply(record);
    await this.#file.append(record, true);
  }

  lookup(key: string): JournalEntry | undefined {
    const entry = this.#state.entries.get(key);
    return entry && copyEntry(entry);
  }

  /** Accepted or answering, oldest arrival first (what to answer after a restart). */
  unfinished(): JournalEntry[] {
    return this.#state.unfinished().map(copyEntry);
  }

  /** Durable when it resolves. `messages` is the whole bounded history after the turn. */
  async saveSession(session: string, messages: JournalMessage[]): Promise<void> {
    this.#assertOpen();
    const record = plainJson<JournalRecord>({
      type: "session",
      session,
      messages: messages.map(({ role, content }) => ({ role, content })),
    });
    this.#state.apply(record);
    await this.#file.append(record, true);
  }

  session(session: string): JournalMessage[] | undefined {
    return this.#state.sessions.get(session)?.map((message) => ({ ...message }));
  }

  /** Rewrites the file to the live records now, whatever its size (the journal also does it by itself). */
  compact(): Promise<void> {
    this.#assertOpen();
    return this.#file.compact();
  }

  /** Flushes pending writes, then closes the file. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= this.#file.close();
    return this.#closing;
  }

  /** Figures for tests and bench: records written, fsyncs, compactions, file bytes. */
  get stats(): JournalStats {
    return { ...this.#file.stats };
  }

  #assertOpen(): void {
    if (this.#closing) throw new Error(`request journal ${this.#file.path} is closed`);
  }
}

const DEFAULT_MAX_ENTRIES = 1000;
const DEFAULT_MAX_AGE_MS = 24 * 60 * 60 * 1000;
const DEFAULT_MAX_SESSIONS = 64;
/** Below this many lines the file is left alone, however much of it is stale: a rewrite would cost more than it saves. */
const COMPACT_MIN_RECORDS = 64;

/** What a replay would give back: the JSON of the value, parsed (undefined fields gone, no shared objects). */
function plainJson<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

/** A copy down to the route; `request` and `final` are shared, to be read only. */
function copyEntry(entry: JournalEntry): JournalEntry {
  const copy: JournalEntry = { question: { ...entry.question, route: { ...entry.question.route } }, state: entry.state };
  if (entry.final) copy.final = entry.final;
  return copy;
}
