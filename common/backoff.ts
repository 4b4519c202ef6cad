/** The options of a {@link Backoff}. */
export interface BackoffOptions {
  /** First wait, ms. */
  firstMs: number;
  /** Longest wait, ms. */
  maxMs: number;
  /**
   * Spread of each wait around its nominal value, 0 to 1: 0.2 gives 80 % to 120 %. Agents that lose
   * one broker together should not come back in step. Defaults to `0`.
   */
  jitter?: number;
  /** Source of randomness for the jitter. Defaults to `Math.random`. */
  random?: () => number;
}

/**
 * Reconnect waits that double from `firstMs` up to `maxMs`, for the MQTT client and the serial
 * port alike. MQTT.js offers only a fixed `reconnectPeriod`, so the loop is ours.
 */
export class Backoff {
  readonly #options: BackoffOptions;
  #nominalMs: number;

  constructor(options: BackoffOptions) {
    this.#options = options;
    this.#nominalMs = options.firstMs;
  }

  /** The wait before the next try; each call doubles the one after it. */
  next(): number {
    const nominal = this.#nominalMs;
    this.#nominalMs = Math.min(nominal * 2, this.#options.maxMs);
    const jitter = this.#options.jitter ?? 0;
    if (jitter === 0) return nominal;
    const random = this.#options.random ?? Math.random;
    return Math.round(nominal * (1 - jitter + random() * 2 * jitter));
  }

  /** The wait `next()` would start from, without jitter. */
  get pendingMs(): number {
    return this.#nominalMs;
  }

  /** After a success: the next wait is `firstMs` again. */
  reset(): void {
    this.#nominalMs = this.#options.firstMs;
  }
}
