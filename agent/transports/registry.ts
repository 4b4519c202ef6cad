import type { TransportFactory } from "../service/agentRunner.js";
import type { AgentConfig } from "../config/config.js";
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
