/**
 * A way questions reach the agent (local console, MQTT, serial console). `run` starts
 * them in order and stops them in reverse; transports never call each other, they share
 * only the AnswerService and its queue.
 */
export interface Transport {
  /** Short name for logs and shutdown reports, e.g. `mqtt`. */
  readonly name: string;
  /** Opens ports and connections; rejects when the transport cannot start at all. */
  start(): Promise<void>;
  /**
   * Stops accepting, cancels in-flight answers, says goodbye (e.g. retained offline) and
   * closes. Must be idempotent and finish by the deadline.
   */
  stop(deadline: { ms: number }): Promise<void>;
  /** Resolves when the transport ends by itself (e.g. `/bye` on the local console). */
  readonly ended?: Promise<void>;
}
