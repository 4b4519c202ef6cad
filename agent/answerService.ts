import type { ChatMessage, GenerateResult, GenerationParams, ModelRuntime } from "./modelRuntime.js";
import type { RequestQueue } from "./requestQueue.js";

export interface AnswerRequest {
  /** `chat` (default) uses the chat template; `raw` completes `prompt` as is. */
  mode?: "chat" | "raw";
  /** Conversation ending with the new user message (chat mode). */
  messages?: ChatMessage[];
  /** Text to complete (raw mode). */
  prompt?: string;
  /** Replaces the configured system prompt for this request. Defaults to the configured one. */
  system?: string | undefined;
  /** Overrides the configured sampling for this request. */
  params?: GenerationParams | undefined;
}

export interface AnswerOptions {
  signal?: AbortSignal | undefined;
  onDelta?: ((text: string) => void) | undefined;
  /** Told the place in line while the model serves others. */
  onQueued?: ((position: number) => void) | undefined;
}

export interface AnswerDefaults {
  system: string;
  params: GenerationParams;
}

export interface AnswerStats {
  answered: number;
  lastTokensPerSecond: number;
  lastTtftMs: number;
}

/**
 * Every transport asks through this service: it applies the configured defaults, waits in
 * the shared queue for a free sequence and keeps the figures `/status` and health report.
 */
export class AnswerService {
  readonly runtime: ModelRuntime;
  readonly queue: RequestQueue;
  readonly defaults: AnswerDefaults;
  readonly stats: AnswerStats = { answered: 0, lastTokensPerSecond: 0, lastTtftMs: 0 };

  constructor(runtime: ModelRuntime, queue: RequestQueue, defaults: AnswerDefaults) {
    this.runtime = runtime;
    this.queue = queue;
    this.defaults = defaults;
  }

  async answer(request: AnswerRequest, options: AnswerOptions = {}): Promise<GenerateResult> {
    const enqueuedAt = performance.now();
    const params = { ...this.defaults.params, ...definedOnly(request.params ?? {}) };
    return this.queue.run(
      async (slot) => {
        const queuedMs = Math.round(performance.now() - enqueuedAt);
        const result = await this.runtime.generate(slot, {
          mode: request.mode ?? "chat",
          ...(request.messages ? { messages: request.messages } : {}),
          ...(request.prompt !== undefined ? { prompt: request.prompt } : {}),
          system: request.system ?? this.defaults.system,
          params,
          signal: options.signal,
          onDelta: options.onDelta,
        });
        result.timings.queuedMs = queuedMs;
        this.stats.answered += 1;
        if (result.usage.completionTokens > 1) {
          this.stats.lastTokensPerSecond = result.timings.tokensPerSecond;
          this.stats.lastTtftMs = result.timings.ttftMs;
        }
        return result;
      },
      { signal: options.signal, onPosition: options.onQueued },
    );
  }
}

function definedOnly<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
