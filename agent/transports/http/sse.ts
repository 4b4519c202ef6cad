import type { ServerResponse } from "node:http";

/** Server-sent events as OpenAI streams them: `data: <json>` events, then `data: [DONE]`. */
export class SseStream {
  readonly #res: ServerResponse;

  constructor(res: ServerResponse) {
    this.#res = res;
  }

  get started(): boolean {
    return this.#res.headersSent;
  }

  /** Sends the headers now, so a client sees the stream open before the first token. */
  open(): void {
    if (this.#res.headersSent) return;
    this.#res.writeHead(200, { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache", connection: "keep-alive" });
    this.#res.flushHeaders();
  }

  send(data: unknown): void {
    this.open();
    if (!this.#res.writableEnded) this.#res.write(`data: ${JSON.stringify(data)}\n\n`);
  }

  done(): void {
    this.open();
    if (!this.#res.writableEnded) this.#res.end("data: [DONE]\n\n");
  }
}
