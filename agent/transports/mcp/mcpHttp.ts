import type { IncomingMessage, ServerResponse } from "node:http";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import type { Logger } from "../../../common/logger.js";
import { createMcpServer } from "./mcpServer.js";
import type { McpAgent } from "./mcpServer.js";

/**
 * Serves one HTTP request on `/mcp`. `body` is the parsed JSON body when the caller has
 * already read the request stream; leave it out and the SDK reads the stream itself.
 * Never rejects: failures become a JSON-RPC error response.
 */
export type McpHttpHandler = (req: IncomingMessage, res: ServerResponse, body?: unknown) => Promise<void>;

function jsonRpcError(res: ServerResponse, status: number, code: number, message: string, headers: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  res.writeHead(status, { "content-type": "application/json", ...headers });
  res.end(JSON.stringify({ jsonrpc: "2.0", error: { code, message }, id: null }));
}

/**
 * MCP over streamable HTTP, stateless: every POST gets its own server and transport over the
 * shared agent (no session id, nothing kept between requests), so a restart or a second
 * client needs no session bookkeeping. GET (a server-to-client stream) and DELETE (ending a
 * session) have no meaning without sessions: 405, which the SDK's client accepts.
 * The caller checks the API key first, as for every other HTTP route.
 */
export function mcpHttpHandler(agent: McpAgent, logger: Logger): McpHttpHandler {
  const log = logger.child({ component: "mcp" });
  return async (req, res, body) => {
    if (req.method !== "POST") {
      jsonRpcError(res, 405, -32000, `${req.method ?? "?"} /mcp: only POST is served (stateless MCP)`, { allow: "POST" });
      return;
    }
    const server = createMcpServer(agent, logger);
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
    // The client going away cancels what it asked for (an answer in the queue or generating).
    res.once("close", () => {
      void transport.close().catch(() => undefined);
      void server.close().catch(() => undefined);
    });
    try {
      await server.connect(transport);
      await transport.handleRequest(req, res, body);
    } catch (error) {
      log.warn({ err: error }, "mcp http request failed");
      jsonRpcError(res, 500, -32603, "internal error in the MCP server");
    }
  };
}
