/**
 * Replies produced while the broker is out of reach wait here, in order, and go out after
 * the reconnect. Bounded: when full, the oldest streamed chunk goes first, then the oldest
 * message of any kind (a dropped final is still remembered for a redelivered request).
 */

export interface OutboxEntry {
  topic: string;
  payload: string | Buffer;
  qos: 0 | 1;
  retain: boolean;
  correlationData?: Buffer | undefined;
  /** `chunk` entries are dropped first when the outbox is full. */
  kind: "chunk" | "final" | "status";
}

export class Outbox {
  readonly limit: number;
  #entries: OutboxEntry[] = [];
  #dropped = 0;

  /** `limit` is the most entries held. */
  constructor(limit: number) {
    this.limit = Math.max(1, limit);
  }

  get size(): number {
    return this.#entries.length;
  }

  /** Entries dropped because the outbox was full, since start. */
  get dropped(): number {
    return this.#dropped;
  }

  push(entry: OutboxEntry): void {
    if (this.#entries.length >= this.limit) {
      const chunk = this.#entries.findIndex((e) => e.kind === "chunk");
      this.#entries.splice(chunk >= 0 ? chunk : 0, 1);
      this.#dropped += 1;
    }
    this.#entries.push(entry);
  }

  /** Takes every entry, oldest first. */
  drain(): OutboxEntry[] {
    return this.#entries.splice(0);
  }
}
