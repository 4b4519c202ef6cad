import { hostname } from "node:os";
import path from "node:path";
import { CONFIG_DEFAULTS } from "../../config/config.js";
import type { AgentConfig } from "../../config/config.js";
import { isLoopback } from "./embeddedBroker.js";
import { AgentError } from "../../../common/errors.js";
import type { Logger } from "../../../common/logger.js";
import type { LoadedAgent } from "../../service/loadAgent.js";
import { RequestJournal } from "../../service/journal/requestJournal.js";
import { MqttTransport } from "./mqttTransport.js";
import type { BrokerConnection } from "./brokerClient.js";
import { VERSION } from "../../../common/version.js";

/** Config checks and defaults for the MQTT API; fails fast at start with the flag named. */

const URL_SCHEMES = ["mqtt:", "mqtts:", "ws:", "wss:", "tcp:", "ssl:"];

/** The MQTT identity: `--agent-id`, else the host name made topic-safe. */
export function agentIdFrom(config: AgentConfig): string {
  return config.agentId ?? (hostname().replace(/[/#+\s]/g, "-") || "agent");
}

/** `--mqtt` as a broker URL (or `embedded`); throws IA_ERR_CONFIG naming the flag otherwise. */
export function checkBrokerUrl(value: string, flag = "--mqtt"): string {
  const trimmed = value.trim();
  if (trimmed === "embedded") return trimmed;
  let url: URL;
  try {
    url = new URL(trimmed);
  } catch {
    throw new AgentError(
      "IA_ERR_CONFIG",
      `${flag}: expected a broker URL such as mqtt://host:1883 or mqtts://host:8883, 'embedded' or 'off', got ${JSON.stringify(trimmed.replace(/\/\/[^@/]*@/, "//"))}`,
    );
  }
  if (!URL_SCHEMES.includes(url.protocol)) {
    throw new AgentError(
      "IA_ERR_CONFIG",
      `${flag}: expected a URL starting with mqtt://, mqtts://, ws:// or wss://, got ${url.protocol}//...`,
    );
  }
  return trimmed;
}

export function parseBind(bind: string): { host: string; port: number } {
  const match = /^(\[[0-9a-fA-F:]+\]|[^\s:]+):(\d{1,5})$/.exec(bind);
  const port = Number(match?.[2]);
  if (!match || port > 65_535)
    throw new AgentError("IA_ERR_CONFIG", `--mqtt-bind: expected host:port such as 127.0.0.1:1883, got ${JSON.stringify(bind)}`);
  return { host: match[1]!, port };
}

/**
 * The one mapping from the config to a broker connection (URL, protocol, login, TLS files),
 * for `run`, `smoke`, `ask --via` and `bench` alike; each client adds its own client id.
 * `url` replaces `--mqtt` (`ask --via` names its broker with `--via`); `embedded` stays as
 * it is, for the caller to replace with the local broker's URL.
 */
export function brokerOptionsFrom(config: AgentConfig, url: string = config.mqtt, flag = "--mqtt"): BrokerConnection {
  return {
    url: checkBrokerUrl(url, flag),
    // The local and in-process brokers say themselves when they speak only 3.1.1.
    protocolVersion: config.mqttVersion === "3.1.1" ? 4 : 5,
    username: config.mqttUsername,
    password: config.mqttPassword,
    ca: config.mqttCa,
    cert: config.mqttCert,
    key: config.mqttKey,
  };
}

/**
 * The request journal's folder for one agent id on one broker, under `<state-dir>/journal/`:
 * agents that share a state dir keep apart, and a broker's questions are answered on that broker.
 */
export function journalDir(stateDir: string, agentId: string, brokerUrl: string): string {
  let where = "broker";
  try {
    const url = new URL(brokerUrl);
    where = `${url.hostname}-${url.port || (url.protocol === "mqtts:" || url.protocol === "wss:" ? "8883" : "1883")}`;
  } catch {
    // A URL that cannot be read was refused before; keep a fixed name.
  }
  return path.join(stateDir, "journal", `${agentId}@${where}`.replace(/[^\w.@-]/g, "_"));
}

/** Opens the request journal of `journalDir`; a journal that cannot be opened is IA_ERR_CONFIG naming --state-dir. */
export async function openJournal(dir: string, logger: Logger): Promise<RequestJournal> {
  try {
    return await RequestJournal.open({ dir, logger });
  } catch (error) {
    throw new AgentError("IA_ERR_CONFIG", `--state-dir: cannot open the MQTT request journal in ${dir}: ${(error as Error).message}`, {
      cause: error,
    });
  }
}

export interface MqttTransportSetup {
  /** Keep retrying a broker that cannot be reached yet instead of failing (`run`). Defaults to false. */
  waitForBroker?: boolean;
}

export function mqttTransportFromConfig(
  agent: Pick<LoadedAgent, "service" | "runtime" | "instrument">,
  config: AgentConfig,
  logger: Logger,
  setup: MqttTransportSetup = {},
): MqttTransport {
  const broker = brokerOptionsFrom(config);
  const instrument = agent.instrument;
  const embedded = broker.url === "embedded";
  let bind: { host: string; port: number } | undefined;
  if (embedded) {
    bind = parseBind(config.mqttBind);
    if (!isLoopback(bind.host) && (config.mqttUsername === undefined || config.mqttPassword === undefined)) {
      throw new AgentError(
        "IA_ERR_CONFIG",
        `--mqtt-bind ${config.mqttBind}: the embedded broker listens beyond this host only with a login; set mqttUsername and mqttPassword (IAGENT_MQTT_USERNAME, IAGENT_MQTT_PASSWORD), or bind 127.0.0.1`,
      );
    }
  }
  return new MqttTransport({
    broker,
    local: bind
      ? {
          ...bind,
          // A broker already on the default port (a mosquitto service) is used as it is; an
          // explicit --mqtt-bind means "run one here", and a busy port is an error.
          reuseExisting: config.mqttBind === CONFIG_DEFAULTS.mqttBind,
          username: config.mqttUsername,
          password: config.mqttPassword,
          stateDir: config.stateDir,
        }
      : undefined,
    waitForBroker: setup.waitForBroker ?? false,
    agentId: agentIdFrom(config),
    prefix: config.mqttPrefix,
    fleet: config.fleet,
    payloadLimit: config.mqttPayloadLimit,
    rateLimitPerMinute: config.mqttRateLimit,
    healthIntervalMs: config.mqttHealthInterval * 1000,
    openJournal: (brokerUrl) => openJournal(journalDir(config.stateDir, agentIdFrom(config), brokerUrl), logger),
    maxAgeMs: config.mqttMaxAge * 1000,
    service: agent.service,
    info: agent.runtime.info,
    version: VERSION,
    scpi: instrument ? (query, origin) => instrument.query(query, origin) : undefined,
    scpiCounts: instrument ? () => instrument.counts : undefined,
    logger,
  });
}
