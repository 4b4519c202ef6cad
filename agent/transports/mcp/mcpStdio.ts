import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import type { Readable, Writable } from "node:stream";
import type { Logger } from "../../../common/logger.js";
import { createMcpServer } from "./mcpServer.js";
import type { McpAgent } from "./mcpServer.js";

export interface McpStdioOptions {
  /** Ends the server (SIGTERM, SIGINT); answers in flight are cancelled. */
  signal: AbortSignal;
  /** Defaults to `process.stdin`. */
  input?: Readable;
  /** The protocol's only writer. Defaults to `process.stdout`. */
  output?: Writable;
}

/**
 * `instrument-agent mcp`: MCP over stdin/stdout until stdin ends (the client closed it) or
 * `signal` aborts. The SDK's transport does not watch for the end of its input, so this does.
 */
export async function serveMcpOnStdio(agent: McpAgent, logger: Logger, options: McpStdioOptions): Promise<void> {
  const input = options.input ?? process.stdin;
  const log = logger.child({ component: "mcp" });
  const server = createMcpServer(agent, logger);
  const transport = new StdioServerTransport(input, options.output ?? process.stdout);
  const ended = new Promise<string>((resolve) => {
    input.once("end", () => resolve("stdin closed"));
    input.once("close", () => resolve("stdin closed"));
    transport.onclose = () => resolve("transport closed");
    if (options.signal.aborted) resolve("signal");
    options.signal.addEventListener("abort", () => resolve("signal"), { once: true });
  });
  transport.onerror = (error) => log.warn({ err: error }, "mcp stdio: a message could not be read");
  await server.connect(transport);
  log.info("serving MCP on stdio");
  const reason = await ended;
  log.info({ reason }, "MCP on stdio ends");
  // Closing the server aborts the handlers still running: their answers are cancelled.
  await server.close();
}
