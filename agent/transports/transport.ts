import type { AgentError } from "../../common/errors.js";

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
  /**
   * Resolves when the transport ends by itself: with nothing when the person quit (`/bye` on
   * the local console: `run` stops), with the error when it gave up on its own (another agent
   * holds the MQTT id: the other transports keep serving).
   */
  readonly ended?: Promise<AgentError | void>;
  /** One line for the console's banner and `/status`, e.g. `mqtt     online, MQTT 5, ...`. */
  readonly summary?: string;
}
