import type { AnswerOptions, AnswerRequest, AnswerResult, AnswerService } from "./answerService.js";
import type { ChatMessage } from "../engine/modelRuntime.js";

export interface ConversationOptions {
  /** Most messages kept (user and assistant); older turns are dropped first. Defaults to 40. */
  maxMessages?: number;
  /** The history to go on from (a session kept across restarts). Defaults to none. */
  messages?: readonly ChatMessage[];
}

/**
 * Multi-turn history for one person or one MQTT session key. A turn that was cancelled
 * or failed leaves the history as it was, so a retry does not see half an answer.
 */
export class Conversation {
  readonly #maxMessages: number;
  #messages: ChatMessage[];

  constructor(options: ConversationOptions = {}) {
    this.#maxMessages = options.maxMessages ?? 40;
    this.#messages = [...(options.messages ?? [])].slice(-this.#maxMessages);
  }

  get messages(): readonly ChatMessage[] {
    return this.#messages;
  }

  reset(): void {
    this.#messages = [];
  }

  /** `overrides` replace the configured system prompt or sampling for this turn (MQTT `system`, `params`). */
  async ask(
    service: AnswerService,
    question: string,
    options: AnswerOptions = {},
    overrides: Pick<AnswerRequest, "system" | "params"> = {},
  ): Promise<AnswerResult> {
    const messages: ChatMessage[] = [...this.#messages, { role: "user", content: question }];
    const result = await service.answer({ mode: "chat", messages, ...overrides }, options);
    if (result.finishReason !== "cancelled") {
      // Keep the turn as the model saw it (with its instrument reading), so the next turn's
      // history matches what is already in the KV cache and only the new turn is evaluated.
      if (result.sentQuestion !== undefined) messages[messages.length - 1] = { role: "user", content: result.sentQuestion };
      messages.push({ role: "assistant", content: result.text });
      // Drop whole turns (a user message and its answer) from the front.
      while (messages.length > this.#maxMessages) messages.splice(0, 2);
      this.#messages = messages;
    }
    return result;
  }
}
