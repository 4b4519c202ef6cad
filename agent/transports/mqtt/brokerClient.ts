import { readFileSync } from "node:fs";
import { ReasonCodes, connect } from "mqtt";
import type { IClientOptions, IPublishPacket, MqttClient } from "mqtt";
import { sleep, within } from "../../../common/async.js";
import { AgentError } from "../../../common/errors.js";
import type { Logger } from "../../../common/logger.js";

/**
 * One connection to a broker, for the transport, `smoke`, `ask --via` and `bench`; the
 * connection failures as coded errors that name the broker and the reason. With
 * embeddedBroker.ts, the module that imports a broker library; everything outside this folder
 * reaches it through dynamic imports, so commands without MQTT never load `mqtt`.
 */

export type { MqttClient, IPublishPacket };

/** Where and how to reach a broker (from the config: mqttSettings.ts `brokerOptionsFrom`); each client adds its own id. */
export interface BrokerConnection {
  /** `mqtt://`, `mqtts://`, `ws://` or `wss://` URL; credentials in it are used and never shown. */
  url: string;
  protocolVersion: 4 | 5;
  username?: string | undefined;
  password?: string | undefined;
  /** CA, client certificate and key files (PEM) for TLS. Defaults to none. */
  ca?: string | undefined;
  cert?: string | undefined;
  key?: string | undefined;
  /** Longest wait for the broker to accept the connection. Defaults to 10000 ms. */
  connectTimeoutMs?: number | undefined;
}

export interface BrokerOptions extends BrokerConnection {
  clientId: string;
  /** Keep the session (subscriptions, queued QoS 1 messages) this long after a disconnect; 0 starts clean. */
  sessionExpirySeconds: number;
  will?: { topic: string; payload: string; qos: 0 | 1; retain: boolean } | undefined;
  /** Registered before the connection opens, so messages queued for a persistent session are not lost. */
  onMessage?: ((topic: string, payload: Buffer, packet: IPublishPacket) => void) | undefined;
  /**
   * Each message that arrives, one at a time: its QoS 1 acknowledgement (PUBACK) goes to the
   * broker only once the promise settles, and the next message waits until then, so keep it
   * short (the transport journals the question; the answer runs on after). Defaults to none
   * (mqtt.js acknowledges at once).
   */
  beforeAck?: ((topic: string, payload: Buffer, packet: IPublishPacket) => Promise<void>) | undefined;
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

/** CONNACK codes that mean the login, not the connection, is wrong: MQTT 3.1.1 4, 5; MQTT 5 134, 135, 138, 140. */
const AUTH_REFUSALS = new Set([4, 5, 134, 135, 138, 140]);
/** "Unacceptable protocol version" (3.1.1) and "Unsupported Protocol Version" (5). */
const VERSION_REFUSALS = new Set([1, 132]);

const NETWORK_REASONS: Record<string, string> = {
  ECONNREFUSED: "connection refused (is the broker running on that port?)",
  ENOTFOUND: "unknown host",
  EAI_AGAIN: "host name lookup failed",
  ECONNRESET: "the connection was reset",
  ETIMEDOUT: "the connection timed out",
  EHOSTUNREACH: "host unreachable",
};

/**
 * A connection failure as a coded error that names the broker and the reason. The reason of
 * a refusal is mqtt.js's own table (3.1.1 codes 1-5 and 5.0 codes 128+ do not overlap).
 */
export function describeConnectError(error: unknown, url: string): AgentError {
  const shown = displayUrl(url);
  const code = (error as { code?: unknown }).code;
  if (typeof code === "number" && code > 0) {
    const known = (ReasonCodes as Record<number, string | undefined>)[code];
    const reason = known ? known.toLowerCase() : `reason code ${code}`;
    if (AUTH_REFUSALS.has(code)) {
      return new AgentError(
        "IA_ERR_MQTT_AUTH",
        `MQTT broker ${shown} refused the login: ${reason} (check --mqtt-username and IAGENT_MQTT_PASSWORD)`,
        { cause: error },
      );
    }
    const hint = VERSION_REFUSALS.has(code) ? "; try --mqtt-version 3.1.1" : "";
    return new AgentError("IA_ERR_MQTT_CONNECT", `MQTT broker ${shown} refused the connection: ${reason}${hint}`, { cause: error });
  }
  const reason = typeof code === "string" && NETWORK_REASONS[code] ? NETWORK_REASONS[code] : (error as Error).message;
  return new AgentError("IA_ERR_MQTT_CONNECT", `cannot connect to MQTT broker ${shown}: ${reason}`, { cause: error });
}

/**
 * An error event of a connected client, logged. Stopping, mqtt.js may still acknowledge a
 * message that arrived as the socket closed: nothing is lost (the answer was already
 * cancelled or sent), so that one is not a warning.
 */
export function logClientError(log: Logger, error: Error, url: string, stopping: boolean): void {
  if (stopping && (error as NodeJS.ErrnoException).code === "ERR_STREAM_WRITE_AFTER_END")
    log.debug({ err: error }, "MQTT write after the connection ended, while stopping");
  else log.warn({ err: describeConnectError(error, url) }, "MQTT connection error");
}

const CLOSED_UNANSWERED = "closed the connection before accepting it";

/** The broker refused MQTT 5 (it speaks 3.1.1): CONNACK code 1/132, or it closed the connection unanswered. */
export function refusedVersion(error: unknown): boolean {
  const cause = (error as { cause?: { code?: unknown } }).cause;
  return VERSION_REFUSALS.has(cause?.code as number) || (error as Error).message.includes(CLOSED_UNANSWERED);
}

function readPem(file: string | undefined, flag: string): Buffer | undefined {
  if (file === undefined) return undefined;
  try {
    return readFileSync(file);
  } catch (error) {
    throw new AgentError("IA_ERR_CONFIG", `${flag}: cannot read ${file} (${(error as Error).message})`, { cause: error });
  }
}

/** mqtt.js options for one connection; exported for the unit test of the TLS files. */
export function clientOptions(options: BrokerOptions): IClientOptions {
  const persistent = options.sessionExpirySeconds > 0;
  const result: IClientOptions = {
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
  if (ca) result.ca = ca;
  if (cert) result.cert = cert;
  if (key) result.key = key;
  return result;
}

/**
 * Opens one connection and resolves once the broker accepted it; rejects with
 * IA_ERR_MQTT_AUTH or IA_ERR_MQTT_CONNECT naming the broker. The client does not reconnect
 * by itself: the caller decides (see `MqttTransport`).
 */
export async function connectBroker(options: BrokerOptions): Promise<MqttClient> {
  const mqttOptions = clientOptions(options);
  const timeoutMs = mqttOptions.connectTimeout!;
  const client = connect(options.url, mqttOptions);
  // Answers stream as many small publishes; without TCP_NODELAY a chunk can wait for the
  // broker's delayed ACK (measured: time to first token over MQTT +60 ms). Every
  // (re)connection brings a new socket, so set it on each.
  client.on("connect", () => (client.stream as { setNoDelay?: (noDelay: boolean) => void } | undefined)?.setNoDelay?.(true));
  if (options.onMessage) client.on("message", options.onMessage);
  if (options.beforeAck) holdAcks(client, options.beforeAck);
  const shown = displayUrl(options.url);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => fail(new AgentError("IA_ERR_MQTT_CONNECT", `cannot connect to MQTT broker ${shown}: no answer within ${timeoutMs / 1000} s`)),
      timeoutMs + 500,
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
    const onError = (error: Error) => fail(describeConnectError(error, options.url));
    const onClose = () =>
      fail(
        new AgentError(
          "IA_ERR_MQTT_CONNECT",
          `MQTT broker ${shown} ${CLOSED_UNANSWERED}${options.protocolVersion === 5 ? " (if it speaks only MQTT 3.1.1, set --mqtt-version 3.1.1)" : ""}`,
        ),
      );
    client.on("connect", onConnect);
    client.on("error", onError);
    client.on("close", onClose);
  });
  return client;
}

/**
 * Overrides mqtt.js's `handleMessage`: its publish handler (handlers/publish.ts, the same for
 * MQTT 3.1.1 and 5) emits "message", then calls `handleMessage(packet, callback)` and sends the
 * PUBACK only when the callback is called; it takes the next packet only after that. The
 * "message" event carries the topic with any topic alias resolved, so it is kept for the call.
 */
function holdAcks(client: MqttClient, beforeAck: NonNullable<BrokerOptions["beforeAck"]>): void {
  const topics = new WeakMap<IPublishPacket, string>();
  client.on("message", (topic, _payload, packet) => topics.set(packet, topic));
  client.handleMessage = (packet, callback) => {
    const payload = typeof packet.payload === "string" ? Buffer.from(packet.payload) : packet.payload;
    beforeAck(topics.get(packet) ?? packet.topic, payload, packet).then(
      () => callback(),
      // Not acknowledged: the broker sends it again after the next reconnect.
      (error: unknown) => callback(error as Error),
    );
  };
}

/**
 * The retained message on `topic`, if the broker holds one and sends it within `waitMs`;
 * then closes `client` (cleanly, so no last will goes out).
 */
export async function readRetained(client: MqttClient, topic: string, waitMs: number): Promise<Buffer | undefined> {
  let seen: Buffer | undefined;
  const onMessage = (t: string, payload: Buffer, packet: IPublishPacket) => {
    if (t === topic && packet.retain) seen = payload;
  };
  client.on("message", onMessage);
  try {
    await client.subscribeAsync(topic, { qos: 1 });
    const until = Date.now() + waitMs;
    while (seen === undefined && Date.now() < until) await sleep(50);
    return seen;
  } finally {
    client.off("message", onMessage);
    await within(client.endAsync(), 1000).catch(() => undefined);
    client.end(true);
  }
}

/**
 * Publishes to a private topic and waits for the message to come back: `smoke`'s proof
 * that the broker accepts this agent's login and routes its messages. Resolves with the
 * round-trip time in ms.
 */
export async function brokerRoundTrip(connection: BrokerConnection, clientId: string, topic: string, signal: AbortSignal): Promise<number> {
  let echoed!: () => void;
  const arrived = new Promise<void>((resolve) => (echoed = resolve));
  const client = await connectBroker({ ...connection, clientId, sessionExpirySeconds: 0, onMessage: (t) => t === topic && echoed() });
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
