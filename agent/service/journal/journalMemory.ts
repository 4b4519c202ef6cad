import type { JournalRecord } from "./journalRecord.js";
import type { JournalEntry, JournalMessage } from "./journalTypes.js";

export interface JournalLimits {
  maxEntries: number;
  maxAgeMs: number;
  maxSessions: number;
}

/**
 * What the journal's records add up to, in memory. Replay on open and every live call go
 * through `apply`, so the state after a restart is the state before it. Applying a record
 * twice changes nothing (an `accepted` for a known key, a `final` for a finished question),
 * which is what lets a compaction or a retried write repeat a record safely.
 */
export class JournalMemory {
  /** In journal order, which is arrival order for the transport that stamps `arrivedAt`. */
  readonly entries = new Map<string, JournalEntry>();
  /** Least recently saved first. */
  readonly sessions = new Map<string, JournalMessage[]>();
  readonly #limits: JournalLimits;

  constructor(limits: JournalLimits) {
    this.#limits = limits;
  }

  apply(record: JournalRecord): void {
    switch (record.type) {
      case "accepted": {
        if (this.entries.has(record.key)) return;
        const { type: _type, ...question } = record;
        this.entries.set(record.key, { question, state: "accepted" });
        return;
      }
      case "answering": {
        const entry = this.entries.get(record.key);
        if (entry?.state === "accepted") entry.state = "answering";
        return;
      }
      case "final": {
        const entry = this.entries.get(record.key);
        if (entry && entry.state !== "done") {
          entry.state = "done";
          entry.final = record.final;
        }
        return;
      }
      case "expired": {
        const entry = this.entries.get(record.key);
        if (entry && entry.state !== "done") entry.state = "expired";
        return;
      }
      case "session":
        this.sessions.delete(record.session);
        this.sessions.set(record.session, record.messages);
        while (this.sessions.size > this.#limits.maxSessions) this.sessions.delete(this.sessions.keys().next().value as string);
        return;
    }
  }

  /**
   * Drops questions older than `maxAgeMs`, then the oldest beyond `maxEntries`: finished ones
   * first (their final was sent; keeping it only serves a late duplicate), unfinished ones only
   * when there are more of those than the bound.
   */
  prune(now: number): void {
    const oldest = now - this.#limits.maxAgeMs;
    for (const [key, entry] of this.entries) if (entry.question.arrivedAt < oldest) this.entries.delete(key);
    let excess = this.entries.size - this.#limits.maxEntries;
    if (excess <= 0) return;
    for (const [key, entry] of this.entries) {
      if (excess === 0) return;
      if (entry.state === "done" || entry.state === "expired") {
        this.entries.delete(key);
        excess--;
      }
    }
    for (const key of this.entries.keys()) {
      if (excess-- === 0) return;
      this.entries.delete(key);
    }
  }

  /** Accepted or answering, oldest arrival first. */
  unfinished(): JournalEntry[] {
    return [...this.entries.values()]
      .filter((entry) => entry.state === "accepted" || entry.state === "answering")
      .sort((a, b) => a.question.arrivedAt - b.question.arrivedAt);
  }

  /** The fewest records that rebuild this state, in an order whose replay gives it back (sessions by recency). */
  liveRecords(): JournalRecord[] {
    const records: JournalRecord[] = [];
    for (const { question, state, final } of this.entries.values()) {
      records.push({ type: "accepted", ...question });
      if (state === "answering") records.push({ type: "answering", key: question.key });
      else if (state === "done" && final) records.push({ type: "final", key: question.key, final });
      else if (state === "expired") records.push({ type: "expired", key: question.key });
    }
    for (const [session, messages] of this.sessions) records.push({ type: "session", session, messages });
    return records;
  }

  liveRecordCount(): number {
    let count = this.entries.size + this.sessions.size;
    for (const entry of this.entries.values()) if (entry.state !== "accepted") count++;
    return count;
  }
}
