import type { IncomingMessage, ServerResponse } from "node:http";
import type { Logger } from "../../../common/logger.js";
import type { LoadedAgent } from "../../service/loadAgent.js";

/** What the HTTP transport hands every endpoint, its own and the plugged-in ones (`routes`). */
export interface HttpContext {
  /** The request's URL, parsed (path and query). */
  readonly url: URL;
  /** The loaded agent; endpoints run only once the model is ready (before that every path but /health gets 503). */
  readonly agent: LoadedAgent;
  readonly logger: Logger;
  /** Who asked, for the rate limit and logs: `key:<hash>` with an API key, else `addr:<remote address>`. Never the key itself. */
  readonly requester: string;
  /** Aborted when the client goes away before the response has ended, or the transport stops. */
  readonly signal: AbortSignal;
  /** The whole body, at most --http-body-limit bytes; rejects with IA_ERR_HTTP_BODY_TOO_LARGE beyond. Read it once. */
  readBody(): Promise<Buffer>;
  /** The body as JSON; rejects with IA_ERR_BAD_REQUEST when it is not. */
  readJson(): Promise<unknown>;
  /** Takes one question from this requester's budget (--http-rate-limit); false when it is spent. */
  takeQuestion(): boolean;
  /** Sends `error` as OpenAI's `{"error": {message, type, code}}` with the status of its code (httpErrors.ts). */
  sendError(error: unknown): void;
}

/**
 * One endpoint. The transport has checked the API key (every path but `GET /` and `/health`)
 * and that the model is loaded; the body is still unread, so an endpoint that needs the raw
 * request (MCP's streamable HTTP) gets it as it came.
 */
export type HttpHandler = (req: IncomingMessage, res: ServerResponse, ctx: HttpContext) => Promise<void>;
