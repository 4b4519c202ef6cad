import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { AgentError } from "../../../common/errors.js";
import type { Logger } from "../../../common/logger.js";
import { VERSION } from "../../../common/version.js";
import type { AgentConfig } from "../../config/config.js";
import type { RuntimeInfo } from "../../engine/modelRuntime.js";
import type { AnswerService } from "../../service/answerService.js";
import type { JournalStats, RequestJournal } from "../../service/journal/requestJournal.js";
import type { MqttClient } from "../../transports/mqtt/brokerClient.js";
import type { EmbeddedBroker } from "../../transports/mqtt/embeddedBroker.js";
import type { MqttTransport } from "../../transports/mqtt/mqttTransport.js";
import { isFinal, readReply } from "../../transports/mqtt/wire.js";
import type { Sample } from "./benchStats.js";
import { sampleFrom } from "./benchStats.js";

/**
 * `bench` through MQTT end to end: the agent's real transport on a broker (in-process aedes
 * or `--mqtt <url>`) and a requesting client in the same process that times what it sees:
 * publish, first streamed chunk, final reply. With `journal`, the transport journals every
 * question and final (the crash-safe request journal of `run`) in a temp folder removed on close.
 */

export interface BenchMqttOptions {
  /** The broker (`--mqtt`: `embedded` is an in-process aedes), its login and TLS files, and the topic prefix. */
  config: AgentConfig;
  service: AnswerService;
  info: RuntimeInfo;
  logger: Logger;
  /** Journal questions and finals as `run` does, in a temp folder of its own (removed on close). Defaults to false. */
  journal?: boolean | undefined;
}

export interface BenchAsk {
  prompt: string;
  system: string;
  maxTokens: number;
  /** Sampling settings beside maxTokens; defaults to greedy (temperature 0). */
  params?: Record<string, number> | undefined;
}

/** The journal's temp folder, and the journal once the transport has opened it. */
interface JournalHolder {
  dir: string;
  opened?: RequestJournal;
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
  readonly #journal: JournalHolder | undefined;
  #next = 0;

  private constructor(
    url: string,
    client: MqttClient,
    transport: MqttTransport,
    broker: EmbeddedBroker | undefined,
    askTopic: string,
    replyBase: string,
    journal: JournalHolder | undefined,
  ) {
    this.url = url;
    this.#journal = journal;
    this.#client = client;
    this.#transport = transport;
    this.#broker = broker;
    this.#askTopic = askTopic;
    this.#replyBase = replyBase;
  }

  static async start(options: BenchMqttOptions): Promise<BenchMqtt> {
    const [{ MqttTransport }, { connectBroker }, { brokerOptionsFrom, openJournal }, { agentTopics }, { startEmbeddedBroker }] =
      await Promise.all([
        import("../../transports/mqtt/mqttTransport.js"),
        import("../../transports/mqtt/brokerClient.js"),
        import("../../transports/mqtt/mqttSettings.js"),
        import("../../transports/mqtt/topics.js"),
        import("../../transports/mqtt/embeddedBroker.js"),
      ]);
    const { config } = options;
    const configured = brokerOptionsFrom(config);
    const journal: JournalHolder | undefined = options.journal
      ? { dir: await mkdtemp(path.join(tmpdir(), "iagent-bench-journal-")) }
      : undefined;
    let broker: EmbeddedBroker | undefined;
    try {
      broker =
        configured.url === "embedded" ? await startEmbeddedBroker({ host: "127.0.0.1", port: 0, logger: options.logger }) : undefined;
      // aedes speaks MQTT 3.1.1 only.
      const connection = broker ? { ...configured, url: broker.url, protocolVersion: 4 as const } : configured;
      const agentId = `bench-${process.pid}${journal ? "-journal" : ""}`;
      const topics = agentTopics(config.mqttPrefix, agentId);
      const transport = new MqttTransport({
        broker: connection,
        agentId,
        prefix: config.mqttPrefix,
        payloadLimit: 65_536,
        rateLimitPerMinute: 0,
        healthIntervalMs: 3_600_000,
        service: options.service,
        info: options.info,
        version: VERSION,
        logger: options.logger,
        sessionExpirySeconds: 0,
        // The journal `run` opens (mqttSettings.ts), in the temp folder.
        openJournal: journal ? async () => (journal.opened = await openJournal(journal.dir, options.logger)) : undefined,
      });
      await transport.start();
      let bench: BenchMqtt | undefined;
      const client = await connectBroker({
        ...connection,
        clientId: `${agentId}-requester`,
        sessionExpirySeconds: 0,
        onMessage: (topic, payload) => {
          if (bench) bench.#onMessage(topic, payload);
        },
      });
      await client.subscribeAsync(`${topics.benchReplies}/+`, { qos: 1 });
      bench = new BenchMqtt(connection.url, client, transport, broker, topics.ask, topics.benchReplies, journal);
      return bench;
    } catch (error) {
      await broker?.close();
      if (journal) await rm(journal.dir, { recursive: true, force: true });
      throw error;
    }
  }

  /** The journal's counters (records written, fdatasyncs, compactions, bytes), when this path journals. */
  get journalStats(): JournalStats | null {
    return this.#journal?.opened ? this.#journal.opened.stats : null;
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
      params: { temperature: 0, ...request.params, maxTokens: request.maxTokens },
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
    const body = readReply(payload);
    if (!body) return;
    if (!isFinal(body)) {
      pending.firstAt ??= at;
      return;
    }
    this.#pending.delete(id);
    if (!("usage" in body)) {
      pending.reject(
        new AgentError(
          "IA_ERR_INTERNAL",
          `bench: the agent answered over MQTT with ${"error" in body ? `${body.error.code}: ${body.error.message}` : "no usage"}`,
        ),
      );
      return;
    }
    // The final reply carries the engine's TTFT in whole ms (README, "MQTT API"): ±0.5 ms on the path time.
    pending.resolve(
      sampleFrom({
        startedAt: pending.startedAt,
        firstAt: pending.firstAt,
        finishedAt: at,
        engineTtftMs: body.timings.ttftMs,
        ...body.usage,
      }),
    );
  }

  async close(): Promise<void> {
    await this.#client.endAsync().catch(() => undefined);
    await this.#transport.stop({ ms: 5000 });
    await this.#broker?.close();
    if (this.#journal) await rm(this.#journal.dir, { recursive: true, force: true });
  }
}
