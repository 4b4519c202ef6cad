import { toAgentError } from "../../common/errors.js";
import type { ChatMessage, GenerateResult, GenerationParams, ModelRuntime, ToolExchange } from "../engine/modelRuntime.js";
import type { AgentMetrics } from "./metrics.js";
import type { RequestQueue } from "./requestQueue.js";
import type { ToolBox, ToolRecord } from "./toolBox.js";

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
  /** Told each instrument call the model made, once it has its result. */
  onToolCall?: ((record: ToolRecord) => void) | undefined;
  /** Who asked (`mqtt`, `http`, `console`, `serial`, `cli`): the `transport` label of the answer and error metrics. Defaults to `unknown`. */
  transport?: string | undefined;
}

/** An answer, with what grounded it. */
export interface AnswerResult extends GenerateResult {
  /** The live context the model saw in the question's turn (the instrument reading), when there was one. */
  context?: string | undefined;
  /** The user turn as the model saw it (context included): what a conversation keeps, so the next turn reuses the cache. */
  sentQuestion?: string | undefined;
  /** The model's instrument calls, in order, with results or errors. */
  tools?: ToolRecord[] | undefined;
  /** The model asked for more calls than `--tool-calls-max`; it then answered without tools. */
  toolLimitReached?: boolean | undefined;
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
  /** Where answers, errors and tool calls are counted; transports count their own refusals here too. */
  readonly metrics: AgentMetrics | undefined;

  readonly #contextProvider: (() => Promise<string | undefined>) | undefined;
  readonly #tools: ToolBox | undefined;

  constructor(runtime: ModelRuntime, queue: RequestQueue, defaults: AnswerDefaults, options: AnswerServiceOptions = {}) {
    this.runtime = runtime;
    this.queue = queue;
    this.defaults = defaults;
    this.#contextProvider = options.contextProvider;
    this.#tools = options.tools;
    this.metrics = options.metrics;
  }

  /** The tools chat answers may call, when the model is given any. */
  get tools(): ToolBox | undefined {
    return this.#tools;
  }

  /** Every answer and every error thrown (queue full, prompt too long, cancelled while waiting) is counted under `options.transport`. */
  async answer(input: AnswerRequest, options: AnswerOptions = {}): Promise<AnswerResult> {
    const transport = options.transport ?? "unknown";
    try {
      const result = await this.#answer(input, options);
      this.metrics?.countAnswer(transport, result);
      return result;
    } catch (error) {
      this.metrics?.countError(toAgentError(error).code, transport);
      throw error;
    }
  }

  async #answer(input: AnswerRequest, options: AnswerOptions): Promise<AnswerResult> {
    const { request, context, sentQuestion } = await this.#withContext(input);
    const enqueuedAt = performance.now();
    const params = { ...this.defaults.params, ...definedOnly(request.params ?? {}) };
    return this.queue.run(
      async (slot) => {
        const queuedMs = Math.round(performance.now() - enqueuedAt);
        options.onStart?.();
        const result: AnswerResult = await this.#generateWithTools(slot, request, params, options);
        if (context !== undefined) result.context = context;
        if (sentQuestion !== undefined) result.sentQuestion = sentQuestion;
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

  /**
   * One generation, or with tools a few: each time the model stops to call instrument tools
   * the calls run here (in the agent, where the bridge is), their results go back in, and the
   * model goes on from where it stopped, on the same slot. Past `maxCalls` it answers once more
   * without tools, so a model that keeps calling still ends with an answer.
   */
  async #generateWithTools(slot: number, request: AnswerRequest, params: GenerationParams, options: AnswerOptions): Promise<AnswerResult> {
    const chat = (request.mode ?? "chat") === "chat";
    const tools = chat ? this.#tools : undefined;
    const exchanges: ToolExchange[] = [];
    const records: ToolRecord[] = [];
    let text = "";
    let limitReached = false;
    let first: GenerateResult | undefined;
    let completionTokens = 0;
    let promptTokens = 0;
    for (;;) {
      const offerTools = tools !== undefined && !limitReached;
      const result = await this.runtime.generate(slot, {
        mode: request.mode ?? "chat",
        ...(request.messages ? { messages: request.messages } : {}),
        ...(request.prompt !== undefined ? { prompt: request.prompt } : {}),
        system: request.system ?? this.defaults.system,
        params,
        signal: options.signal,
        onDelta: options.onDelta,
        ...(offerTools ? { tools: tools.specs } : {}),
        ...(exchanges.length > 0 ? { toolExchanges: exchanges } : {}),
      });
      first ??= result;
      promptTokens += result.usage.promptTokens;
      completionTokens += result.usage.completionTokens;
      text += result.text;
      const calls = result.toolCalls ?? [];
      if (!offerTools || calls.length === 0 || result.finishReason === "cancelled") {
        if (exchanges.length === 0) return result;
        return {
          ...result,
          text,
          usage: { promptTokens, completionTokens },
          timings: { ...result.timings, ttftMs: first.timings.ttftMs },
          tools: records,
          ...(limitReached ? { toolLimitReached: true } : {}),
        };
      }
      let textBefore = result.text;
      for (const call of calls) {
        if (records.length >= tools.maxCalls) {
          limitReached = true;
          break;
        }
        const record = await tools.run(call);
        records.push(record);
        this.metrics?.countToolCall(record);
        options.onToolCall?.(record);
        exchanges.push({ ...call, textBefore, result: record.error === undefined ? record.result : { error: record.error } });
        textBefore = "";
      }
    }
  }

  /**
   * Chat requests get the live context (the instrument's reading) at the start of their newest
   * user turn, not in the system prompt: a reading that changes between turns then leaves the
   * cached system prompt and earlier turns valid, and only the new turn is evaluated.
   */
  async #withContext(request: AnswerRequest): Promise<{ request: AnswerRequest; context?: string; sentQuestion?: string }> {
    if (!this.#contextProvider || (request.mode ?? "chat") !== "chat") return { request };
    const messages = request.messages ?? [];
    const last = messages.at(-1);
    if (last?.role !== "user") return { request };
    let context: string | undefined;
    try {
      context = await this.#contextProvider();
    } catch (error) {
      context = `(live context could not be read: ${(error as Error).message})`;
    }
    if (!context) return { request };
    const sentQuestion = `${context}\n\n${last.content}`;
    return { request: { ...request, messages: [...messages.slice(0, -1), { ...last, content: sentQuestion }] }, context, sentQuestion };
  }
}

export interface AnswerServiceOptions {
  /** Text put before the newest user turn of chat requests (the instrument's live reading); must not throw. Defaults to none. */
  contextProvider?: (() => Promise<string | undefined>) | undefined;
  /** Instrument tools the model may call in chat answers. Defaults to none. */
  tools?: ToolBox | undefined;
  /** Counts answers, errors and tool calls. Defaults to none. */
  metrics?: AgentMetrics | undefined;
}

function definedOnly<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
