import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { AgentError, toAgentError } from "../../../common/errors.js";
import type { AnswerRequest, AnswerResult } from "../../service/answerService.js";
import type { ToolRecord } from "../../service/toolBox.js";
import type { HttpContext, HttpHandler } from "./httpHandler.js";
import { openAiError, sendError, sendJson } from "./httpErrors.js";
import { parseChatCompletion, parseCompletion } from "./openaiWire.js";
import type { OpenAiRequest } from "./openaiWire.js";
import { SseStream } from "./sse.js";
import { StopSequences } from "./stopSequences.js";

/**
 * OpenAI's chat completions, completions and models endpoints over the agent's one answer
 * service (and so its one queue). Every question goes through AnswerService like the other
 * transports'; this file only translates the shapes.
 */

/** How an answer's text goes out: as one JSON response, or as SSE chunks. */
interface Shape {
  object: string;
  chunkObject: string;
  idPrefix: string;
  /** The choice of a whole response. */
  choice(text: string, finishReason: string | null): Record<string, unknown>;
  /** The choice of a streamed chunk. */
  chunkChoice(text: string | undefined, finishReason: string | null, first: boolean): Record<string, unknown>;
}

const CHAT: Shape = {
  object: "chat.completion",
  chunkObject: "chat.completion.chunk",
  idPrefix: "chatcmpl-",
  choice: (text, finishReason) => ({
    index: 0,
    message: { role: "assistant", content: text },
    logprobs: null,
    finish_reason: finishReason,
  }),
  chunkChoice: (text, finishReason, first) => ({
    index: 0,
    delta: text === undefined ? {} : first ? { role: "assistant", content: text } : { content: text },
    logprobs: null,
    finish_reason: finishReason,
  }),
};

const TEXT: Shape = {
  object: "text_completion",
  chunkObject: "text_completion",
  idPrefix: "cmpl-",
  choice: (text, finishReason) => ({ index: 0, text, logprobs: null, finish_reason: finishReason }),
  chunkChoice: (text, finishReason) => ({ index: 0, text: text ?? "", logprobs: null, finish_reason: finishReason }),
};

/** The agent's own instrument calls of this answer, OpenAI's extension field style. */
function instrumentTools(records: readonly ToolRecord[] | undefined): ToolRecord[] {
  return [...(records ?? [])];
}

function usageOf(result: AnswerResult) {
  const { promptTokens, completionTokens } = result.usage;
  return { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens };
}

async function answer(res: ServerResponse, ctx: HttpContext, shape: Shape, request: AnswerRequest, openAi: OpenAiRequest) {
  const { service, runtime } = ctx.agent;
  const id = `${shape.idPrefix}${randomUUID().replaceAll("-", "")}`;
  const created = Math.floor(Date.now() / 1000);
  const model = runtime.info.modelLabel;
  // A stop string ends the answer here: the generation is aborted, the answer is what came before it.
  const controller = new AbortController();
  const onClientGone = () => controller.abort();
  ctx.signal.addEventListener("abort", onClientGone, { once: true });
  const stops = new StopSequences(openAi.stop);
  const sse = openAi.stream ? new SseStream(res) : undefined;
  let first = true;
  const chunk = (choices: unknown[], extra: Record<string, unknown> = {}) =>
    sse?.send({ id, object: shape.chunkObject, created, model, choices, ...extra });
  const show = (text: string) => {
    if (text === "" || !sse) return;
    chunk([shape.chunkChoice(text, null, first)]);
    first = false;
  };
  sse?.open();
  let result: AnswerResult;
  try {
    result = await service.answer(request, {
      signal: controller.signal,
      transport: "http",
      onDelta: (delta) => {
        show(stops.push(delta));
        if (stops.stopped) controller.abort();
      },
    });
  } catch (error) {
    if (ctx.signal.aborted) return endCancelled(res, ctx, sse, id);
    if (!sse) throw error;
    // Headers are out: the error goes as an event, then the end of the stream.
    sse.send(openAiError(toAgentError(error)));
    sse.done();
    return;
  } finally {
    ctx.signal.removeEventListener("abort", onClientGone);
  }
  if (ctx.signal.aborted) return endCancelled(res, ctx, sse, id);
  show(stops.flush());
  const finishReason = stops.stopped ? "stop" : result.finishReason === "length" ? "length" : "stop";
  const tools = { instrument_tools: instrumentTools(result.tools) };
  if (!sse) {
    sendJson(res, 200, {
      id,
      object: shape.object,
      created,
      model,
      choices: [shape.choice(stops.text, finishReason)],
      usage: usageOf(result),
      ...tools,
    });
    return;
  }
  chunk([shape.chunkChoice(first ? "" : undefined, finishReason, first)], tools);
  if (openAi.includeUsage) chunk([], { usage: usageOf(result) });
  sse.done();
}

/**
 * The answer was cancelled: the client went away (nothing to send), or the agent is stopping
 * and the client, still there, is told so (an error event then `[DONE]` when streaming).
 */
function endCancelled(res: ServerResponse, ctx: HttpContext, sse: SseStream | undefined, id: string): void {
  if (res.destroyed || res.writableEnded) {
    ctx.logger.info({ requester: ctx.requester, id }, "the client went away; its answer was cancelled");
    return;
  }
  const error = new AgentError("IA_ERR_DISPOSED", "the agent is shutting down; this answer was cancelled");
  if (!sse) return sendError(res, error);
  sse.send(openAiError(error));
  sse.done();
}

/**
 * A question's checks before it reaches the service: method, rate limit, body. A refusal here
 * counts in the metrics as the service's own errors do (the service counts those itself).
 */
async function admit<T>(req: IncomingMessage, ctx: HttpContext, parse: (body: unknown) => T): Promise<T> {
  try {
    requireMethod(req, "POST", ctx);
    if (!ctx.takeQuestion())
      throw new AgentError(
        "IA_ERR_RATE_LIMITED",
        `${ctx.requester.startsWith("key:") ? "this API key" : "this address"} sent more than --http-rate-limit questions a minute; try again later`,
      );
    return parse(await ctx.readJson());
  } catch (error) {
    ctx.agent.service.metrics?.countError(toAgentError(error).code, "http");
    throw error;
  }
}

export const chatCompletions: HttpHandler = async (req, res, ctx) => {
  const request = await admit(req, ctx, parseChatCompletion);
  await answer(res, ctx, CHAT, { mode: "chat", messages: request.messages, params: request.params }, request);
};

export const completions: HttpHandler = async (req, res, ctx) => {
  const request = await admit(req, ctx, parseCompletion);
  await answer(res, ctx, TEXT, { mode: "raw", prompt: request.prompt, params: request.params }, request);
};

export const models: HttpHandler = async (req, res, ctx) => {
  requireMethod(req, "GET", ctx);
  const info = ctx.agent.runtime.info;
  // `created`: when this agent started, the one model's life in it.
  const startedAt = Math.floor((Date.now() - process.uptime() * 1000) / 1000);
  sendJson(res, 200, {
    object: "list",
    data: [{ id: info.modelLabel, object: "model", created: startedAt, owned_by: "instrument-agent" }],
  });
};

function requireMethod(req: IncomingMessage, method: string, ctx: HttpContext): void {
  if (req.method !== method) throw new AgentError("IA_ERR_HTTP_NOT_FOUND", `${ctx.url.pathname} takes ${method}, not ${req.method ?? "?"}`);
}
