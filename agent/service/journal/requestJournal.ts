import type { Logger } from "../../../common/logger.js";

/** Where the final (and any chunks) of a journaled question go: enough to answer it after a restart. */
export interface JournalRoute {
  replyTo: string;
  /** MQTT 5 correlation data, base64; absent when the request had none. */
  correlationData?: string;
  protocolVersion: 4 | 5;
  responseTopic?: string;
}

export interface JournaledQuestion {
  /** The idempotency key: a second request with the same key is the same question. */
  key: string;
  id: string;
  route: JournalRoute;
  /** The parsed ask request, as plain JSON. */
  request: unknown;
  /** Epoch milliseconds. */
  arrivedAt: number;
}

export type JournalState = "accepted" | "answering" | "done" | "expired";

export interface JournalEntry {
  question: JournaledQuestion;
  state: JournalState;
  /** The final reply payload, once `state` is `done`. */
  final?: Record<string, unknown>;
}

export interface RequestJournalOptions {
  /** The agent's state directory; the journal lives in `<dir>/journal/requests.jsonl`. */
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

export interface JournalMessage {
  role: string;
  content: string;
}

export interface JournalStats {
  records: number;
  syncs: number;
  compactions: number;
  bytes: number;
}

export class RequestJournal {
  static async open(_options: RequestJournalOptions): Promise<RequestJournal> {
    throw new Error("RequestJournal: not implemented yet");
  }

  /** Durable when it resolves. A key already journaled is not added again (returns the existing entry). */
  accept(_question: JournaledQuestion): Promise<JournalEntry> {
    throw new Error("not implemented");
  }

  /** Not durable: after a crash an answering question is answered again from the start. */
  markAnswering(_key: string): void {
    throw new Error("not implemented");
  }

  /** Durable when it resolves. */
  finish(_key: string, _final: Record<string, unknown>): Promise<void> {
    throw new Error("not implemented");
  }

  /** Durable when it resolves: the question will not be answered (too old to answer after a restart). */
  expire(_key: string): Promise<void> {
    throw new Error("not implemented");
  }

  lookup(_key: string): JournalEntry | undefined {
    throw new Error("not implemented");
  }

  /** Accepted or answering, oldest arrival first (what to answer after a restart). */
  unfinished(): JournalEntry[] {
    throw new Error("not implemented");
  }

  /** Durable when it resolves. `messages` is the whole bounded history after the turn. */
  saveSession(_session: string, _messages: JournalMessage[]): Promise<void> {
    throw new Error("not implemented");
  }

  session(_session: string): JournalMessage[] | undefined {
    throw new Error("not implemented");
  }

  /** Flushes pending writes, then closes the file. Idempotent. */
  close(): Promise<void> {
    throw new Error("not implemented");
  }

  /** Figures for tests and bench: records written, fsyncs, compactions, file bytes. */
  get stats(): JournalStats {
    throw new Error("not implemented");
  }
}
