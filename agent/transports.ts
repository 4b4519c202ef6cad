import type { TransportFactory } from "./agentRunner.js";
import { LocalConsole } from "./localConsole.js";
import { consoleBanner, useColor } from "./consoleText.js";
import { serialConsoleFactory } from "./serialTransport.js";

/** The local console serves `run` when a person is at this terminal. */
const localConsole: TransportFactory = (agent, config, logger) => {
  if (!process.stdin.isTTY) return undefined;
  return new LocalConsole({
    input: process.stdin,
    output: process.stdout,
    service: agent.service,
    logger,
    color: useColor(config, process.stdout),
    banner: consoleBanner(agent),
    scpi: agent.scpi,
  });
};

/** The MQTT API (DESIGN.md section 4); loaded lazily so commands without MQTT never load mqtt. */
const mqttApi: TransportFactory = async (agent, config, logger) => {
  if (config.mqtt.trim() === "off") return undefined;
  const { mqttTransportFromConfig } = await import("./mqttSettings.js");
  return mqttTransportFromConfig(agent, config, logger);
};

/** Every transport `run` may start, in start order (stopped in reverse). */
export const TRANSPORT_FACTORIES: TransportFactory[] = [localConsole, mqttApi, serialConsoleFactory];
