// Node's own `http` module, not a framework: the API is four endpoints plus a few plugged-in
// ones, routed by exact path, and SSE is a few writes. A framework would add its router,
// plugins and their dependencies to a bundle that ships to instrument PCs, for nothing used here.
import { createServer } from "node:http";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { AgentError } from "../../../common/errors.js";
import type { Logger } from "../../../common/logger.js";
import { RateLimiter } from "../../../common/rateLimiter.js";
import type { LoadedAgent } from "../../service/loadAgent.js";
import type { Transport } from "../transport.js";
import { ApiKeyCheck } from "./auth.js";
import { healthBody } from "./health.js";
import type { HttpContext, HttpHandler } from "./httpHandler.js";
import { notFound, sendError, sendJson } from "./httpErrors.js";
import { listenOutcome } from "./listenOutcome.js";
import { chatCompletions, completions, models } from "./openaiApi.js";

export interface HttpTransportOptions {
  host: string;
  /** 0 picks a free port (tests); `address` tells which. */
  port: number;
  /** The address is the built-in default: when it is busy the agent warns and serves without HTTP. Defaults to false (an error). */
  isDefaultAddress?: boolean;
  /** Clients must send `Authorization: Bearer <key>`. Defaults to none (loopback only, checked by the caller). */
  apiKey?: string | undefined;
  /** Largest body read, in bytes. Defaults to 1 MiB. */
  bodyLimit?: number;
  /** Questions a minute per requester; 0 is no limit. Defaults to 60. */
  rateLimitPerMinute?: number;
  /** More endpoints by exact path (`/mcp`, `/metrics`, `/`): the others' modules plug in here. Defaults to none. */
  routes?: Record<string, HttpHandler>;
  logger: Logger;
}

const BUILT_IN: Record<string, HttpHandler> = {
  "/v1/chat/completions": chatCompletions,
  "/v1/completions": completions,
  "/v1/models": models,
};

/** Paths a browser or a load balancer may fetch without the key: the page (it asks for the key itself) and health. */
const PUBLIC_GET = new Set(["/", "/health"]);

/**
 * The HTTP API (README, HTTP API). It starts before the model loads, so `/health` can say
 * `loading` (503) and every other path answers 503 IA_ERR_LOADING until `attach` hands it the
 * loaded agent; `run` then starts the other transports (service/agentRunner.ts).
 */
export class HttpTransport implements Transport {
  readonly name = "http";
  readonly #options: HttpTransportOptions;
  readonly #routes: Record<string, HttpHandler>;
  readonly #key: ApiKeyCheck;
  readonly #rate: RateLimiter;
  readonly #log: Logger;
  readonly #inFlight = new Map<AbortController, ServerResponse>();
  readonly #sockets = new Set<Socket>();
  #server: Server | undefined;
  #agent: LoadedAgent | undefined;
  #peers: readonly Transport[] = [];
  #state: "new" | "loading" | "serving" | "off" | "stopped" = "new";
  #offReason = "";
  #stopping: Promise<void> | undefined;
  readonly #startedAt = performance.now();

  constructor(options: HttpTransportOptions) {
    this.#options = options;
    for (const path of Object.keys(options.routes ?? {}))
      if (path in BUILT_IN || path === "/health")
        throw new AgentError("IA_ERR_INTERNAL", `HTTP route ${path} is built in; it cannot be plugged in`);
    this.#routes = { ...BUILT_IN, ...options.routes };
    this.#key = new ApiKeyCheck(options.apiKey);
    this.#rate = new RateLimiter({ perMinute: options.rateLimitPerMinute ?? 60 });
    this.#log = options.logger.child({ component: "http" });
  }

  /** Where it listens, once it does. */
  get address(): { host: string; port: number } | undefined {
    const address = this.#server?.address();
    return address && typeof address === "object" ? { host: this.#options.host, port: address.port } : undefined;
  }

  get url(): string {
    const { host, port } = this.address ?? this.#options;
    return `http://${host.includes(":") && !host.startsWith("[") ? `[${host}]` : host}:${port}`;
  }

  get summary(): string {
    switch (this.#state) {
      case "serving":
        return `http     serving on ${this.url}${this.#key.required ? " (API key required)" : ""}`;
      case "loading":
        return `http     listening on ${this.url}, model loading`;
      case "off":
        return `http     off: ${this.#offReason}`;
      default:
        return `http     ${this.#state}`;
    }
  }

  async start(): Promise<void> {
    const server = createServer((req, res) => void this.#handle(req, res));
    server.on("connection", (socket) => {
      this.#sockets.add(socket);
      socket.once("close", () => this.#sockets.delete(socket));
    });
    const { host, port } = this.#options;
    const outcome = await new Promise<NodeJS.ErrnoException | undefined>((resolve) => {
      server.once("error", resolve);
      server.listen(port, host.replace(/^\[(.*)\]$/, "$1"), () => resolve(undefined));
    });
    const decision = listenOutcome(outcome, { host, port, isDefaultAddress: this.#options.isDefaultAddress ?? false });
    if (decision.kind === "error") throw decision.error;
    if (decision.kind === "off") {
      this.#state = "off";
      this.#offReason = decision.message;
      this.#log.warn(decision.message);
      return;
    }
    this.#server = server;
    this.#state = "loading";
    this.#log.info({ url: this.url }, "HTTP API listening; every path but /health answers 503 until the model has loaded");
  }

  /** The model is ready: serve. `peers` are the transports `run` has started (read on every /health). */
  attach(agent: LoadedAgent, peers: readonly Transport[]): void {
    this.#agent = agent;
    this.#peers = peers;
    if (this.#state !== "loading") return;
    this.#state = "serving";
    this.#log.info({ url: this.url, apiKey: this.#key.required }, `HTTP API serving on ${this.url}`);
  }

  stop(deadline: { ms: number }): Promise<void> {
    this.#stopping ??= this.#stop(deadline.ms);
    return this.#stopping;
  }

  async #stop(ms: number): Promise<void> {
    const server = this.#server;
    this.#state = "stopped";
    if (!server) return;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    for (const [controller, res] of this.#inFlight) {
      // Its connection closes once the response has ended (the client is told: stream cancelled).
      res.once("finish", () => res.socket?.end());
      controller.abort();
    }
    const timer = setTimeout(
      () => {
        for (const socket of this.#sockets) socket.destroy();
      },
      Math.max(0, ms - 500),
    );
    await closed.finally(() => clearTimeout(timer));
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://agent.invalid");
    const path = url.pathname;
    try {
      if (this.#state === "stopped") throw new AgentError("IA_ERR_DISPOSED", "the agent is shutting down");
      const isPublic = (req.method === "GET" || req.method === "HEAD") && PUBLIC_GET.has(path);
      const requester = isPublic ? `addr:${req.socket.remoteAddress ?? "unknown"}` : this.#key.check(req);
      if (path === "/health") return this.#health(res);
      const agent = this.#agent;
      if (!agent) throw new AgentError("IA_ERR_LOADING", "the model is still loading; GET /health says when it is ready");
      const handler = this.#routes[path];
      if (!handler) throw notFound(req.method, path);
      await this.#run(handler, req, res, { url, agent, requester });
    } catch (error) {
      if (error instanceof AgentError && error.code === "IA_ERR_HTTP_UNAUTHORIZED") {
        // Never the header: it may hold a key that is nearly right.
        this.#log.warn({ path, remote: req.socket.remoteAddress }, `refused: ${error.message}`);
        this.#agent?.service.metrics?.countError(error.code, "http");
      }
      sendError(res, error);
    }
  }

  async #run(handler: HttpHandler, req: IncomingMessage, res: ServerResponse, base: Pick<HttpContext, "url" | "agent" | "requester">) {
    const controller = new AbortController();
    this.#inFlight.set(controller, res);
    // The response closing before it ended: the client went away (or the socket was cut at stop).
    res.once("close", () => {
      if (!res.writableFinished) controller.abort();
      this.#inFlight.delete(controller);
    });
    const limit = this.#options.bodyLimit ?? 1_048_576;
    let body: Promise<Buffer> | undefined;
    const ctx: HttpContext = {
      ...base,
      logger: this.#log,
      signal: controller.signal,
      readBody: () => (body ??= readBody(req, limit)),
      readJson: async () => parseJson(await ctx.readBody()),
      takeQuestion: () => this.#rate.take(base.requester),
      sendError: (error) => sendError(res, error),
    };
    await handler(req, res, ctx);
  }

  #health(res: ServerResponse): void {
    if (!this.#agent) return sendJson(res, 503, { status: "loading" }, { "retry-after": "1" });
    sendJson(res, 200, healthBody(this.#agent, this.#peers, (performance.now() - this.#startedAt) / 1000));
  }
}

/** Reads the body up to `limit` bytes. A larger one is read to its end but not kept (so the client sees the 413), within reason. */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers["content-length"] ?? "0");
    const tooLarge = (size: string) =>
      new AgentError(
        "IA_ERR_HTTP_BODY_TOO_LARGE",
        `the request body is ${size}, more than --http-body-limit ${limit} bytes; it was not read`,
      );
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size <= limit) chunks.push(chunk);
      else if (size > Math.max(limit * 4, 16 * 1024 * 1024)) req.destroy();
    });
    req.once("error", reject);
    req.once("close", () => size > limit && reject(tooLarge(`over ${size} bytes`)));
    req.once("end", () => {
      if (size > limit || declared > limit) reject(tooLarge(`${Math.max(size, declared)} bytes`));
      else resolve(Buffer.concat(chunks));
    });
  });
}

function parseJson(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString("utf8"));
  } catch (error) {
    throw new AgentError("IA_ERR_BAD_REQUEST", `the request body is not JSON: ${(error as Error).message}`);
  }
}
