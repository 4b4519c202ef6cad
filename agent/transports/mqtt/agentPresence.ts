import { freemem, hostname, loadavg } from "node:os";
import { AgentError } from "../../../common/errors.js";
import { round } from "../../../common/format.js";
import type { ScpiCounts } from "../../../firmware-bridge/scpiAudit.js";
import type { RuntimeInfo } from "../../engine/modelRuntime.js";
import type { AnswerService } from "../../service/answerService.js";
import { connectBroker, displayUrl, readRetained, refusedVersion } from "./brokerClient.js";
import type { BrokerConnection } from "./brokerClient.js";
import { readStatus } from "./wire.js";
import type { Health, OfflineStatus, OnlineStatus } from "./wire.js";

/**
 * What this agent says about itself on the broker (the retained status, health) and how it
 * tells another process that uses the same `--agent-id` apart from itself.
 */

export interface AgentPresenceOptions {
  agentId: string;
  info: RuntimeInfo;
  service: AnswerService;
  version: string;
  /** The firmware bridge's counts, for the status and health. Defaults to none (no instrument: no `scpi` key). */
  scpiCounts?: (() => ScpiCounts) | undefined;
}

/** Another process behind a retained online status of this agent's id. */
export interface OtherInstance {
  host: string;
  pid: number;
  /** When it came online, ms since the epoch. */
  since: number;
  model?: string | undefined;
}

/** How long the same-id check waits for a retained status before taking the id as free. */
const ID_CHECK_MS = 1500;

export class AgentPresence {
  readonly host = hostname();
  readonly pid = process.pid;
  readonly startedAt = Date.now();
  readonly #options: AgentPresenceOptions;
  /** The counts the last online status carried, to republish it when they change. */
  #statusCounts: string | undefined;

  constructor(options: AgentPresenceOptions) {
    this.#options = options;
  }

  /**
   * Refuses to take an id that another live agent holds: its retained status on `statusTopic`
   * is online and names another process. Connecting anyway would make the broker hand the
   * session back and forth between the two (each reconnect takes it over again).
   */
  async checkIdFree(broker: BrokerConnection & { statusTopic: string; skipIfRefusedVersion: boolean }): Promise<void> {
    const { statusTopic, skipIfRefusedVersion, ...connection } = broker;
    const probe = await connectBroker({
      ...connection,
      clientId: `iagent-idcheck-${this.#options.agentId}-${process.pid}`.slice(0, 200),
      sessionExpirySeconds: 0,
    }).catch((error: unknown) => {
      if (skipIfRefusedVersion && refusedVersion(error)) return undefined;
      throw error;
    });
    if (!probe) return;
    const seen = await readRetained(probe, statusTopic, ID_CHECK_MS);
    const other = seen ? this.otherLive(seen) : undefined;
    if (other) throw this.duplicateError(other, connection.url);
  }

  /** The retained online status. */
  online(): string {
    const { info, service, agentId, version } = this.#options;
    const status: OnlineStatus = {
      state: "online",
      agent: agentId,
      model: info.modelLabel,
      demo: info.isDemo,
      threads: info.threads,
      mlock: info.mlock.locked,
      contextSize: info.contextSize,
      queue: service.queue.waiting,
      version,
      since: new Date(this.startedAt).toISOString(),
      host: this.host,
      pid: this.pid,
      ...this.#scpi(),
    };
    this.#statusCounts = JSON.stringify(status.scpi);
    return JSON.stringify(status);
  }

  /** Whether the SCPI counts changed since the last online status: the retained one is then out of date. */
  statusOutdated(): boolean {
    return this.#statusCounts !== undefined && this.#statusCounts !== JSON.stringify(this.#scpi().scpi);
  }

  #scpi(): { scpi?: ScpiCounts } {
    const counts = this.#options.scpiCounts?.();
    return counts ? { scpi: counts } : {};
  }

  /** The retained offline status: the last will, and the goodbye of a clean stop. */
  offline(): string {
    const status: OfflineStatus = { state: "offline", agent: this.#options.agentId };
    return JSON.stringify(status);
  }

  health(outboxSize: number): string {
    const { service, agentId } = this.#options;
    const memory = process.memoryUsage();
    const health: Health = {
      agent: agentId,
      uptimeS: round((Date.now() - this.startedAt) / 1000, 0),
      rssBytes: memory.rss,
      heapUsedBytes: memory.heapUsed,
      freeMemBytes: freemem(),
      load: loadavg().map((l) => round(l, 2)),
      queue: { running: service.queue.running, waiting: service.queue.waiting },
      answered: service.stats.answered,
      tokensPerSecond: service.stats.lastTokensPerSecond,
      ttftMs: service.stats.lastTtftMs,
      outbox: outboxSize,
      ...this.#scpi(),
    };
    return JSON.stringify(health);
  }

  /** The live process other than this one that a retained status says is online under this id. */
  otherLive(payload: Buffer): OtherInstance | undefined {
    const status = readStatus(payload);
    if (status?.state !== "online" || status.since === undefined) return undefined;
    const other: OtherInstance = { host: status.host, pid: status.pid, since: Date.parse(status.since), model: status.model };
    // Our own status, as the broker echoes it back to our subscription.
    if (other.host === this.host && other.pid === this.pid) return undefined;
    return isStale(other) ? undefined : other;
  }

  /** Whether `other` came online after this agent: of two agents with one id, the later one stops its MQTT side. */
  isOlderThan(other: OtherInstance): boolean {
    if (other.since !== this.startedAt) return other.since > this.startedAt;
    return `${other.host}/${other.pid}` > `${this.host}/${this.pid}`;
  }

  duplicateError(other: OtherInstance, brokerUrl: string): AgentError {
    const since = new Date(other.since).toISOString();
    return new AgentError(
      "IA_ERR_MQTT_DUPLICATE_ID",
      `agent id "${this.#options.agentId}" is already online on MQTT broker ${displayUrl(brokerUrl)}: pid ${other.pid} on host ${other.host} since ${since}${other.model ? ` (model ${other.model})` : ""}; ` +
        "give this agent another --agent-id, or stop that one (after a power cut its status turns offline within 45 s)",
    );
  }
}

/** A retained online status left by a process of this host that no longer runs (kill -9 before the broker noticed). */
function isStale(other: OtherInstance): boolean {
  if (other.host !== hostname() || other.pid <= 0) return false;
  try {
    process.kill(other.pid, 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "ESRCH";
  }
}
