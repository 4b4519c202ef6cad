import pino from "pino";
import { AgentError } from "../../../common/errors.js";
import { serializeError } from "./engineProtocol.js";
import type { AgentToEngine, EngineLoadOptions, EngineResult, EngineToAgent } from "./engineProtocol.js";
import type { LlamaRuntime } from "../llamaRuntime.js";

/**
 * The engine process (its entry is engineMain.ts): llama.cpp through `llamaRuntime.ts`,
 * alone in a Node process whose libuv pool has one thread (see `engineProcess.ts` for why).
 * It serves one agent over the IPC channel and ends when that channel closes, so it never
 * outlives the agent.
 */

function send(message: EngineToAgent): void {
  // A closed channel means the agent is gone; "disconnect" below ends this process.
  if (process.connected) process.send?.(message);
}

/** The engine's log lines travel to the agent, which writes them with its own logger. */
function forwardingLogger(level: string) {
  return pino({ level, base: undefined }, { write: (line: string) => send({ type: "log", line }) });
}

/**
 * Text deltas leave the engine as the first one comes (time to first token), then at most
 * one message per interval. Every message wakes the agent, which then publishes over MQTT
 * or writes to the serial port on the same two cores that run llama.cpp's two threads; a
 * message per token cost generation over MQTT about 8% here. There is no timer: text is
 * sent only from the token callback, between two decodes, because a timer firing during a
 * decode woke both processes there and slowed a 4-sequence batch from 105 to 170 ms.
 * A tenth of a second is below what a person reading a console notices.
 */
export class DeltaBatcher {
  #pending = "";
  #lastSentAt: number | undefined;
  readonly #send: (text: string) => void;
  readonly #intervalMs: number;
  readonly #now: () => number;

  constructor(send: (text: string) => void, intervalMs = 100, now: () => number = () => performance.now()) {
    this.#send = send;
    this.#intervalMs = intervalMs;
    this.#now = now;
  }

  push(text: string): void {
    this.#pending += text;
    const now = this.#now();
    if (this.#lastSentAt === undefined || now - this.#lastSentAt >= this.#intervalMs) this.#sendPending(now);
  }

  /** Sends what is waiting now; call before the final result so no text comes after it. */
  flush(): void {
    this.#sendPending(this.#now());
  }

  #sendPending(now: number): void {
    if (!this.#pending) return;
    const text = this.#pending;
    this.#pending = "";
    this.#lastSentAt = now;
    this.#send(text);
  }
}

export async function serveEngine(): Promise<void> {
  // Ctrl-C at a terminal reaches the whole process group and systemd stops the whole
  // cgroup: the agent decides what to cancel and when the engine ends, not the signal.
  process.on("SIGINT", () => undefined);
  process.on("SIGTERM", () => undefined);
  process.on("disconnect", () => process.exit(0));

  let runtime: LlamaRuntime | undefined;
  const running = new Map<number, AbortController>();

  const answer = async (id: number, work: () => Promise<EngineResult>) => {
    try {
      send({ type: "done", id, result: await work() });
    } catch (error) {
      send({ type: "failed", id, error: serializeError(error) });
    }
  };
  const loaded = (): LlamaRuntime => {
    if (!runtime) throw new AgentError("IA_ERR_INTERNAL", "the engine has no model loaded yet");
    return runtime;
  };

  const load = async (options: EngineLoadOptions) => {
    try {
      const { LlamaRuntime } = await import("../llamaRuntime.js");
      runtime = await LlamaRuntime.load({
        ...options,
        logger: forwardingLogger(options.logLevel),
        ...(options.reportProgress ? { onLoadProgress: (fraction: number) => send({ type: "progress", fraction }) } : {}),
      });
      send({ type: "loaded", info: runtime.info, slots: runtime.slots });
    } catch (error) {
      send({ type: "loadFailed", error: serializeError(error) });
    }
  };

  process.on("message", (message: AgentToEngine) => {
    switch (message.type) {
      case "load":
        void load(message.options);
        break;
      case "generate": {
        const controller = new AbortController();
        running.set(message.id, controller);
        const deltas = new DeltaBatcher((text) => send({ type: "delta", id: message.id, text }));
        void answer(message.id, async () => {
          try {
            return await loaded().generate(message.slot, {
              ...message.request,
              signal: controller.signal,
              ...(message.stream ? { onDelta: (text: string) => deltas.push(text) } : {}),
            });
          } finally {
            deltas.flush();
          }
        }).finally(() => running.delete(message.id));
        break;
      }
      case "abort":
        running.get(message.id)?.abort();
        break;
      case "countTokens":
        void answer(message.id, () => loaded().countTokens(message.text));
        break;
      case "raw":
        void answer(message.id, () => loaded().rawEvaluationBaseline(message.slot, message.options));
        break;
      case "stats":
        void answer(message.id, () => loaded().stats());
        break;
      case "dispose":
        void (async () => {
          for (const controller of running.values()) controller.abort();
          await runtime?.dispose().catch(() => undefined);
          process.exit(0);
        })();
        break;
    }
  });
}
