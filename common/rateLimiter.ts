import { LruMap } from "./lruMap.js";

export interface RateLimiterOptions {
  /** Requests a minute each key may make, with bursts up to the same number; 0 is no limit. */
  perMinute: number;
  /** Most keys remembered. Defaults to 1000. */
  maxKeys?: number;
  /** Clock in ms (tests hand in their own). Defaults to `performance.now`. */
  now?: () => number;
}

/**
 * A token bucket per requester, shared by the transports that take questions from programs.
 * The key is what identifies a requester in practice: over MQTT, which does not tell a
 * subscriber who published, its reply topic; over HTTP its API key or remote address.
 */
export class RateLimiter {
  readonly #perMinute: number;
  readonly #now: () => number;
  readonly #buckets: LruMap<string, { tokens: number; at: number }>;

  constructor(options: RateLimiterOptions) {
    this.#perMinute = options.perMinute;
    this.#now = options.now ?? (() => performance.now());
    this.#buckets = new LruMap(options.maxKeys ?? 1000);
  }

  /** Takes one request for `key`; false when its bucket is empty. */
  take(key: string): boolean {
    if (this.#perMinute <= 0) return true;
    const now = this.#now();
    const bucket = this.#buckets.get(key) ?? { tokens: this.#perMinute, at: now };
    bucket.tokens = Math.min(this.#perMinute, bucket.tokens + ((now - bucket.at) * this.#perMinute) / 60_000);
    bucket.at = now;
    const allowed = bucket.tokens >= 1;
    if (allowed) bucket.tokens -= 1;
    this.#buckets.set(key, bucket);
    return allowed;
  }
}
