import { readFileSync } from "node:fs";
import { freemem, hostname, loadavg } from "node:os";
import type { IClientOptions, IPublishPacket, MqttClient } from "mqtt";
import type { AnswerService } from "../../service/answerService.js";
import { Conversation } from "../../service/conversation.js";
import type { LocalBroker, LocalBrokerOptions } from "./localBroker.js";
import { AgentError, toAgentError } from "../../../common/errors.js";
import type { Logger } from "../../../common/logger.js";
import type { GenerateResult, RuntimeInfo } from "../../engine/modelRuntime.js";
import { LruMap, Outbox } from "./outbox.js";
import type { OutboxEntry } from "./outbox.js";
import { RateLimiter } from "./rateLimiter.js";
import { parseAsk, parseCancel, parseScpi, requestKey } from "./mqttRequest.js";
import type { AskRequest, Envelope, ReplyRoute } from "./mqttRequest.js";
import type { Transport } from "../transport.js";

/**
 * The MQTT API of DESIGN.md section 4, and the one module that imports `mqtt` (lazily, so
 * commands without MQTT never load it). `askVia.ts` connects through `connectBroker`.
 */

export type { MqttClient, IPublishPacket };

// ---------------------------------------------------------------------------------------
// Connecting

/** How this agent logs in to a broker: protocol, credentials, TLS files. */
export interface BrokerLogin {
  protocolVersion: 4 | 5;
  username?: string | undefined;
  password?: string | undefined;
  /** CA, client certificate and key files (PEM) for TLS. Defaults to none. */
  ca?: string | undefined;
  cert?: string | undefined;
  key?: string | undefined;
}

export interface BrokerOptions extends BrokerLogin {
  /** `mqtt://`, `mqtts://`, `ws://` or `wss://` URL; credentials in it are used and never shown. */
  url: string;
  clientId: string;
  /** Keep the session (subscriptions, queued QoS 1 messages) this long after a disconnect; 0 starts clean. */
  sessionExpirySeconds: number;
  will?: { topic: string; payload: string; qos: 0 | 1; retain: boolean } | undefined;
  /** Registered before the connection opens, so messages queued for a persistent session are not lost. */
  onMessage?: ((topic: string, payload: Buffer, packet: IPublishPacket) => void) | undefined;
  /** Longest wait for the broker to accept the connection. Defaults to 10000 ms. */
  connectTimeoutMs?: number | undefined;
}

/** The URL without user name and password, for messages and logs. */
export function displayUrl(url: string): string {
  try {
    const parsed = new URL(url);
    parsed.username = "";
    parsed.password = "";
    return parsed.toString().replace(/\/$/, "");
  } catch {
    return url.replace(/\/\/[^@/]*@/, "//");
  }
}

const V4_REFUSALS: Record<number, string> = {
  1: "unacceptable protocol version",
  2: "client id rejected",
  3: "server unavailable",
  4: "bad user name or password",
  5: "not authorized",
};
const V5_REFUSALS: Record<number, string> = {
  128: "unspecified error",
  130: "protocol error",
  132: "unsupported protocol version",
  133: "client identifier not valid",
  134: "bad user name or password",
  135: "not authorized",
  136: "server unavailable",
  137: "server busy",
  138: "banned",
  140: "bad authentication method",
  159: "connection rate exceeded",
};
const AUTH_REFUSALS = new Set([4, 5, 134, 135, 138, 140]);

/** A connection failure as a coded error that names the broker and the reason. */
export function describeConnectError(error: unknown, url: string, protocolVersion: 4 | 5): AgentError {
  const shown = displayUrl(url);
  const code = (error as { code?: unknown }).code;
  if (typeof code === "number" && code > 0) {
    const reason = (protocolVersion === 5 ? V5_REFUSALS : V4_REFUSALS)[code] ?? `reason code ${code}`;
    if (AUTH_REFUSALS.has(code)) {
      return new AgentError(
        "IA_ERR_MQTT_AUTH",
        `MQTT broker ${shown} refused the login: ${reason} (check --mqtt-username and IAGENT_MQTT_PASSWORD)`,
        { cause: error },
      );
    }
    const hint = code === 1 || code === 132 ? "; try --mqtt-version 3.1.1" : "";
    return new AgentError("IA_ERR_MQTT_CONNECT", `MQTT broker ${shown} refused the connection: ${reason}${hint}`, { cause: error });
  }
  const reasons: Record<string, string> = {
    ECONNREFUSED: "connection refused (is the broker running on that port?)",
    ENOTFOUND: "unknown host",
    EAI_AGAIN: "host name lookup failed",
    ECONNRESET: "the connection was reset",
    ETIMEDOUT: "the connection timed out",
    EHOSTUNREACH: "host unreachable",
  };
  const reason = typeof code === "string" && reasons[code] ? reasons[code] : (error as Error).message;
  return new AgentError("IA_ERR_MQTT_CONNECT", `cannot connect to MQTT broker ${shown}: ${reason}`, { cause: error });
}

function readPem(file: string | undefined, flag: string): Buffer | undefined {
  if (file === undefined) return undefined;
  try {
    return readFileSync(file);
  } catch (error) {
    throw new AgentError("IA_ERR_CONFIG", `${flag}: cannot read ${file} (${(error as Error).message})`, { cause: error });
  }
}

/**
 * Opens one connection and resolves once the broker accepted it; rejects with
 * IA_ERR_MQTT_AUTH or IA_ERR_MQTT_CONNECT naming the broker. The client does not reconnect
 * by itself: the caller decides (see `MqttTransport`).
 */
export async function connectBroker(options: BrokerOptions): Promise<MqttClient> {
  const { connect } = await import("mqtt");
  const persistent = options.sessionExpirySeconds > 0;
  const clientOptions: IClientOptions = {
    clientId: options.clientId,
    protocolVersion: options.protocolVersion,
    clean: !persistent,
    reconnectPeriod: 0,
    connectTimeout: options.connectTimeoutMs ?? 10_000,
    keepalive: 30,
    resubscribe: true,
    ...(options.protocolVersion === 5 && persistent ? { properties: { sessionExpiryInterval: options.sessionExpirySeconds } } : {}),
    ...(options.username !== undefined ? { username: options.username } : {}),
    ...(options.password !== undefined ? { password: options.password } : {}),
    ...(options.will ? { will: { ...options.will, payload: Buffer.from(options.will.payload) } } : {}),
  };
  const ca = readPem(options.ca, "--mqtt-ca");
  const cert = readPem(options.cert, "--mqtt-cert");
  const key = readPem(options.key, "--mqtt-key");
  if (ca) clientOptions.ca = ca;
  if (cert) clientOptions.cert = cert;
  if (key) clientOptions.key = key;
  const client = connect(options.url, clientOptions);
  // Answers stream as many small publishes; without TCP_NODELAY a chunk can wait for the
  // broker's delayed ACK (measured: time to first token over MQTT +60 ms). Every
  // (re)connection brings a new socket, so set it on each.
  client.on("connect", () => (client.stream as { setNoDelay?: (noDelay: boolean) => void } | undefined)?.setNoDelay?.(true));
  if (options.onMessage) client.on("message", options.onMessage);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () =>
        fail(
          new AgentError(
            "IA_ERR_MQTT_CONNECT",
            `cannot connect to MQTT broker ${displayUrl(options.url)}: no answer within ${clientOptions.connectTimeout! / 1000} s`,
          ),
        ),
      clientOptions.connectTimeout! + 500,
    );
    const cleanup = () => {
      clearTimeout(timer);
      client.off("connect", onConnect);
      client.off("error", onError);
      client.off("close", onClose);
    };
    const fail = (error: AgentError) => {
      cleanup();
      client.end(true);
      reject(error);
    };
    const onConnect = () => {
      cleanup();
      resolve();
    };
    const onError = (error: Error) => fail(describeConnectError(error, options.url, options.protocolVersion));
    const onClose = () =>
      fail(
        new AgentError(
          "IA_ERR_MQTT_CONNECT",
          `MQTT broker ${displayUrl(options.url)} closed the connection before accepting it${options.protocolVersion === 5 ? " (if it speaks only MQTT 3.1.1, set --mqtt-version 3.1.1)" : ""}`,
        ),
      );
    client.on("connect", onConnect);
    client.on("error", onError);
    client.on("close", onClose);
  });
  return client;
}

/**
 * Publishes to a private topic and waits for the message to come back: `smoke`'s proof
 * that the broker accepts this agent's login and routes its messages. Resolves with the
 * round-trip time in ms.
 */
export async function brokerRoundTrip(
  options: Omit<BrokerOptions, "onMessage" | "will" | "sessionExpirySeconds">,
  topic: string,
  signal: AbortSignal,
): Promise<number> {
  let echoed!: () => void;
  const arrived = new Promise<void>((resolve) => (echoed = resolve));
  const client = await connectBroker({ ...options, sessionExpirySeconds: 0, onMessage: (t) => t === topic && echoed() });
  const onAbort = () => client.end(true);
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    const started = performance.now();
    await client.subscribeAsync(topic, { qos: 1 });
    await client.publishAsync(topic, "ping", { qos: 1 });
    await arrived;
    return Math.round(performance.now() - started);
  } finally {
    signal.removeEventListener("abort", onAbort);
    await client.endAsync(true).catch(() => undefined);
  }
}

// ---------------------------------------------------------------------------------------
// The transport

export interface MqttTransportOptions extends BrokerLogin {
  /** Broker URL; ignored when `local` is set (the local broker's own URL is used). */
  url: string;
  /** `--mqtt embedded`: a broker on this host (an existing one, mosquitto or aedes; see localBroker.ts). Defaults to none. */
  local?: Omit<LocalBrokerOptions, "logger"> | undefined;
  /**
   * While the broker cannot be reached, keep retrying instead of failing `start` (`run`: the
   * other transports serve meanwhile). Defaults to false (bench, tests: fail fast).
   */
  waitForBroker?: boolean | undefined;
  agentId: string;
  /** First topic level. */
  prefix: string;
  /** Also serve `$share/<fleet>/<prefix>/fleet/<fleet>/ask`. Defaults to none. */
  fleet?: string | undefined;
  /** Largest request payload read, bytes. */
  payloadLimit: number;
  /** Questions a minute per requester; 0 is no limit. */
  rateLimitPerMinute: number;
  /** Time between health messages, ms. */
  healthIntervalMs: number;
  service: AnswerService;
  info: RuntimeInfo;
  version: string;
  /** Read-only SCPI through the firmware bridge for `<base>/scpi`. Defaults to none (replies IA_ERR_NO_INSTRUMENT). */
  scpi?: ((query: string) => Promise<string>) | undefined;
  logger: Logger;
  /** Most `session` histories kept; the least recently used goes first. Defaults to 64. */
  maxSessions?: number;
  /** Most replies held while the broker is out of reach. Defaults to 5000. */
  outboxLimit?: number;
  /** Most request ids remembered (with their final replies) to answer redeliveries. Defaults to 1000. */
  rememberedRequests?: number;
  /** How long the broker keeps this agent's session while it is away, s. Defaults to one day. */
  sessionExpirySeconds?: number;
  /** Longest wait for the broker to accept a connection, ms. Defaults to 10000. */
  connectTimeoutMs?: number | undefined;
}

interface Job {
  id: string;
  controller: AbortController;
  done: Promise<void>;
}

interface Remembered {
  /** The final reply, once there is one. */
  final?: Buffer | undefined;
  route: ReplyRoute;
}

interface Session {
  conversation: Conversation;
  /** Questions in one session are answered in order. */
  tail: Promise<void>;
}

const FIRST_RETRY_MS = 1000;
// Short enough that an agent started before its broker serves within a few seconds of the
// broker coming up (a lab PC that boots faster than the broker's host).
const MAX_RETRY_MS = 5000;
/** How long the same-id check waits for a retained status before taking the id as free. */
const ID_CHECK_MS = 1500;

/** Where the MQTT side stands, for `/status`, the banner and the log. */
export type MqttState = "starting" | "connecting" | "online" | "reconnecting" | "stopped" | "failed";

/** Who this agent is on the broker: told apart from another process using the same `--agent-id`. */
interface Instance {
  host: string;
  pid: number;
  since: number;
}

export class MqttTransport implements Transport {
  readonly name = "mqtt";
  readonly #options: MqttTransportOptions;
  readonly #log: Logger;
  readonly #base: string;
  readonly #jobs = new Set<Job>();
  readonly #recent: LruMap<string, Remembered>;
  readonly #sessions: LruMap<string, Session>;
  readonly #outbox: Outbox;
  readonly #rate: RateLimiter;
  readonly #startedAt = Date.now();
  readonly #instance: Instance = { host: hostname(), pid: process.pid, since: this.#startedAt };
  #client: MqttClient | undefined;
  #broker: LocalBroker | undefined;
  #url: string;
  #protocolVersion: 4 | 5;
  #health: NodeJS.Timeout | undefined;
  #retry: NodeJS.Timeout | undefined;
  #retryMs = FIRST_RETRY_MS;
  #stopping = false;
  #stopped: Promise<void> | undefined;
  #state: MqttState = "starting";
  #lastError: AgentError | undefined;
  #ended: Promise<AgentError | void>;
  #end!: (error: AgentError | void) => void;

  constructor(options: MqttTransportOptions) {
    this.#options = options;
    this.#log = options.logger.child({ component: "mqtt" });
    this.#base = `${options.prefix}/${options.agentId}`;
    this.#url = options.url;
    this.#protocolVersion = options.protocolVersion;
    this.#recent = new LruMap(options.rememberedRequests ?? 1000);
    this.#sessions = new LruMap(options.maxSessions ?? 64);
    this.#outbox = new Outbox(options.outboxLimit ?? 5000);
    this.#rate = new RateLimiter({ perMinute: options.rateLimitPerMinute });
    this.#ended = new Promise((resolve) => (this.#end = resolve));
  }

  /** `<prefix>/<agentId>`. */
  get baseTopic(): string {
    return this.#base;
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
        return `mqtt     online: ${where}; questions to ${this.#base}/ask`;
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
      this.#protocolVersion = this.#broker.protocolVersion === 4 ? 4 : o.protocolVersion;
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
    const delay = this.#nextDelay();
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

  #nextDelay(): number {
    const delay = Math.round(this.#retryMs * (0.8 + Math.random() * 0.4));
    this.#retryMs = Math.min(this.#retryMs * 2, MAX_RETRY_MS);
    return delay;
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
    for (const job of this.#jobs) job.controller.abort();
    const client = this.#client;
    this.#client = undefined;
    // Without a clean DISCONNECT the broker would publish our last will (offline) over the
    // status of the agent that holds this id.
    if (client) await within(client.endAsync(), 1000).catch(() => undefined);
    client?.end(true);
    await this.#broker?.close();
    this.#end(error);
  }

  /** First connection: the same-id check, then the agent's own session, subscriptions and online status. */
  async #connectFirst(): Promise<void> {
    const o = this.#options;
    await this.#checkIdFree();
    const connect = (protocolVersion: 4 | 5) =>
      connectBroker({
        url: this.#url,
        clientId: `iagent-${o.agentId}`,
        protocolVersion,
        username: o.username,
        password: o.password,
        ca: o.ca,
        cert: o.cert,
        key: o.key,
        sessionExpirySeconds: o.sessionExpirySeconds ?? 86_400,
        will: { topic: `${this.#base}/status`, payload: this.#offline(), qos: 1, retain: true },
        onMessage: (topic, payload, packet) => this.#onMessage(topic, payload, packet),
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
    client.on("error", (error) =>
      this.#log.warn({ err: describeConnectError(error, this.#url, this.#protocolVersion) }, "MQTT connection error"),
    );
    const topics: Record<string, { qos: 1 }> = {
      [`${this.#base}/ask`]: { qos: 1 },
      [`${this.#base}/cancel`]: { qos: 1 },
      [`${this.#base}/scpi`]: { qos: 1 },
      // Our own status: another agent that comes online under this id shows up here.
      [`${this.#base}/status`]: { qos: 1 },
    };
    if (o.fleet) {
      topics[`$share/${o.fleet}/${o.prefix}/fleet/${o.fleet}/ask`] = { qos: 1 };
      topics[`${o.prefix}/fleet/${o.fleet}/cancel`] = { qos: 1 };
    }
    const granted = await client.subscribeAsync(topics);
    const refused = granted.filter((g) => g.qos === 128 || g.qos > 2);
    if (refused.length > 0) {
      throw new AgentError(
        "IA_ERR_MQTT_AUTH",
        `MQTT broker ${displayUrl(this.#url)} refused the subscription to ${refused.map((g) => g.topic).join(", ")} (not authorized, or $share not supported)`,
      );
    }
    this.#onConnect();
    this.#health = setInterval(() => this.#publishHealth(), o.healthIntervalMs);
    this.#health.unref();
    this.#log.info(
      { broker: displayUrl(this.#url), base: this.#base, fleet: o.fleet, mqtt: this.#protocolVersion === 5 ? "5" : "3.1.1" },
      "MQTT API serving",
    );
  }

  /**
   * Refuses to take an id that another live agent holds: its retained status is online and
   * names another process. Connecting anyway would make the broker hand the session back
   * and forth between the two (each reconnect takes it over again).
   */
  async #checkIdFree(): Promise<void> {
    const o = this.#options;
    const topic = `${this.#base}/status`;
    let seen: Buffer | undefined;
    const probe = await connectBroker({
      url: this.#url,
      clientId: `iagent-idcheck-${o.agentId}-${process.pid}`.slice(0, 200),
      protocolVersion: this.#protocolVersion,
      username: o.username,
      password: o.password,
      ca: o.ca,
      cert: o.cert,
      key: o.key,
      sessionExpirySeconds: 0,
      connectTimeoutMs: o.connectTimeoutMs,
      onMessage: (t, payload, packet) => {
        if (t === topic && packet.retain) seen = payload;
      },
    }).catch((error: unknown) => {
      if (this.#broker?.kind === "existing" && this.#protocolVersion === 5 && refusedVersion(error)) return undefined;
      throw error;
    });
    if (!probe) return;
    try {
      await probe.subscribeAsync(topic, { qos: 1 });
      const until = Date.now() + ID_CHECK_MS;
      while (seen === undefined && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 50));
    } finally {
      await within(probe.endAsync(), 1000).catch(() => undefined);
      probe.end(true);
    }
    const other = seen ? otherInstance(seen, this.#instance) : undefined;
    if (other && !isStale(other)) throw this.#duplicateError(other);
  }

  #duplicateError(other: Instance & { model?: string }): AgentError {
    const since = new Date(other.since).toISOString();
    return new AgentError(
      "IA_ERR_MQTT_DUPLICATE_ID",
      `agent id "${this.#options.agentId}" is already online on MQTT broker ${displayUrl(this.#url)}: pid ${other.pid} on host ${other.host} since ${since}${other.model ? ` (model ${other.model})` : ""}; ` +
        "give this agent another --agent-id, or stop that one (after a power cut its status turns offline within 45 s)",
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
    for (const job of this.#jobs) job.controller.abort();
    await within(Promise.allSettled([...this.#jobs].map((j) => j.done)), ms / 2);
    const client = this.#client;
    if (client?.connected) {
      this.#flushOutbox();
      await within(
        client.publishAsync(`${this.#base}/status`, this.#offline(), { qos: 1, retain: true }).then(() => undefined),
        ms / 4,
      );
      await within(client.endAsync(), ms / 4).catch(() => undefined);
    }
    client?.end(true);
    if (this.#broker) await within(this.#broker.close(), 4000);
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
    this.#retryMs = FIRST_RETRY_MS;
    this.#publish({ topic: `${this.#base}/status`, payload: this.#online(), qos: 1, retain: true, kind: "status" });
    this.#flushOutbox();
  }

  #onClose(): void {
    if (this.#stopping || this.#retry) return;
    this.#state = "reconnecting";
    const delay = this.#nextDelay();
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
    const other = otherInstance(payload, this.#instance);
    // A dead process's status can still arrive: the persistent session of an agent killed
    // with -9 holds its own "online" publish, queued before its will went out, and hands it
    // to the next agent that takes the session (seen in about half of kill -9 restarts).
    if (!other || isStale(other)) return;
    const theyAreNewer =
      other.since > this.#instance.since ||
      (other.since === this.#instance.since && `${other.host}/${other.pid}` > `${this.#instance.host}/${this.#instance.pid}`);
    if (theyAreNewer) {
      this.#log.warn({ other }, "another agent came online with this agent's id; it will stop its MQTT side (this one keeps serving)");
      // Our retained status was overwritten: say again that this agent is the one online.
      this.#publish({ topic: `${this.#base}/status`, payload: this.#online(), qos: 1, retain: true, kind: "status" });
      return;
    }
    void this.#fail(this.#duplicateError(other));
  }

  #publish(entry: OutboxEntry): void {
    const client = this.#client;
    if (!client?.connected) {
      if (entry.kind !== "status") this.#outbox.push(entry);
      return;
    }
    const properties =
      entry.correlationData && this.#options.protocolVersion === 5 ? { correlationData: entry.correlationData } : undefined;
    client.publish(entry.topic, entry.payload, { qos: entry.qos, retain: entry.retain, ...(properties ? { properties } : {}) }, (error) => {
      if (error) this.#log.debug({ err: error, topic: entry.topic }, "publish not acknowledged (it is resent after the reconnect)");
    });
  }

  #flushOutbox(): void {
    const waiting = this.#outbox.drain();
    if (waiting.length > 0) this.#log.info({ messages: waiting.length }, "sending replies held while disconnected");
    for (const entry of waiting) this.#publish(entry);
  }

  // --- payloads ---------------------------------------------------------------------------

  #online(): string {
    const { info, service, agentId, version } = this.#options;
    return JSON.stringify({
      state: "online",
      agent: agentId,
      model: info.modelLabel,
      demo: info.isDemo,
      threads: info.threads,
      mlock: info.mlock.locked,
      contextSize: info.contextSize,
      queue: service.queue.waiting,
      version,
      since: new Date(this.#startedAt).toISOString(),
      host: this.#instance.host,
      pid: this.#instance.pid,
    });
  }

  #offline(): string {
    return JSON.stringify({ state: "offline", agent: this.#options.agentId });
  }

  #publishHealth(): void {
    const { service, agentId } = this.#options;
    const memory = process.memoryUsage();
    const payload = JSON.stringify({
      agent: agentId,
      uptimeS: Math.round((Date.now() - this.#startedAt) / 1000),
      rssBytes: memory.rss,
      heapUsedBytes: memory.heapUsed,
      freeMemBytes: freemem(),
      load: loadavg().map((l) => Math.round(l * 100) / 100),
      queue: { running: service.queue.running, waiting: service.queue.waiting },
      answered: service.stats.answered,
      tokensPerSecond: service.stats.lastTokensPerSecond,
      ttftMs: service.stats.lastTtftMs,
      outbox: this.#outbox.size,
    });
    if (this.#client?.connected) this.#client.publish(`${this.#base}/health`, payload, { qos: 0 });
  }

  // --- requests ---------------------------------------------------------------------------

  #onMessage(topic: string, payload: Buffer, packet: IPublishPacket): void {
    try {
      if (topic === `${this.#base}/status`) {
        this.#onOwnStatus(payload);
        return;
      }
      const envelope: Envelope = {
        payload,
        responseTopic: packet.properties?.responseTopic,
        correlationData: packet.properties?.correlationData,
      };
      if (topic.endsWith("/cancel")) {
        this.#cancel(parseCancel(payload, envelope.correlationData));
        return;
      }
      const handled = topic.endsWith("/scpi") ? this.#scpi(envelope) : this.#ask(envelope, packet.dup);
      handled.catch((error: unknown) => this.#log.error({ err: toAgentError(error), topic }, "MQTT request failed"));
    } catch (error) {
      // A transport callback never throws: bad input must not take the agent down.
      this.#log.error({ err: toAgentError(error), topic }, "MQTT message could not be handled");
    }
  }

  #limits() {
    return { payloadLimit: this.#options.payloadLimit, answerTopic: `${this.#base}/answer`, prefix: this.#options.prefix };
  }

  #reply(route: ReplyRoute, body: Record<string, unknown>, kind: OutboxEntry["kind"]): Buffer {
    const payload = Buffer.from(JSON.stringify(body));
    this.#publish({ topic: route.topic, payload, qos: 1, retain: false, correlationData: route.correlationData, kind });
    return payload;
  }

  #replyError(route: ReplyRoute, id: string, error: AgentError): Buffer {
    this.#log.info({ id, code: error.code, reason: error.message }, "request answered with an error");
    return this.#reply(route, { id, done: true, agent: this.#options.agentId, error: error.toJSON() }, "final");
  }

  #cancel(id: string | undefined): void {
    if (id === undefined) return;
    let found = false;
    for (const job of this.#jobs) {
      if (job.id === id) {
        job.controller.abort();
        found = true;
      }
    }
    this.#log.info({ id, found }, "cancel");
  }

  /** Whether this request was seen before: a finished one gets its final again, a running one nothing. */
  #seenBefore(key: string, dup: boolean | undefined, idGiven: boolean): boolean {
    if (!idGiven && !dup) return false;
    const seen = this.#recent.get(key);
    if (!seen) return false;
    if (seen.final)
      this.#publish({
        topic: seen.route.topic,
        payload: seen.final,
        qos: 1,
        retain: false,
        correlationData: seen.route.correlationData,
        kind: "final",
      });
    this.#log.info({ key: key.slice(-40), answered: Boolean(seen.final) }, "request seen before: not generated again");
    return true;
  }

  /** Refusals common to every request; returns the error to reply with, if any. */
  #refusal(route: ReplyRoute): AgentError | undefined {
    if (this.#stopping) return new AgentError("IA_ERR_DISPOSED", "the agent is shutting down; ask again when its status is online");
    if (!this.#rate.take(route.topic)) {
      return new AgentError(
        "IA_ERR_RATE_LIMITED",
        `more than ${this.#options.rateLimitPerMinute} questions a minute from ${route.topic} (--mqtt-rate-limit); try again later`,
      );
    }
    return undefined;
  }

  async #ask(envelope: Envelope, dup: boolean | undefined): Promise<void> {
    const parsed = parseAsk(envelope, this.#limits());
    if (!parsed.ok) {
      this.#replyError(parsed.route, parsed.id, parsed.error);
      return;
    }
    const { request, route } = parsed;
    const key = requestKey(route, request.id, request.idGiven, envelope);
    if (this.#seenBefore(key, dup, request.idGiven)) return;
    const refused = this.#refusal(route);
    if (refused) {
      this.#replyError(route, request.id, refused);
      return;
    }
    const remembered: Remembered = { route };
    this.#recent.set(key, remembered);
    const controller = new AbortController();
    let finish!: () => void;
    const job: Job = { id: request.id, controller, done: new Promise<void>((resolve) => (finish = resolve)) };
    this.#jobs.add(job);
    try {
      remembered.final = await this.#answer(request, route, controller.signal);
    } finally {
      this.#jobs.delete(job);
      finish();
    }
  }

  /** Generates (in the request's session, if any) and publishes chunks and the final; returns the final. */
  async #answer(request: AskRequest, route: ReplyRoute, signal: AbortSignal): Promise<Buffer> {
    const { agentId } = this.#options;
    let seq = 0;
    const onDelta = request.stream ? (delta: string) => void this.#reply(route, { id: request.id, seq: seq++, delta }, "chunk") : undefined;
    this.#log.debug(
      { id: request.id, session: request.session, prompt: (request.prompt ?? request.messages?.at(-1)?.content ?? "").slice(0, 80) },
      "question",
    );
    try {
      const result = await this.#generate(request, { signal, onDelta });
      return this.#reply(route, finalBody(request.id, agentId, result, request.session), "final");
    } catch (error) {
      const agentError = toAgentError(error);
      if (agentError.code === "IA_ERR_CANCELLED") {
        const cancelled: GenerateResult = {
          text: "",
          finishReason: "cancelled",
          usage: { promptTokens: 0, completionTokens: 0 },
          timings: { ttftMs: 0, tokensPerSecond: 0, promptTokensPerSecond: 0, totalMs: 0, queuedMs: 0 },
        };
        return this.#reply(route, finalBody(request.id, agentId, cancelled, request.session), "final");
      }
      if (agentError.code === "IA_ERR_INTERNAL") this.#log.error({ err: error, id: request.id }, "answer failed");
      return this.#replyError(route, request.id, agentError);
    }
  }

  #generate(
    request: AskRequest,
    options: { signal: AbortSignal; onDelta: ((delta: string) => void) | undefined },
  ): Promise<GenerateResult> {
    const { service } = this.#options;
    const overrides = { system: request.system, params: request.params };
    if (request.session === undefined) {
      const messages = request.messages ?? [{ role: "user" as const, content: request.prompt ?? "" }];
      return service.answer({ mode: "chat", messages, ...overrides }, options);
    }
    let session = this.#sessions.get(request.session);
    if (!session) {
      session = { conversation: new Conversation(), tail: Promise.resolve() };
      this.#sessions.set(request.session, session);
    }
    const turn = session.tail.then(() => session.conversation.ask(service, request.prompt ?? "", options, overrides));
    session.tail = turn.then(
      () => undefined,
      () => undefined,
    );
    return turn;
  }

  async #scpi(envelope: Envelope): Promise<void> {
    const parsed = parseScpi(envelope, this.#limits());
    if (!parsed.ok) {
      this.#replyError(parsed.route, parsed.id, parsed.error);
      return;
    }
    const { request, route } = parsed;
    const refused = this.#refusal(route);
    if (refused) {
      this.#replyError(route, request.id, refused);
      return;
    }
    const scpi = this.#options.scpi;
    if (!scpi) {
      this.#replyError(
        route,
        request.id,
        new AgentError(
          "IA_ERR_NO_INSTRUMENT",
          `no instrument is configured on agent ${this.#options.agentId} (start it with --instrument tcp://host:5025, serial://..., prologix://... or sim)`,
        ),
      );
      return;
    }
    try {
      const reply = await scpi(request.query);
      this.#reply(route, { id: request.id, done: true, agent: this.#options.agentId, query: request.query, reply }, "final");
    } catch (error) {
      this.#replyError(route, request.id, toAgentError(error));
    }
  }
}

function finalBody(id: string, agent: string, result: GenerateResult, session: string | undefined): Record<string, unknown> {
  return {
    id,
    done: true,
    agent,
    text: result.text,
    finishReason: result.finishReason,
    usage: result.usage,
    timings: {
      ttftMs: Math.round(result.timings.ttftMs),
      tokensPerSecond: Math.round(result.timings.tokensPerSecond * 10) / 10,
      queuedMs: result.timings.queuedMs,
    },
    ...(session !== undefined ? { session } : {}),
  };
}

/** The process behind a retained online status, when it is another one than `self`. */
function otherInstance(payload: Buffer, self: Instance): (Instance & { model?: string }) | undefined {
  let status: { state?: unknown; host?: unknown; pid?: unknown; since?: unknown; model?: unknown };
  try {
    status = JSON.parse(payload.toString("utf8")) as typeof status;
  } catch {
    return undefined;
  }
  if (status.state !== "online" || typeof status.since !== "string") return undefined;
  const other = {
    host: typeof status.host === "string" ? status.host : "unknown",
    pid: typeof status.pid === "number" ? status.pid : 0,
    since: Date.parse(status.since),
    ...(typeof status.model === "string" ? { model: status.model } : {}),
  };
  // Our own status, as the broker echoes it back to our subscription.
  if (other.host === self.host && other.pid === self.pid) return undefined;
  return other;
}

/** A retained online status left by a process of this host that no longer runs (kill -9 before the broker noticed). */
function isStale(other: Instance): boolean {
  if (other.host !== hostname() || other.pid <= 0) return false;
  try {
    process.kill(other.pid, 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "ESRCH";
  }
}

/** The broker refused MQTT 5 (it speaks 3.1.1): CONNACK code 1/132, or it closed the connection unanswered. */
function refusedVersion(error: unknown): boolean {
  const cause = (error as { cause?: { code?: unknown } }).cause;
  return cause?.code === 1 || cause?.code === 132 || /closed the connection before accepting it/.test((error as Error).message);
}

/** Waits for `promise` at most `ms`; never rejects on the timeout itself. */
async function within<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
