import type { TransportFactory } from "./agentRunner.js";
import type { AgentConfig } from "./config.js";
import type { Logger } from "./logger.js";
import type { LoadedAgent } from "./modelSetup.js";
import { LocalConsole } from "./localConsole.js";
import { consoleBanner, useColor } from "./consoleText.js";
import { serialConsoleFactory } from "./serialTransport.js";

/** The console on this process's own terminal (`chat`, and `run` when a person is there). */
export function createLocalConsole(agent: LoadedAgent, config: AgentConfig, logger: Logger): LocalConsole {
  return new LocalConsole({
    input: process.stdin,
    output: process.stdout,
    service: agent.service,
    logger,
    color: useColor(config, process.stdout),
    banner: consoleBanner(agent),
    scpi: agent.scpi,
  });
}

/** The local console serves `run` when a person is at this terminal. */
const localConsole: TransportFactory = (agent, config, logger) => (process.stdin.isTTY ? createLocalConsole(agent, config, logger) : undefined);

/** The MQTT API (DESIGN.md section 4); loaded lazily so commands without MQTT never load mqtt. */
const mqttApi: TransportFactory = async (agent, config, logger) => {
  if (config.mqtt.trim() === "off") return undefined;
  const { mqttTransportFromConfig } = await import("./mqttSettings.js");
  return mqttTransportFromConfig(agent, config, logger);
};

/** Every transport `run` may start, in start order (stopped in reverse). */
export const TRANSPORT_FACTORIES: TransportFactory[] = [localConsole, mqttApi, serialConsoleFactory];
