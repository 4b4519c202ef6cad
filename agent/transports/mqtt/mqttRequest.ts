import { createHash, randomUUID } from "node:crypto";
import type { z } from "zod";
import { AgentError } from "../../../common/errors.js";
import type { ChatMessage, GenerationParams } from "../../engine/modelRuntime.js";
import type { JournalMessage, JournalRoute } from "../../service/journal/requestJournal.js";
import { AGENT_TOPIC_SUFFIXES, isAgentOwnTopic } from "./topics.js";
import { ID_PATTERN, askFieldsSchema, checkFields, describeValue, idSchema, scpiFieldsSchema } from "./wire.js";

/**
 * Pure parsing of what lab tools publish on `<base>/ask`, `<base>/cancel` and `<base>/scpi`
 * (README, "MQTT API"): size cap, UTF-8, JSON or plain text, the route and the id; the
 * fields themselves are checked against the schemas of wire.ts. Every failure is a coded
 * error together with where its reply goes, so the transport can always answer.
 */

/** Where a reply goes: the MQTT 5 response topic with its correlation data, `replyTo`, or `<base>/answer/<id>`. */
export interface ReplyRoute {
  topic: string;
  correlationData?: Buffer | undefined;
}

export interface AskRequest {
  id: string;
  /** Whether the requester named the id (payload `id` or correlation data), so a redelivery can be told apart. */
  idGiven: boolean;
  prompt?: string | undefined;
  messages?: ChatMessage[] | undefined;
  system?: string | undefined;
  session?: string | undefined;
  params?: GenerationParams | undefined;
  stream: boolean;
}

export interface ScpiRequest {
  id: string;
  idGiven: boolean;
  query: string;
}

export type Parsed<T> = { ok: true; request: T; route: ReplyRoute } | { ok: false; id: string; route: ReplyRoute; error: AgentError };

/** One received MQTT message, as far as parsing needs it. */
export interface Envelope {
  payload: Buffer;
  /** MQTT 5 response topic. */
  responseTopic?: string | undefined;
  /** MQTT 5 correlation data. */
  correlationData?: Buffer | undefined;
}

export interface ParseLimits {
  /** Largest payload read, bytes. */
  payloadLimit: number;
  /** `<base>/answer`: replies with no other route go to `<base>/answer/<id>`. */
  answerTopic: string;
  /** `<prefix>`: reply topics that are some agent's request or status topics are refused. */
  prefix: string;
  /** Makes ids for requests that carry none. Defaults to `randomUUID`. */
  newId?: () => string;
}

class BadRequest extends Error {}

/** The offset of the first byte that breaks UTF-8, or -1 when the whole buffer is valid. */
export function invalidUtf8Offset(bytes: Uint8Array): number {
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i]!;
    let extra: number;
    let min: number;
    if (b < 0x80) {
      i += 1;
      continue;
    } else if (b >= 0xc2 && b <= 0xdf) [extra, min] = [1, 0x80];
    else if (b >= 0xe0 && b <= 0xef) [extra, min] = [2, 0x800];
    else if (b >= 0xf0 && b <= 0xf4) [extra, min] = [3, 0x10000];
    else return i;
    if (i + extra >= bytes.length) return i;
    let code = b & (0x3f >> extra);
    for (let k = 1; k <= extra; k++) {
      const c = bytes[i + k]!;
      if ((c & 0xc0) !== 0x80) return i;
      code = (code << 6) | (c & 0x3f);
    }
    if (code < min || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) return i;
    i += extra + 1;
  }
  return -1;
}

/** Correlation data as an id: its text when it is printable UTF-8, else hex. */
export function idFromCorrelation(data: Buffer): string {
  if (invalidUtf8Offset(data) === -1) {
    const text = data.toString("utf8");
    if (ID_PATTERN.test(text)) return text;
  }
  return data.toString("hex").slice(0, 128);
}

/** A topic a reply may be published to: no wildcards, not `$SYS`, not any agent's own request or status topic. */
export function checkReplyTopic(topic: string, prefix: string): string | undefined {
  if (topic.length === 0 || topic.length > 1024) return "a topic of 1 to 1024 characters";
  if (/[#+\u0000]/.test(topic)) return "a topic without the wildcards '#' and '+'";
  if (topic.startsWith("$")) return "a topic that does not start with '$'";
  if (isAgentOwnTopic(topic, prefix))
    return `a topic that is not an agent's ${AGENT_TOPIC_SUFFIXES.join(", ").replace(/, (\w+)$/, " or $1")} topic`;
  return undefined;
}

/** The payload as fields: JSON when it starts with '{', else plain text as the one field `plainKey`. */
function decode(envelope: Envelope, limits: ParseLimits, plainKey: string): Record<string, unknown> {
  const { payload } = envelope;
  if (payload.length > limits.payloadLimit) {
    throw new AgentError(
      "IA_ERR_PAYLOAD_TOO_LARGE",
      `the payload is ${payload.length} bytes, over the limit of ${limits.payloadLimit} bytes (--mqtt-payload-limit); it was not read`,
    );
  }
  const offset = invalidUtf8Offset(payload);
  if (offset >= 0) {
    throw new BadRequest(`the payload is not valid UTF-8: byte 0x${payload[offset]!.toString(16).padStart(2, "0")} at offset ${offset}`);
  }
  const text = payload.toString("utf8");
  const trimmed = text.trim();
  if (trimmed === "") throw new BadRequest(`the payload is empty: expected plain text or a JSON object such as {"${plainKey}":"..."}`);
  if (!trimmed.startsWith("{")) return { [plainKey]: trimmed };
  let parsed: unknown;
  try {
    parsed = JSON.parse(trimmed);
  } catch (error) {
    throw new BadRequest(`the payload starts with '{' but is not valid JSON (${(error as Error).message})`);
  }
  // JSON text that starts with '{' can only be an object.
  return parsed as Record<string, unknown>;
}

/**
 * Shared frame of every request: decode, find the id and the route (even for a bad
 * payload, as far as they can be read), then check the fields against `schema`.
 */
function parseWith<F, T>(
  envelope: Envelope,
  limits: ParseLimits,
  plainKey: string,
  schema: z.ZodType<F>,
  build: (fields: F, id: string, idGiven: boolean) => T,
): Parsed<T> {
  const correlationId =
    envelope.correlationData && envelope.correlationData.length > 0 ? idFromCorrelation(envelope.correlationData) : undefined;
  let id: string | undefined;
  let replyTo: string | undefined;
  const routeFor = (finalId: string): ReplyRoute => {
    const responseTopic =
      envelope.responseTopic !== undefined && checkReplyTopic(envelope.responseTopic, limits.prefix) === undefined
        ? envelope.responseTopic
        : undefined;
    return { topic: responseTopic ?? replyTo ?? `${limits.answerTopic}/${finalId}`, correlationData: envelope.correlationData };
  };
  try {
    const fields = decode(envelope, limits, plainKey);
    // Route and id first, so that errors in other keys still reach the requester under its id.
    const problems: string[] = [];
    if (typeof fields.replyTo === "string") {
      const problem = checkReplyTopic(fields.replyTo, limits.prefix);
      if (problem) problems.push(`"replyTo": expected ${problem}, got ${describeValue(fields.replyTo)}`);
      else replyTo = fields.replyTo;
    }
    if (fields.id !== undefined) {
      const given = idSchema.safeParse(fields.id);
      if (given.success) id = given.data;
    }
    if (envelope.responseTopic !== undefined) {
      const problem = checkReplyTopic(envelope.responseTopic, limits.prefix);
      if (problem) problems.push(`the response topic ${JSON.stringify(envelope.responseTopic)} is refused: expected ${problem}`);
    }
    const checked = checkFields(schema, fields);
    if (!checked.ok) problems.push(...checked.problems);
    if (problems.length > 0 || !checked.ok) throw new BadRequest(problems.join("; "));
    const finalId = id ?? correlationId ?? (limits.newId ?? randomUUID)();
    const request = build(checked.value, finalId, id !== undefined || correlationId !== undefined);
    return { ok: true, request, route: routeFor(finalId) };
  } catch (error) {
    const finalId = id ?? correlationId ?? (limits.newId ?? randomUUID)();
    const agentError = error instanceof AgentError ? error : new AgentError("IA_ERR_BAD_REQUEST", (error as Error).message);
    return { ok: false, id: finalId, route: routeFor(finalId), error: agentError };
  }
}

/** Parses an `ask` payload: JSON `{id?, prompt | messages, system?, session?, params?, stream?, replyTo?}` or plain text. */
export function parseAsk(envelope: Envelope, limits: ParseLimits): Parsed<AskRequest> {
  return parseWith(envelope, limits, "prompt", askFieldsSchema, (fields, id, idGiven) => ({
    id,
    idGiven,
    prompt: fields.prompt,
    messages: fields.messages,
    system: fields.system,
    session: fields.session,
    params: fields.params,
    stream: fields.stream === true,
  }));
}

/** Parses an `scpi` payload: JSON `{id?, query, replyTo?}` or the query as plain text. */
export function parseScpi(envelope: Envelope, limits: ParseLimits): Parsed<ScpiRequest> {
  return parseWith(envelope, limits, "query", scpiFieldsSchema, (fields, id, idGiven) => ({ id, idGiven, query: fields.query }));
}

/** The id a `cancel` payload names (`{"id":"..."}` or the id as plain text), or undefined. */
export function parseCancel(payload: Buffer, correlationData?: Buffer): string | undefined {
  if (payload.length > 4096 || invalidUtf8Offset(payload) >= 0) return undefined;
  const text = payload.toString("utf8").trim();
  if (text.startsWith("{")) {
    try {
      const id = (JSON.parse(text) as { id?: unknown }).id;
      if (typeof id === "string" && id !== "") return id;
      if (typeof id === "number") return String(id);
    } catch {
      return undefined;
    }
    return undefined;
  }
  if (text !== "") return text;
  return correlationData && correlationData.length > 0 ? idFromCorrelation(correlationData) : undefined;
}

/** A key that finds a redelivered request: the route and id, or for id-less requests the hash of what was received. */
export function requestKey(route: ReplyRoute, id: string, idGiven: boolean, envelope: Envelope): string {
  if (idGiven) return `${route.topic}\u0000${id}`;
  return `#${createHash("sha256")
    .update(envelope.responseTopic ?? "")
    .update("\u0000")
    .update(envelope.payload)
    .digest("hex")}`;
}

/** A reply route as the journal keeps it (correlation data in base64), with the version and response topic it came with. */
export function routeForJournal(route: ReplyRoute, envelope: Envelope, protocolVersion: 4 | 5): JournalRoute {
  const correlationData = route.correlationData?.toString("base64");
  return {
    replyTo: route.topic,
    protocolVersion,
    ...(correlationData !== undefined ? { correlationData } : {}),
    ...(envelope.responseTopic !== undefined ? { responseTopic: envelope.responseTopic } : {}),
  };
}

/** The reply route of a journaled question. */
export function routeFromJournal(route: JournalRoute): ReplyRoute {
  return {
    topic: route.replyTo,
    correlationData: route.correlationData === undefined ? undefined : Buffer.from(route.correlationData, "base64"),
  };
}

const ROLES = new Set(["system", "user", "assistant"]);

/** A journaled session history as chat messages (anything else in it is left out). */
export function chatMessages(saved: readonly JournalMessage[] | undefined): ChatMessage[] {
  return (saved ?? []).filter((m): m is ChatMessage => ROLES.has(m.role) && typeof m.content === "string");
}

/** "45 s", "12 min", "3.5 h": how old a question is, for IA_ERR_EXPIRED. */
export function describeAge(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  return `${Math.round(s / 360) / 10} h`;
}
