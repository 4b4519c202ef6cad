import { randomUUID } from "node:crypto";
import type { IPublishPacket } from "mqtt";
import { AgentError, toAgentError } from "../../../common/errors.js";
import type { Logger } from "../../../common/logger.js";
import { LruMap } from "../../../common/lruMap.js";
import { RateLimiter } from "../../../common/rateLimiter.js";
import type { ScpiOrigin } from "../../../firmware-bridge/scpiAudit.js";
import type { GenerateResult } from "../../engine/modelRuntime.js";
import type { AnswerOptions, AnswerService } from "../../service/answerService.js";
import { Conversation } from "../../service/conversation.js";
import type { RequestJournal } from "../../service/journal/requestJournal.js";
import {
  chatMessages,
  describeAge,
  parseAsk,
  parseCancel,
  parseScpi,
  requestKey,
  routeForJournal,
  routeFromJournal,
} from "./mqttRequest.js";
import type { AskRequest, Envelope, ParseLimits, ReplyRoute } from "./mqttRequest.js";
import type { OutboxEntry } from "./outbox.js";
import type { AgentTopics } from "./topics.js";
import { answerFinal, cancelledFinal, errorFinal } from "./wire.js";
import type { ChunkReply, FinalReply } from "./wire.js";

/**
 * The questions, cancels and SCPI queries that reach the agent over MQTT, once the
 * transport has taken them off the broker: parse, refuse (shutting down, rate limit), answer
 * in the request's session, and answer each question once (README, "MQTT API", "Nothing
 * lost, nothing answered twice"): with a journal, a question is written down before the
 * broker gets its acknowledgement, its final before it is published, and a session's
 * history after each turn, so that after a crash the unfinished questions are answered
 * again (from seq 0, `restarted: true`) and a retry gets the journaled final.
 */

/** What the handler uses of the request journal (agent/service/journal). */
type Used = "accept" | "markAnswering" | "finish" | "lookup" | "unfinished" | "saveSession" | "session";
export type AnswerJournal = Pick<RequestJournal, Used>;

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
  /** Read-only SCPI through the firmware bridge, audited as origin `mqtt:<reply topic>`. Defaults to none (replies IA_ERR_NO_INSTRUMENT). */
  scpi?: ((query: string, origin: ScpiOrigin) => Promise<string>) | undefined;
  logger: Logger;
  /** Most `session` histories kept; the least recently used goes first. Defaults to 64. */
  maxSessions?: number | undefined;
  /** Most request ids remembered in memory (with their final replies) to answer redeliveries. Defaults to 1000. */
  rememberedRequests?: number | undefined;
  /** Sends a reply now, or holds it in the outbox while the broker is out of reach. */
  publish: (entry: OutboxEntry) => void;
  /** Whether the agent is shutting down (new requests are refused). */
  stopping: () => boolean;
  /** A question left unfinished by a crash is answered after the restart only if it arrived this recently, ms. Defaults to one hour. */
  maxAgeMs?: number | undefined;
  /** The MQTT version the agent speaks now, recorded with each journaled route. Defaults to 5. */
  protocolVersion?: (() => 4 | 5) | undefined;
  /** Wall clock, epoch ms (tests hand in their own). Defaults to `Date.now`. */
  now?: (() => number) | undefined;
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
  /** Journal writes of finals not answered by a generation (expired), for `settled`. */
  readonly #writes = new Set<Promise<void>>();
  readonly #recent: LruMap<string, Remembered>;
  readonly #sessions: LruMap<string, Session>;
  readonly #rate: RateLimiter;
  readonly #limits: ParseLimits;
  readonly #now: () => number;
  /** The crash-safe journal of questions, finals and sessions, once `useJournal` hands it in; else memory only (`bench`). */
  #journal: AnswerJournal | undefined;

  constructor(options: RequestHandlerOptions) {
    this.#options = options;
    this.#log = options.logger;
    this.#recent = new LruMap(options.rememberedRequests ?? 1000);
    this.#sessions = new LruMap(options.maxSessions ?? 64);
    this.#rate = new RateLimiter({ perMinute: options.rateLimitPerMinute });
    this.#limits = { payloadLimit: options.payloadLimit, answerTopic: options.topics.answer, prefix: options.prefix };
    this.#now = options.now ?? Date.now;
  }

  /** Cancels every answer in flight; each still sends its final. */
  abortAll(): void {
    for (const job of this.#jobs) job.controller.abort();
  }

  /** Resolves once every answer in flight has sent its final (and journaled it). */
  async settled(): Promise<void> {
    await Promise.allSettled([...[...this.#jobs].map((job) => job.done), ...this.#writes]);
  }

  /**
   * From now on questions are journaled. First answers the questions the journal holds unfinished (the last run died before their
   * finals), oldest first, before anything new arrives: each from the start, its chunks
   * from seq 0 with `restarted: true`. One older than `maxAgeMs` gets IA_ERR_EXPIRED.
   */
  useJournal(journal: AnswerJournal): void {
    this.#journal = journal;
    const { agentId } = this.#options;
    const now = this.#now();
    const maxAgeMs = this.#options.maxAgeMs ?? 3_600_000;
    for (const { question } of journal.unfinished()) {
      const route = routeFromJournal(question.route);
      this.#recent.set(question.key, { route });
      const age = Math.max(0, now - question.arrivedAt);
      if (age > maxAgeMs) {
        const error = new AgentError(
          "IA_ERR_EXPIRED",
          `question ${question.id} arrived ${describeAge(age)} ago and the agent stopped before answering it; that is older than the limit of ${describeAge(maxAgeMs)} (--mqtt-max-age), so it was not answered: ask again with a new id`,
        );
        this.#log.warn({ id: question.id, ageMs: age, maxAgeMs }, "a question left unfinished by the last run is too old to answer");
        this.#options.service.metrics?.countError(error.code, "mqtt");
        const write = this.#finish(question.key, route, errorFinal(question.id, agentId, error)).finally(() => this.#writes.delete(write));
        this.#writes.add(write);
        continue;
      }
      this.#log.info({ id: question.id, ageMs: age }, "answering a question left unfinished by the last run, from the start");
      this.#start(question.key, question.request as AskRequest, route, true);
    }
  }

  /**
   * One request from the broker; resolves once it may be acknowledged (a question: once it is
   * in the journal and its answer has started). Never rejects: bad input must not take the agent down.
   */
  async handle(topic: string, payload: Buffer, packet: IPublishPacket): Promise<void> {
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
      if (topic.endsWith("/scpi")) {
        this.#scpi(envelope).catch((error: unknown) => this.#log.error({ err: toAgentError(error), topic }, "MQTT request failed"));
        return;
      }
      await this.#ask(envelope, packet.dup);
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

  /** Whether this request was seen before (in this run or, journaled, in an earlier one): a finished one gets its final again, a running one nothing. */
  #seenBefore(key: string, dup: boolean | undefined, idGiven: boolean): boolean {
    if (!idGiven && !dup) return false;
    const here = this.#recent.get(key);
    const journaled = here ? undefined : this.#journal?.lookup(key);
    if (!here && !journaled) return false;
    const final = here ? here.final : journaled?.final ? Buffer.from(JSON.stringify(journaled.final)) : undefined;
    if (final) {
      const { topic, correlationData } = here?.route ?? routeFromJournal(journaled!.question.route);
      this.#options.publish({ topic, payload: final, qos: 1, retain: false, correlationData, kind: "final" });
    }
    this.#log.info(
      { key: key.slice(-40), answered: Boolean(final), journaled: Boolean(journaled) },
      "request seen before: not generated again",
    );
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
      this.#options.service.metrics?.countError(parsed.error.code, "mqtt");
      this.#replyError(parsed.route, parsed.id, parsed.error);
      return;
    }
    const { request, route } = parsed;
    const journal = this.#journal;
    let key = requestKey(route, request.id, request.idGiven, envelope);
    if (this.#seenBefore(key, dup, request.idGiven)) return;
    const refused = this.#refusal(route);
    if (refused) {
      this.#options.service.metrics?.countError(refused.code, "mqtt");
      this.#replyError(route, request.id, refused);
      return;
    }
    // The same id-less payload again, not as a redelivery, is a new question: it gets a key of its own.
    if (!request.idGiven && (this.#recent.get(key) ?? journal?.lookup(key))) key = `${key}:${randomUUID()}`;
    this.#recent.set(key, { route });
    if (journal) {
      try {
        await journal.accept({
          key,
          id: request.id,
          route: routeForJournal(route, envelope, this.#options.protocolVersion?.() ?? 5),
          request,
          arrivedAt: this.#now(),
        });
      } catch (error) {
        this.#log.error(
          { err: toAgentError(error), id: request.id },
          "the request journal could not record this question: it is answered, but would be lost in a crash",
        );
      }
    }
    this.#start(key, request, route, false);
  }

  /** Starts the answer (it runs on after this returns) and tracks it until its final is out. */
  #start(key: string, request: AskRequest, route: ReplyRoute, restarted: boolean): void {
    const controller = new AbortController();
    let finish!: () => void;
    const job: Job = { id: request.id, controller, done: new Promise<void>((resolve) => (finish = resolve)) };
    this.#jobs.add(job);
    void this.#answer(key, request, route, controller.signal, restarted)
      .catch((error: unknown) => this.#log.error({ err: toAgentError(error), id: request.id }, "answer failed"))
      .finally(() => {
        this.#jobs.delete(job);
        finish();
      });
  }

  /** Generates (in the request's session, if any), publishes the chunks, then journals and publishes the final. */
  async #answer(key: string, request: AskRequest, route: ReplyRoute, signal: AbortSignal, restarted: boolean): Promise<void> {
    const { agentId } = this.#options;
    let seq = 0;
    const onDelta = request.stream
      ? (delta: string) => void this.#reply(route, { id: request.id, seq: seq++, delta, ...(restarted ? { restarted } : {}) }, "chunk")
      : undefined;
    const prompt = (request.prompt ?? request.messages?.at(-1)?.content ?? "").slice(0, 80);
    this.#log.debug({ id: request.id, session: request.session, restarted, prompt }, "question");
    // One line per generation, as it gets its sequence: tests count them to prove nothing is generated twice.
    const onStart = () => this.#log.debug({ id: request.id, restarted }, "generation started");
    try {
      this.#journal?.markAnswering(key);
    } catch (error) {
      this.#log.warn({ err: toAgentError(error), id: request.id }, "the request journal could not mark this question as answering");
    }
    let final: FinalReply;
    try {
      const result = await this.#generate(request, { signal, onDelta, onStart, transport: "mqtt" });
      final = answerFinal(request.id, agentId, result, request.session);
    } catch (error) {
      const agentError = toAgentError(error);
      if (agentError.code === "IA_ERR_CANCELLED") final = cancelledFinal(request.id, agentId, request.session);
      else {
        if (agentError.code === "IA_ERR_INTERNAL") this.#log.error({ err: error, id: request.id }, "answer failed");
        this.#log.info({ id: request.id, code: agentError.code, reason: agentError.message }, "request answered with an error");
        final = errorFinal(request.id, agentId, agentError);
      }
    }
    await this.#finish(key, route, final);
  }

  /**
   * Journals the final, then publishes it. In that order a crash between the two loses the
   * publish, not the answer (a retry with the same id gets it); the other order would answer twice.
   */
  async #finish(key: string, route: ReplyRoute, final: FinalReply): Promise<void> {
    try {
      await this.#journal?.finish(key, final);
    } catch (error) {
      this.#log.error(
        { err: toAgentError(error), id: final.id },
        "the request journal could not record this final: it is sent, but a retry after a crash would be answered again",
      );
    }
    this.#recent.set(key, { route, final: this.#reply(route, final, "final") });
  }

  #generate(request: AskRequest, options: AnswerOptions): Promise<GenerateResult> {
    const { service } = this.#options;
    const journal = this.#journal;
    const overrides = { system: request.system, params: request.params };
    const key = request.session;
    if (key === undefined) {
      const messages = request.messages ?? [{ role: "user" as const, content: request.prompt ?? "" }];
      return service.answer({ mode: "chat", messages, ...overrides }, options);
    }
    let session = this.#sessions.get(key);
    if (!session) {
      session = { conversation: new Conversation({ messages: chatMessages(journal?.session(key)) }), tail: Promise.resolve() };
      this.#sessions.set(key, session);
    }
    const { conversation } = session;
    const turn = session.tail.then(async () => {
      const result = await conversation.ask(service, request.prompt ?? "", options, overrides);
      if (journal && result.finishReason !== "cancelled") {
        await journal
          .saveSession(key, [...conversation.messages])
          .catch((error: unknown) =>
            this.#log.error({ err: toAgentError(error), session: key }, "the request journal could not keep this session's history"),
          );
      }
      return result;
    });
    session.tail = turn.catch(() => undefined).then(() => undefined);
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
      const reply = await scpi(request.query, `mqtt:${route.topic}`);
      this.#reply(route, { id: request.id, done: true, agent: agentId, query: request.query, reply }, "final");
    } catch (error) {
      this.#replyError(route, request.id, toAgentError(error));
    }
  }
}
