import type { IPublishPacket } from "mqtt";
import { AgentError, toAgentError } from "../../../common/errors.js";
import type { Logger } from "../../../common/logger.js";
import { LruMap } from "../../../common/lruMap.js";
import type { GenerateResult } from "../../engine/modelRuntime.js";
import type { AnswerService } from "../../service/answerService.js";
import { Conversation } from "../../service/conversation.js";
import { parseAsk, parseCancel, parseScpi, requestKey } from "./mqttRequest.js";
import type { AskRequest, Envelope, ParseLimits, ReplyRoute } from "./mqttRequest.js";
import type { OutboxEntry } from "./outbox.js";
import type { AgentTopics } from "./topics.js";
import { answerFinal, cancelledFinal, errorFinal } from "./wire.js";
import type { ChunkReply, FinalReply } from "./wire.js";

/**
 * The questions, cancels and SCPI queries that reach the agent over MQTT, once the
 * transport has taken them off the broker: parse, refuse (shutting down, rate limit), answer
 * in the request's session, remember finals so a redelivery is not generated twice.
 */

export interface RequestHandlerOptions {
  agentId: string;
  topics: AgentTopics;
  /** First topic level; reply topics that are any agent's own topics are refused. */
  prefix: string;
  /** Largest request payload read, bytes. */
  payloadLimit: number;
  /** Questions a minute per requester; 0 is no limit. */
  rateLimitPerMinute: number;
  service: AnswerService;
  /** Read-only SCPI through the firmware bridge. Defaults to none (replies IA_ERR_NO_INSTRUMENT). */
  scpi?: ((query: string) => Promise<string>) | undefined;
  logger: Logger;
  /** Most `session` histories kept; the least recently used goes first. Defaults to 64. */
  maxSessions?: number | undefined;
  /** Most request ids remembered (with their final replies) to answer redeliveries. Defaults to 1000. */
  rememberedRequests?: number | undefined;
  /** Sends a reply now, or holds it in the outbox while the broker is out of reach. */
  publish: (entry: OutboxEntry) => void;
  /** Whether the agent is shutting down (new requests are refused). */
  stopping: () => boolean;
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

export class RequestHandler {
  readonly #options: RequestHandlerOptions;
  readonly #log: Logger;
  readonly #jobs = new Set<Job>();
  readonly #recent: LruMap<string, Remembered>;
  readonly #sessions: LruMap<string, Session>;
  readonly #rate: RateLimiter;
  readonly #limits: ParseLimits;

  constructor(options: RequestHandlerOptions) {
    this.#options = options;
    this.#log = options.logger;
    this.#recent = new LruMap(options.rememberedRequests ?? 1000);
    this.#sessions = new LruMap(options.maxSessions ?? 64);
    this.#rate = new RateLimiter({ perMinute: options.rateLimitPerMinute });
    this.#limits = { payloadLimit: options.payloadLimit, answerTopic: options.topics.answer, prefix: options.prefix };
  }

  /** Cancels every answer in flight; each still sends its final. */
  abortAll(): void {
    for (const job of this.#jobs) job.controller.abort();
  }

  /** Resolves once every answer in flight has sent its final. */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.#jobs].map((job) => job.done));
  }

  /** One request from the broker. Never throws: bad input must not take the agent down. */
  handle(topic: string, payload: Buffer, packet: IPublishPacket): void {
    try {
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
      this.#log.error({ err: toAgentError(error), topic }, "MQTT message could not be handled");
    }
  }

  #reply(route: ReplyRoute, body: ChunkReply | FinalReply, kind: OutboxEntry["kind"]): Buffer {
    const payload = Buffer.from(JSON.stringify(body));
    this.#options.publish({ topic: route.topic, payload, qos: 1, retain: false, correlationData: route.correlationData, kind });
    return payload;
  }

  #replyError(route: ReplyRoute, id: string, error: AgentError): Buffer {
    this.#log.info({ id, code: error.code, reason: error.message }, "request answered with an error");
    return this.#reply(route, errorFinal(id, this.#options.agentId, error), "final");
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
    if (seen.final) {
      const { topic, correlationData } = seen.route;
      this.#options.publish({ topic, payload: seen.final, qos: 1, retain: false, correlationData, kind: "final" });
    }
    this.#log.info({ key: key.slice(-40), answered: Boolean(seen.final) }, "request seen before: not generated again");
    return true;
  }

  /** Refusals common to every request; returns the error to reply with, if any. */
  #refusal(route: ReplyRoute): AgentError | undefined {
    if (this.#options.stopping())
      return new AgentError("IA_ERR_DISPOSED", "the agent is shutting down; ask again when its status is online");
    if (!this.#rate.take(route.topic)) {
      return new AgentError(
        "IA_ERR_RATE_LIMITED",
        `more than ${this.#options.rateLimitPerMinute} questions a minute from ${route.topic} (--mqtt-rate-limit); try again later`,
      );
    }
    return undefined;
  }

  async #ask(envelope: Envelope, dup: boolean | undefined): Promise<void> {
    const parsed = parseAsk(envelope, this.#limits);
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
      return this.#reply(route, answerFinal(request.id, agentId, result, request.session), "final");
    } catch (error) {
      const agentError = toAgentError(error);
      if (agentError.code === "IA_ERR_CANCELLED") return this.#reply(route, cancelledFinal(request.id, agentId, request.session), "final");
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
    const parsed = parseScpi(envelope, this.#limits);
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
    const { scpi, agentId } = this.#options;
    if (!scpi) {
      this.#replyError(
        route,
        request.id,
        new AgentError(
          "IA_ERR_NO_INSTRUMENT",
          `no instrument is configured on agent ${agentId} (start it with --instrument tcp://host:5025, serial://..., prologix://... or sim)`,
        ),
      );
      return;
    }
    try {
      const reply = await scpi(request.query);
      this.#reply(route, { id: request.id, done: true, agent: agentId, query: request.query, reply }, "final");
    } catch (error) {
      this.#replyError(route, request.id, toAgentError(error));
    }
  }
}

export interface RateLimiterOptions {
  /** Requests a minute each key may make, with bursts up to the same number; 0 is no limit. */
  perMinute: number;
  /** Most keys remembered. Defaults to 1000. */
  maxKeys?: number;
  /** Clock in ms (tests hand in their own). Defaults to `performance.now`. */
  now?: () => number;
}

/**
 * A token bucket per requester. MQTT does not tell a subscriber who published, so the key
 * is what identifies a requester in practice: its reply topic.
 */
export class RateLimiter {
  readonly #perMinute: number;
  readonly #now: () => number;
  readonly #buckets: LruMap<string, { tokens: number; at: number }>;

  constructor(options: RateLimiterOptions) {
    this.#perMinute = options.perMinute;
    this.#now = options.now ?? (() => performance.now());
    this.#buckets = new LruMap(options.maxKeys ?? 1000);
  }

  /** Takes one request for `key`; false when its bucket is empty. */
  take(key: string): boolean {
    if (this.#perMinute <= 0) return true;
    const now = this.#now();
    const bucket = this.#buckets.get(key) ?? { tokens: this.#perMinute, at: now };
    bucket.tokens = Math.min(this.#perMinute, bucket.tokens + ((now - bucket.at) * this.#perMinute) / 60_000);
    bucket.at = now;
    const allowed = bucket.tokens >= 1;
    if (allowed) bucket.tokens -= 1;
    this.#buckets.set(key, bucket);
    return allowed;
  }
}
