/** The journal's data types; `requestJournal.ts` re-exports them (the module's API is that file). */

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

export interface JournalMessage {
  role: string;
  content: string;
}
