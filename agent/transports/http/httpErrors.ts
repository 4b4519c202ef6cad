import type { ServerResponse } from "node:http";
import { AgentError, toAgentError } from "../../../common/errors.js";
import type { ErrorCode } from "../../../common/errors.js";

/** The HTTP status of each code a request can end with; the rest are 500. */
const STATUS: Partial<Record<ErrorCode, number>> = {
  IA_ERR_BAD_REQUEST: 400,
  IA_ERR_CLIENT_TOOLS: 400,
  IA_ERR_PROMPT_TOO_LONG: 400,
  IA_ERR_NO_INSTRUMENT: 400,
  IA_ERR_SCPI_REFUSED: 400,
  IA_ERR_HTTP_UNAUTHORIZED: 401,
  IA_ERR_HTTP_NOT_FOUND: 404,
  IA_ERR_HTTP_BODY_TOO_LARGE: 413,
  IA_ERR_RATE_LIMITED: 429,
  IA_ERR_LOADING: 503,
  IA_ERR_QUEUE_FULL: 503,
  IA_ERR_DISPOSED: 503,
};

/** OpenAI's error types, by status (its clients raise a different exception class for each). */
const TYPE: Record<number, string> = {
  400: "invalid_request_error",
  401: "authentication_error",
  404: "not_found_error",
  413: "invalid_request_error",
  429: "rate_limit_error",
  503: "service_unavailable",
};

export function httpStatusOf(error: AgentError): number {
  return STATUS[error.code] ?? 500;
}

/** OpenAI's error shape with the agent's code: `{"error": {"message", "type", "code"}}`. */
export function openAiError(error: AgentError): { error: { message: string; type: string; code: ErrorCode } } {
  return { error: { message: error.message, type: TYPE[httpStatusOf(error)] ?? "server_error", code: error.code } };
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text), ...headers });
  res.end(text);
}

/** Ends the response with the error; a response already under way (a stream) is cut instead. Never throws. */
export function sendError(res: ServerResponse, value: unknown): void {
  const error = toAgentError(value);
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const status = httpStatusOf(error);
  const headers: Record<string, string> = status === 401 ? { "www-authenticate": 'Bearer realm="instrument-agent"' } : {};
  if (status === 429) headers["retry-after"] = "60";
  sendJson(res, status, openAiError(error), headers);
}

export function notFound(method: string | undefined, path: string): AgentError {
  return new AgentError(
    "IA_ERR_HTTP_NOT_FOUND",
    `no endpoint for ${method ?? "?"} ${path}; the API has POST /v1/chat/completions, POST /v1/completions, GET /v1/models and GET /health`,
  );
}
