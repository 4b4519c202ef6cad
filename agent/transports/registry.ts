import type { EarlyTransportFactory, TransportFactory } from "../service/agentRunner.js";
import type { HttpHandler } from "./http/httpHandler.js";
import type { AgentConfig } from "../config/config.js";
import { AgentError } from "../../common/errors.js";
import type { Logger, TerminalLogGate } from "../../common/logger.js";
import type { Transport } from "./transport.js";
import type { LoadedAgent } from "../service/loadAgent.js";
import { LocalConsole } from "./local/localConsole.js";
import { consoleBanner, useColor } from "../console/consoleText.js";
import { serialConsoleFactory } from "./serial/serialConsoleFactory.js";

/** The console on this process's own terminal (`chat`, and `run` when a person is there). */
export function createLocalConsole(
  agent: LoadedAgent,
  config: AgentConfig,
  logger: Logger,
  peers: readonly Transport[] = [],
  gate?: TerminalLogGate,
): LocalConsole {
  return new LocalConsole({
    input: process.stdin,
    output: process.stdout,
    service: agent.service,
    logger,
    color: useColor(config, process.stdout),
    banner: consoleBanner(agent),
    scpi: agent.scpi,
    peers,
    logGate: gate,
  });
}

/** The MQTT API (README, "MQTT API"); loaded lazily so commands without MQTT never load mqtt. */
const mqttApi: TransportFactory = async (agent, config, logger) => {
  if (config.mqtt.trim() === "off") return undefined;
  const { mqttTransportFromConfig } = await import("./mqtt/mqttSettings.js");
  // `run` keeps serving its other transports while the broker is not up yet.
  return mqttTransportFromConfig(agent, config, logger, { waitForBroker: true });
};

/**
 * Every transport `run` may start, in start order (stopped in reverse). The local console
 * comes last, so its banner shows how the others started and no start-up line lands after its
 * prompt; `gate` carries the log lines that share its terminal.
 */
export function transportFactories(gate: TerminalLogGate | undefined): TransportFactory[] {
  const localConsole: TransportFactory = (agent, config, logger, started) =>
    process.stdin.isTTY ? createLocalConsole(agent, config, logger, started, gate) : undefined;
  return [mqttApi, serialConsoleFactory, localConsole];
}

/**
 * The transports `run` starts before the model loads: the HTTP API, with the endpoints the
 * other modules plug into it (loaded lazily, so commands without HTTP never load them).
 */
export function earlyTransportFactories(): EarlyTransportFactory[] {
  const httpApi: EarlyTransportFactory = async (config, logger) => {
    if (config.http.trim() === "off") return undefined;
    const [{ httpTransportFromConfig }, { servePage, instrumentData }, { mcpHttpHandler }] = await Promise.all([
      import("./http/httpFromConfig.js"),
      import("./http/page/pageRoutes.js"),
      import("./mcp/mcpHttp.js"),
    ]);
    let mcp: ReturnType<typeof mcpHttpHandler> | undefined;
    return httpTransportFromConfig(config, logger, {
      "/": (req, res) => servePage(req, res),
      "/api/instrument": (req, res, ctx) => instrumentData(ctx.agent)(req, res),
      "/metrics": serveMetrics,
      // Streamable HTTP, behind the API key; the body is read here, within --http-body-limit.
      "/mcp": async (req, res, ctx) => {
        mcp ??= mcpHttpHandler(ctx.agent, logger);
        await mcp(req, res, req.method === "POST" ? await ctx.readJson() : undefined);
      },
    });
  };
  return [httpApi];
}

/** `GET /metrics`: the Prometheus scrape (service/metrics.ts), behind the API key like the rest of the API. */
const serveMetrics: HttpHandler = async (req, res, ctx) => {
  if (req.method !== "GET" && req.method !== "HEAD")
    return ctx.sendError(new AgentError("IA_ERR_HTTP_NOT_FOUND", `/metrics takes GET, not ${req.method ?? "?"}`));
  const text = ctx.agent.metrics.render();
  res.writeHead(200, { "content-type": "text/plain; version=0.0.4; charset=utf-8", "content-length": Buffer.byteLength(text) });
  res.end(req.method === "HEAD" ? undefined : text);
};
