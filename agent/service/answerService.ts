import type { ChatMessage, GenerateResult, GenerationParams, ModelRuntime } from "../engine/modelRuntime.js";
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
  /** Called once the request has a sequence and its generation starts. */
  onStart?: (() => void) | undefined;
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

  readonly #contextProvider: (() => Promise<string | undefined>) | undefined;

  constructor(runtime: ModelRuntime, queue: RequestQueue, defaults: AnswerDefaults, options: AnswerServiceOptions = {}) {
    this.runtime = runtime;
    this.queue = queue;
    this.defaults = defaults;
    this.#contextProvider = options.contextProvider;
  }

  async answer(input: AnswerRequest, options: AnswerOptions = {}): Promise<GenerateResult> {
    const request = await this.#withContext(input);
    const enqueuedAt = performance.now();
    const params = { ...this.defaults.params, ...definedOnly(request.params ?? {}) };
    return this.queue.run(
      async (slot) => {
        const queuedMs = Math.round(performance.now() - enqueuedAt);
        options.onStart?.();
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

  /** Chat requests get the live context (e.g. the instrument's settings) after their system prompt. */
  async #withContext(request: AnswerRequest): Promise<AnswerRequest> {
    if (!this.#contextProvider || (request.mode ?? "chat") !== "chat") return request;
    let context: string | undefined;
    try {
      context = await this.#contextProvider();
    } catch (error) {
      context = `(live context could not be read: ${(error as Error).message})`;
    }
    if (!context) return request;
    const messages = request.messages ?? [];
    const system = messages.find((m) => m.role === "system");
    // A system message in the conversation wins over `system` in the runtime, so extend that one.
    if (system) return { ...request, messages: messages.map((m) => (m === system ? { ...m, content: `${m.content}\n\n${context}` } : m)) };
    return { ...request, system: `${request.system ?? this.defaults.system}\n\n${context}` };
  }
}

export interface AnswerServiceOptions {
  /** Text added to the system prompt of chat requests (the instrument's live settings); must not throw. Defaults to none. */
  contextProvider?: (() => Promise<string | undefined>) | undefined;
}

function definedOnly<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
