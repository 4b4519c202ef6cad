import { AgentError } from "../../common/errors.js";

export interface RequestQueueOptions {
  /** How many jobs run at once (one per model sequence). */
  slots: number;
  /** Jobs allowed to wait beyond the running ones before `IA_ERR_QUEUE_FULL`. Defaults to 32. */
  capacity?: number;
}

export interface EnqueueOptions {
  /** Aborting while waiting removes the job and rejects with `IA_ERR_CANCELLED`. */
  signal?: AbortSignal | undefined;
  /** Told the job's place in line (1 = next) whenever it changes while waiting. */
  onPosition?: ((position: number) => void) | undefined;
}

interface Waiting {
  start: (slot: number) => void;
  reject: (error: unknown) => void;
  onPosition: ((position: number) => void) | undefined;
}

/**
 * The one queue that every transport shares, so the console, MQTT and the serial line
 * never make the model run more generations than it has sequences for. FIFO; a job
 * holds a slot index for its whole run, which maps to one context sequence.
 *
 * A job gets the lowest free slot. The running slots then stay 0..n-1 as far as they can,
 * and llama.cpp decodes consecutive sequence ids as one graph run (engine/batching.ts,
 * gatherGeneratingSequences); one person asking one question after another also stays on
 * slot 0, where the conversation so far is still in the KV cache.
 */
export class RequestQueue {
  readonly slots: number;
  readonly capacity: number;
  #free: number[];
  #waiting: Waiting[] = [];
  #closed = false;

  constructor(options: RequestQueueOptions) {
    this.slots = Math.max(1, options.slots);
    this.capacity = options.capacity ?? 32;
    this.#free = Array.from({ length: this.slots }, (_, i) => i);
  }

  /** Jobs waiting for a slot. */
  get waiting(): number {
    return this.#waiting.length;
  }

  /** Jobs running now. */
  get running(): number {
    return this.slots - this.#free.length;
  }

  /** Runs `job` on a free slot, waiting in line if none is free. */
  async run<T>(job: (slot: number) => Promise<T>, options: EnqueueOptions = {}): Promise<T> {
    const slot = await this.#acquire(options);
    try {
      return await job(slot);
    } finally {
      this.#release(slot);
    }
  }

  /** Refuses new jobs and rejects the waiting ones; running jobs finish on their own. */
  close(): void {
    this.#closed = true;
    for (const waiting of this.#waiting.splice(0)) {
      waiting.reject(new AgentError("IA_ERR_DISPOSED", "the agent is shutting down"));
    }
  }

  #acquire(options: EnqueueOptions): Promise<number> {
    if (this.#closed) return Promise.reject(new AgentError("IA_ERR_DISPOSED", "the agent is shutting down"));
    if (options.signal?.aborted) return Promise.reject(new AgentError("IA_ERR_CANCELLED", "cancelled before it started"));
    const free = this.#free.shift();
    if (free !== undefined) return Promise.resolve(free);
    if (this.#waiting.length >= this.capacity) {
      return Promise.reject(
        new AgentError(
          "IA_ERR_QUEUE_FULL",
          `the queue is full (${this.running} answering, ${this.#waiting.length} waiting, capacity ${this.capacity}); try again later`,
        ),
      );
    }
    return new Promise<number>((resolve, reject) => {
      const onAbort = () => {
        const index = this.#waiting.indexOf(entry);
        if (index >= 0) this.#waiting.splice(index, 1);
        this.#announcePositions();
        reject(new AgentError("IA_ERR_CANCELLED", "cancelled while waiting in the queue"));
      };
      const entry: Waiting = {
        start: (slot) => {
          options.signal?.removeEventListener("abort", onAbort);
          resolve(slot);
        },
        reject: (error) => {
          options.signal?.removeEventListener("abort", onAbort);
          reject(error);
        },
        onPosition: options.onPosition,
      };
      options.signal?.addEventListener("abort", onAbort, { once: true });
      this.#waiting.push(entry);
      safeCall(entry.onPosition, this.#waiting.length);
    });
  }

  #release(slot: number): void {
    const next = this.#waiting.shift();
    if (next) {
      next.start(slot);
      this.#announcePositions();
    } else {
      this.#free.push(slot);
      this.#free.sort((a, b) => a - b);
    }
  }

  #announcePositions(): void {
    this.#waiting.forEach((entry, index) => safeCall(entry.onPosition, index + 1));
  }
}

/** A listener's failure must never break the queue. */
function safeCall(listener: ((position: number) => void) | undefined, position: number): void {
  try {
    listener?.(position);
  } catch {
    // ignored on purpose: the queue outlives any one listener
  }
}
