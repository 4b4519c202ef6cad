import type { AnswerService } from "../../service/answerService.js";
import type { EmbeddedBroker } from "../../transports/mqtt/embeddedBroker.js";
import { AgentError } from "../../../common/errors.js";
import type { Logger } from "../../../common/logger.js";
import type { RuntimeInfo } from "../../engine/modelRuntime.js";
import type { MqttClient, MqttTransport } from "../../transports/mqtt/mqttTransport.js";
import type { Sample } from "./benchStats.js";
import { sampleFrom } from "./benchStats.js";
import { VERSION } from "../../../common/version.js";

/**
 * `bench` through MQTT end to end: the agent's real transport on a broker (in-process aedes
 * or `--mqtt <url>`) and a requesting client in the same process that times what it sees:
 * publish, first streamed chunk, final reply.
 */

export interface BenchMqttOptions {
  /** `embedded` or a broker URL. */
  mqtt: string;
  prefix: string;
  protocolVersion: 4 | 5;
  username?: string | undefined;
  password?: string | undefined;
  service: AnswerService;
  info: RuntimeInfo;
  logger: Logger;
}

export interface BenchAsk {
  prompt: string;
  system: string;
  maxTokens: number;
}

interface Pending {
  startedAt: number;
  firstAt: number | undefined;
  resolve: (sample: Sample) => void;
  reject: (error: unknown) => void;
}

export class BenchMqtt {
  readonly url: string;
  readonly #client: MqttClient;
  readonly #transport: MqttTransport;
  readonly #broker: EmbeddedBroker | undefined;
  readonly #askTopic: string;
  readonly #replyBase: string;
  readonly #pending = new Map<string, Pending>();
  #next = 0;

  private constructor(
    url: string,
    client: MqttClient,
    transport: MqttTransport,
    broker: EmbeddedBroker | undefined,
    askTopic: string,
    replyBase: string,
  ) {
    this.url = url;
    this.#client = client;
    this.#transport = transport;
    this.#broker = broker;
    this.#askTopic = askTopic;
    this.#replyBase = replyBase;
  }

  static async start(options: BenchMqttOptions): Promise<BenchMqtt> {
    const [{ MqttTransport, connectBroker }, { startEmbeddedBroker }] = await Promise.all([
      import("../../transports/mqtt/mqttTransport.js"),
      import("../../transports/mqtt/embeddedBroker.js"),
    ]);
    const embedded = options.mqtt === "embedded";
    const broker = embedded ? await startEmbeddedBroker({ host: "127.0.0.1", port: 0, logger: options.logger }) : undefined;
    const url = broker ? broker.url : options.mqtt;
    const protocolVersion = embedded ? 4 : options.protocolVersion;
    const agentId = `bench-${process.pid}`;
    const transport = new MqttTransport({
      url,
      agentId,
      prefix: options.prefix,
      protocolVersion,
      username: options.username,
      password: options.password,
      payloadLimit: 65_536,
      rateLimitPerMinute: 0,
      healthIntervalMs: 3_600_000,
      service: options.service,
      info: options.info,
      version: VERSION,
      logger: options.logger,
      sessionExpirySeconds: 0,
    });
    await transport.start();
    const replyBase = `${options.prefix}/${agentId}/bench-replies`;
    let bench: BenchMqtt | undefined;
    const client = await connectBroker({
      url,
      clientId: `${agentId}-requester`,
      protocolVersion,
      username: options.username,
      password: options.password,
      sessionExpirySeconds: 0,
      onMessage: (topic, payload) => {
        if (bench) bench.#onMessage(topic, payload);
      },
    });
    await client.subscribeAsync(`${replyBase}/+`, { qos: 1 });
    bench = new BenchMqtt(url, client, transport, broker, `${transport.baseTopic}/ask`, replyBase);
    return bench;
  }

  /** Publishes one streamed question and resolves with the figures the requester saw. */
  ask(request: BenchAsk): Promise<Sample> {
    const id = `b${process.pid}-${this.#next++}`;
    const payload = JSON.stringify({
      id,
      prompt: request.prompt,
      system: request.system,
      stream: true,
      replyTo: `${this.#replyBase}/${id}`,
      params: { temperature: 0, maxTokens: request.maxTokens },
    });
    return new Promise<Sample>((resolve, reject) => {
      const pending: Pending = { startedAt: performance.now(), firstAt: undefined, resolve, reject };
      this.#pending.set(id, pending);
      this.#client.publish(this.#askTopic, payload, { qos: 1 }, (error) => {
        if (error) {
          this.#pending.delete(id);
          reject(
            new AgentError("IA_ERR_MQTT_CONNECT", `bench: publishing to ${this.#askTopic} failed: ${error.message}`, { cause: error }),
          );
        }
      });
    });
  }

  #onMessage(topic: string, payload: Buffer): void {
    const at = performance.now();
    const id = topic.slice(this.#replyBase.length + 1);
    const pending = this.#pending.get(id);
    if (!pending) return;
    let body: {
      delta?: string;
      done?: boolean;
      usage?: { promptTokens: number; completionTokens: number };
      timings?: { ttftMs?: number };
      error?: { code: string; message: string };
    };
    try {
      body = JSON.parse(payload.toString("utf8")) as typeof body;
    } catch {
      return;
    }
    if (body.delta !== undefined) {
      pending.firstAt ??= at;
      return;
    }
    if (!body.done) return;
    this.#pending.delete(id);
    if (body.error || !body.usage) {
      pending.reject(
        new AgentError(
          "IA_ERR_INTERNAL",
          `bench: the agent answered over MQTT with ${body.error ? `${body.error.code}: ${body.error.message}` : "no usage"}`,
        ),
      );
      return;
    }
    // The final reply carries the engine's TTFT in whole ms (DESIGN.md): ±0.5 ms on the path time.
    pending.resolve(
      sampleFrom({
        startedAt: pending.startedAt,
        firstAt: pending.firstAt,
        finishedAt: at,
        engineTtftMs: body.timings?.ttftMs,
        ...body.usage,
      }),
    );
  }

  async close(): Promise<void> {
    await this.#client.endAsync().catch(() => undefined);
    await this.#transport.stop({ ms: 5000 });
    await this.#broker?.close();
  }
}
