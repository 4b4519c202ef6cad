import { AgentError } from "../../../common/errors.js";
import type { Logger } from "../../../common/logger.js";
import type { AgentConfig } from "../../config/config.js";
import { CONFIG_DEFAULTS } from "../../config/config.js";
import { isLoopbackHost } from "./auth.js";
import type { HttpHandler } from "./httpHandler.js";
import { HttpTransport } from "./httpTransport.js";

/** `--http host:port` as host and port; IA_ERR_CONFIG names the value otherwise. */
export function parseHttpAddress(value: string): { host: string; port: number } {
  const match = /^(\[[0-9a-fA-F:]+\]|[^\s:[\]]+):(\d{1,5})$/.exec(value.trim());
  const port = Number(match?.[2]);
  if (!match || port > 65_535)
    throw new AgentError("IA_ERR_CONFIG", `--http: expected host:port such as 127.0.0.1:8080, or off, got ${JSON.stringify(value)}`);
  return { host: match[1]!, port };
}

/** The HTTP transport `run` starts before the model loads, or undefined with `--http off`. */
export function httpTransportFromConfig(
  config: AgentConfig,
  logger: Logger,
  routes: Record<string, HttpHandler> = {},
): HttpTransport | undefined {
  if (config.http.trim() === "off") return undefined;
  const { host, port } = parseHttpAddress(config.http);
  if (!isLoopbackHost(host) && config.httpApiKey === undefined)
    throw new AgentError(
      "IA_ERR_CONFIG",
      `--http ${config.http}: the HTTP API listens beyond this host only with a key; set httpApiKey (IAGENT_HTTP_API_KEY, --http-api-key), or bind 127.0.0.1`,
    );
  return new HttpTransport({
    host,
    port,
    isDefaultAddress: config.http === CONFIG_DEFAULTS.http,
    apiKey: config.httpApiKey,
    bodyLimit: config.httpBodyLimit,
    rateLimitPerMinute: config.httpRateLimit,
    routes,
    logger,
  });
}
