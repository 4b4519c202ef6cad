import { within } from "../../../common/async.js";
import { Backoff } from "../../../common/backoff.js";
import { AgentError, toAgentError } from "../../../common/errors.js";
import type { Logger } from "../../../common/logger.js";
import type { RequestJournal } from "../../service/journal/requestJournal.js";
import type { Transport } from "../transport.js";
import { connectBroker, displayUrl, logClientError, refusedVersion } from "./brokerClient.js";
import type { BrokerConnection, IPublishPacket, MqttClient } from "./brokerClient.js";
import type { LocalBroker, LocalBrokerOptions } from "./localBroker.js";
import { AgentPresence } from "./agentPresence.js";
import type { AgentPresenceOptions } from "./agentPresence.js";
import { Outbox } from "./outbox.js";
import type { OutboxEntry } from "./outbox.js";
import { RequestHandler } from "./requestHandler.js";
import type { RequestHandlerOptions } from "./requestHandler.js";
import { agentSubscriptions, agentTopics, fleetTopics } from "./topics.js";
import type { AgentTopics } from "./topics.js";

/**
 * The MQTT API (README, "MQTT API"): the connection's life (the same-id check, the
 * agent's persistent session, reconnects with backoff, the retained status, health and
 * the outbox) around a RequestHandler that answers what arrives.
 */

export interface MqttTransportOptions
  extends Omit<RequestHandlerOptions, "topics" | "publish" | "stopping" | "protocolVersion">, AgentPresenceOptions {
  /** The broker and this agent's login; `url` is ignored when `local` is set (the local broker's own URL is used). */
  broker: BrokerConnection;
  /** `--mqtt embedded`: a broker on this host (an existing one, mosquitto or aedes; see localBroker.ts). Defaults to none. */
  local?: Omit<LocalBrokerOptions, "logger"> | undefined;
  /**
   * While the broker cannot be reached, keep retrying instead of failing `start` (`run`: the
   * other transports serve meanwhile). Defaults to false (bench, tests: fail fast).
   */
  waitForBroker?: boolean | undefined;
  /** Also serve `$share/<fleet>/<prefix>/fleet/<fleet>/ask`. Defaults to none. */
  fleet?: string | undefined;
  /** Time between health messages, ms. */
  healthIntervalMs: number;
  /** Most replies held while the broker is out of reach. Defaults to 5000. */
  outboxLimit?: number;
  /** How long the broker keeps this agent's session while it is away, s. Defaults to one day. */
  sessionExpirySeconds?: number;
  /** Opens the request journal for the broker at this URL (`--state-dir`: mqttSettings.ts). Defaults to none (memory only). */
  openJournal?: ((brokerUrl: string) => Promise<RequestJournal>) | undefined;
}

// Short enough that an agent started before its broker serves within a few seconds of the
// broker coming up (a lab PC that boots faster than the broker's host); the jitter keeps
// agents that lost one broker together from coming back in step.
const RECONNECT = { firstMs: 1000, maxMs: 5000, jitter: 0.2 };

/** Where the MQTT side stands, for `/status`, the banner and the log. */
export type MqttState = "starting" | "connecting" | "online" | "reconnecting" | "stopped" | "failed";

export class MqttTransport implements Transport {
  readonly name = "mqtt";
  readonly #options: MqttTransportOptions;
  readonly #log: Logger;
  readonly #topics: AgentTopics;
  readonly #requests: RequestHandler;
  readonly #outbox: Outbox;
  readonly #backoff = new Backoff(RECONNECT);
  readonly #presence: AgentPresence;
  #client: MqttClient | undefined;
  #journal: RequestJournal | undefined;
  #broker: LocalBroker | undefined;
  #url: string;
  #protocolVersion: 4 | 5;
  #health: NodeJS.Timeout | undefined;
  #retry: NodeJS.Timeout | undefined;
  #stopping = false;
  #stopped: Promise<void> | undefined;
  #state: MqttState = "starting";
  #lastError: AgentError | undefined;
  #ended: Promise<AgentError | void>;
  #end!: (error: AgentError | void) => void;

  constructor(options: MqttTransportOptions) {
    this.#options = options;
    this.#log = options.logger.child({ component: "mqtt" });
    this.#topics = agentTopics(options.prefix, options.agentId);
    this.#url = options.broker.url;
    this.#protocolVersion = options.broker.protocolVersion;
    this.#outbox = new Outbox(options.outboxLimit ?? 5000);
    this.#presence = new AgentPresence(options);
    this.#requests = new RequestHandler({
      ...options,
      topics: this.#topics,
      logger: this.#log,
      publish: (entry) => this.#publish(entry),
      stopping: () => this.#stopping,
      protocolVersion: () => this.#protocolVersion,
    });
    this.#ended = new Promise((resolve) => (this.#end = resolve));
  }

  /** `<prefix>/<agentId>`. */
  get baseTopic(): string {
    return this.#topics.base;
  }

  /** Resolves with the error when the MQTT side gives up by itself (another agent holds this id). */
  get ended(): Promise<AgentError | void> {
    return this.#ended;
  }

  get state(): MqttState {
    return this.#state;
  }

  /** One line for `/status` and the console banner. */
  get summary(): string {
    const where = this.#broker
      ? this.#broker.description
      : `${displayUrl(this.#url)} (MQTT ${this.#protocolVersion === 5 ? "5" : "3.1.1"})`;
    switch (this.#state) {
      case "online":
        return `mqtt     online: ${where}; questions to ${this.#topics.ask}`;
      case "failed":
        return `mqtt     stopped: ${this.#lastError?.message ?? "failed"}`;
      case "stopped":
        return "mqtt     stopped";
      default:
        return `mqtt     ${this.#state} to ${where}${this.#lastError ? ` (last error: ${this.#lastError.message})` : ""}`;
    }
  }

  async start(): Promise<void> {
    const o = this.#options;
    if (o.local) {
      const { startLocalBroker } = await import("./localBroker.js");
      this.#broker = await startLocalBroker({ ...o.local, logger: o.logger });
      this.#url = this.#broker.url;
      this.#protocolVersion = this.#broker.protocolVersion === 4 ? 4 : o.broker.protocolVersion;
      if (this.#broker.kind === "aedes" && o.fleet !== undefined) {
        await this.#broker.close();
        throw new AgentError(
          "IA_ERR_CONFIG",
          `--fleet ${o.fleet}: fleet mode needs shared subscriptions, which the aedes fallback broker lacks; install mosquitto, or use --mqtt mqtt://<broker> (mosquitto, EMQX)`,
        );
      }
    }
    try {
      await this.#connectFirst();
    } catch (error) {
      const agentError = toAgentError(error);
      if (o.waitForBroker && agentError.code === "IA_ERR_MQTT_DUPLICATE_ID") {
        // The other agent keeps the id; this one serves its other transports.
        await this.#fail(agentError);
        return;
      }
      if (!o.waitForBroker || agentError.code !== "IA_ERR_MQTT_CONNECT") {
        await this.#broker?.close();
        throw error;
      }
      this.#lastError = agentError;
      this.#state = "connecting";
      this.#log.warn({ err: agentError }, "MQTT broker not reachable yet; retrying in the background while the other transports serve");
      this.#scheduleFirstConnect();
    }
  }

  #scheduleFirstConnect(): void {
    const delay = this.#backoff.next();
    this.#retry = setTimeout(() => {
      this.#retry = undefined;
      if (this.#stopping) return;
      this.#connectFirst().catch((error: unknown) => {
        if (this.#stopping) return;
        const agentError = toAgentError(error);
        if (agentError.code === "IA_ERR_MQTT_CONNECT") {
          if (agentError.message !== this.#lastError?.message)
            this.#log.warn({ err: agentError }, "MQTT broker still not reachable; retrying");
          else this.#log.debug({ err: agentError }, "MQTT broker still not reachable; retrying");
          this.#lastError = agentError;
          this.#scheduleFirstConnect();
        } else {
          void this.#fail(agentError);
        }
      });
    }, delay);
  }

  /** The MQTT side gives up (same id taken, login refused): one error, no reconnect loop; other transports go on. */
  async #fail(error: AgentError): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    this.#state = "failed";
    this.#lastError = error;
    clearInterval(this.#health);
    clearTimeout(this.#retry);
    this.#log.error({ err: error }, "MQTT API stopped");
    this.#requests.abortAll();
    const client = this.#client;
    this.#client = undefined;
    // Without a clean DISCONNECT the broker would publish our last will (offline) over the
    // status of the agent that holds this id.
    if (client) await within(client.endAsync(), 1000).catch(() => undefined);
    client?.end(true);
    await this.#broker?.close();
    await this.#closeJournal(1000);
    this.#end(error);
  }

  /** First connection: the same-id check, then the agent's own session, subscriptions and online status. */
  async #connectFirst(): Promise<void> {
    const o = this.#options;
    await this.#presence.checkIdFree({
      ...o.broker,
      url: this.#url,
      protocolVersion: this.#protocolVersion,
      statusTopic: this.#topics.status,
      // A broker found already listening may speak only 3.1.1: the id check is then skipped.
      skipIfRefusedVersion: this.#broker?.kind === "existing" && this.#protocolVersion === 5,
    });
    // Before the connection: the questions the last run left unfinished are answered first,
    // and the persistent session's queued messages find the journal open.
    if (!this.#journal && o.openJournal) this.#requests.useJournal((this.#journal = await o.openJournal(this.#url)));
    const connect = (protocolVersion: 4 | 5) =>
      connectBroker({
        ...o.broker,
        url: this.#url,
        clientId: `iagent-${o.agentId}`,
        protocolVersion,
        sessionExpirySeconds: o.sessionExpirySeconds ?? 86_400,
        will: { topic: this.#topics.status, payload: this.#presence.offline(), qos: 1, retain: true },
        onMessage: (topic, payload) => this.#onMessage(topic, payload),
        // A request is acknowledged once it is journaled (RequestHandler.handle).
        beforeAck: async (topic, payload, packet) =>
          topic === this.#topics.status ? undefined : this.#requests.handle(topic, payload, packet),
      });
    let client: MqttClient;
    try {
      client = await connect(this.#protocolVersion);
    } catch (error) {
      // A broker found already listening may speak only 3.1.1: fall back once, and say so.
      if (this.#broker?.kind !== "existing" || this.#protocolVersion !== 5 || !refusedVersion(error)) throw error;
      this.#log.warn(
        { broker: displayUrl(this.#url) },
        "the broker on this host speaks only MQTT 3.1.1: serving with 3.1.1 (no response topics with correlation data, no $share fleets)",
      );
      this.#protocolVersion = 4;
      client = await connect(4);
    }
    if (this.#stopping) {
      client.end(true);
      return;
    }
    this.#client = client;
    client.on("connect", () => this.#onConnect());
    client.on("close", () => this.#onClose());
    client.on("disconnect", (packet) => {
      // MQTT 5 reason 142: another client connected with this client id (the same --agent-id).
      if (packet.reasonCode === 142)
        this.#log.warn({ agent: o.agentId }, "the broker handed this agent's session to another client with the same id");
    });
    client.on("error", (error) => logClientError(this.#log, error, this.#url, this.#stopping));
    const granted = await client.subscribeAsync(
      Object.fromEntries(
        agentSubscriptions(this.#topics, o.fleet === undefined ? undefined : fleetTopics(o.prefix, o.fleet)).map((t) => [t, { qos: 1 }]),
      ),
    );
    const refused = granted.filter((g) => g.qos === 128 || g.qos > 2);
    if (refused.length > 0) {
      throw new AgentError(
        "IA_ERR_MQTT_AUTH",
        `MQTT broker ${displayUrl(this.#url)} refused the subscription to ${refused.map((g) => g.topic).join(", ")} (not authorized, or $share not supported)`,
      );
    }
    this.#onConnect();
    this.#health = setInterval(() => {
      if (!this.#client?.connected) return;
      this.#client.publish(this.#topics.health, this.#presence.health(this.#outbox.size), { qos: 0 });
      // The retained status carries the SCPI counts: renewed with the health when they changed.
      if (this.#presence.statusOutdated())
        this.#publish({ topic: this.#topics.status, payload: this.#presence.online(), qos: 1, retain: true, kind: "status" });
    }, o.healthIntervalMs);
    this.#health.unref();
    this.#log.info(
      { broker: displayUrl(this.#url), base: this.#topics.base, fleet: o.fleet, mqtt: this.#protocolVersion === 5 ? "5" : "3.1.1" },
      "MQTT API serving",
    );
  }

  async #closeJournal(ms: number): Promise<void> {
    const journal = this.#journal;
    if (!journal) return;
    await within(this.#requests.settled(), ms);
    await within(journal.close(), ms).catch((error: unknown) =>
      this.#log.warn({ err: toAgentError(error) }, "the MQTT request journal did not close cleanly"),
    );
  }

  stop(deadline: { ms: number }): Promise<void> {
    this.#stopped ??= this.#stop(deadline.ms);
    return this.#stopped;
  }

  /** 1 stop accepting; 2 cancel in-flight answers and send their finals; 3 retained offline; 4 disconnect; 5 local broker. */
  async #stop(ms: number): Promise<void> {
    const failed = this.#state === "failed";
    this.#stopping = true;
    this.#broker?.stopping?.();
    clearInterval(this.#health);
    clearTimeout(this.#retry);
    this.#requests.abortAll();
    await within(this.#requests.settled(), ms / 2);
    const client = this.#client;
    if (client?.connected) {
      this.#flushOutbox();
      await within(
        client.publishAsync(this.#topics.status, this.#presence.offline(), { qos: 1, retain: true }).then(() => undefined),
        ms / 4,
      );
      await within(client.endAsync(), ms / 4).catch(() => undefined);
    }
    client?.end(true);
    if (this.#broker) await within(this.#broker.close(), 4000);
    await this.#closeJournal(ms / 4);
    if (!failed) this.#state = "stopped";
    this.#end();
    this.#log.info({ outboxDropped: this.#outbox.dropped, unsent: this.#outbox.size }, "MQTT API stopped");
  }

  // --- connection life ------------------------------------------------------------------

  #onConnect(): void {
    if (this.#stopping) return;
    if (this.#state !== "online" && this.#state !== "starting") this.#log.info({ broker: displayUrl(this.#url) }, "MQTT connected");
    this.#state = "online";
    this.#lastError = undefined;
    this.#backoff.reset();
    this.#publish({ topic: this.#topics.status, payload: this.#presence.online(), qos: 1, retain: true, kind: "status" });
    this.#flushOutbox();
  }

  #onClose(): void {
    if (this.#stopping || this.#retry) return;
    this.#state = "reconnecting";
    const delay = this.#backoff.next();
    this.#log.warn({ broker: displayUrl(this.#url), retryInMs: delay }, "MQTT connection lost; reconnecting");
    this.#retry = setTimeout(() => {
      this.#retry = undefined;
      const client = this.#client;
      if (!client || this.#stopping) return;
      // The same stores: QoS 1 messages in flight when the connection broke are sent again.
      client.reconnect({ incomingStore: client.incomingStore, outgoingStore: client.outgoingStore });
    }, delay);
  }

  /** A status on our own topic: another process that came online under this id after us loses. */
  #onOwnStatus(payload: Buffer): void {
    // A dead process's status can still arrive: the persistent session of an agent killed
    // with -9 holds its own "online" publish, queued before its will went out, and hands it
    // to the next agent that takes the session (seen in about half of kill -9 restarts).
    // otherLive leaves those out.
    const other = this.#presence.otherLive(payload);
    if (!other) return;
    if (this.#presence.isOlderThan(other)) {
      this.#log.warn({ other }, "another agent came online with this agent's id; it will stop its MQTT side (this one keeps serving)");
      // Our retained status was overwritten: say again that this agent is the one online.
      this.#publish({ topic: this.#topics.status, payload: this.#presence.online(), qos: 1, retain: true, kind: "status" });
      return;
    }
    void this.#fail(this.#presence.duplicateError(other, this.#url));
  }

  #publish(entry: OutboxEntry): void {
    const client = this.#client;
    if (!client?.connected) {
      if (entry.kind !== "status") this.#outbox.push(entry);
      return;
    }
    const properties = entry.correlationData && this.#protocolVersion === 5 ? { correlationData: entry.correlationData } : undefined;
    client.publish(entry.topic, entry.payload, { qos: entry.qos, retain: entry.retain, ...(properties ? { properties } : {}) }, (error) => {
      if (error) this.#log.debug({ err: error, topic: entry.topic }, "publish not acknowledged (it is resent after the reconnect)");
    });
  }

  #flushOutbox(): void {
    const waiting = this.#outbox.drain();
    if (waiting.length > 0) this.#log.info({ messages: waiting.length }, "sending replies held while disconnected");
    for (const entry of waiting) this.#publish(entry);
  }

  // --- requests ------------------------------------------------------------------------

  /** Requests go to the RequestHandler from `beforeAck`; here only our own status. */
  #onMessage(topic: string, payload: Buffer): void {
    if (topic !== this.#topics.status) return;
    try {
      this.#onOwnStatus(payload);
    } catch (error) {
      // A transport callback never throws: bad input must not take the agent down.
      this.#log.error({ err: toAgentError(error), topic }, "MQTT message could not be handled");
    }
  }
}
