import { createHash, randomUUID } from "node:crypto";
import { AgentError } from "../../../common/errors.js";
import { GENERATION_PARAM_RANGES, type ChatMessage, type GenerationParams } from "../../engine/modelRuntime.js";

/**
 * Pure parsing of what lab tools publish on `<base>/ask`, `<base>/cancel` and `<base>/scpi`
 * (DESIGN.md section 4): size cap, UTF-8, JSON or plain text, types. Every failure is a
 * coded error together with where its reply goes, so the transport can always answer.
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

const ASK_KEYS = ["id", "prompt", "messages", "system", "session", "params", "stream", "replyTo"];
const SCPI_KEYS = ["id", "query", "replyTo"];
const ROLES = ["system", "user", "assistant"];
const MAX_ID = 128;

class BadRequest extends Error {}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "string") return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value);
  if (typeof value === "object") return "an object";
  return `${typeof value} ${String(value)}`;
}

function bad(key: string, expected: string, value: unknown): never {
  throw new BadRequest(`"${key}": expected ${expected}, got ${describe(value)}`);
}

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
    if (/^[^\u0000-\u001f/#+]{1,128}$/.test(text)) return text;
  }
  return data.toString("hex").slice(0, MAX_ID);
}

/** A topic a reply may be published to: no wildcards, not `$SYS`, not any agent's own request or status topic. */
export function checkReplyTopic(topic: string, prefix: string): string | undefined {
  if (topic.length === 0 || topic.length > 1024) return "a topic of 1 to 1024 characters";
  if (/[#+\u0000]/.test(topic)) return "a topic without the wildcards '#' and '+'";
  if (topic.startsWith("$")) return "a topic that does not start with '$'";
  if (topic.startsWith(`${prefix}/`) && /\/(ask|cancel|scpi|status|health)$/.test(topic))
    return "a topic that is not an agent's ask, cancel, scpi, status or health topic";
  return undefined;
}

interface Decoded {
  fields: Record<string, unknown>;
  /** Plain-text payloads become this one field. */
  plain: boolean;
}

function decode(envelope: Envelope, limits: ParseLimits, plainKey: string): Decoded {
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
  if (!trimmed.startsWith("{")) return { fields: { [plainKey]: trimmed }, plain: true };
  let parsed: unknown;
  try {
    parsed = JSON.parse(trimmed);
  } catch (error) {
    throw new BadRequest(`the payload starts with '{' but is not valid JSON (${(error as Error).message})`);
  }
  return { fields: parsed as Record<string, unknown>, plain: false };
}

function optionalString(fields: Record<string, unknown>, key: string, max: number): string | undefined {
  const value = fields[key];
  if (value === undefined) return undefined;
  if (typeof value !== "string" || value.length === 0 || value.length > max)
    bad(key, `a non-empty string of at most ${max} characters`, value);
  return value;
}

function readId(fields: Record<string, unknown>): string | undefined {
  const value = fields.id;
  if (value === undefined) return undefined;
  if (typeof value === "number" && Number.isInteger(value)) return String(value);
  if (typeof value !== "string" || !/^[^\u0000-\u001f/#+]{1,128}$/.test(value))
    bad("id", "a string of 1 to 128 characters without '/', '#', '+' or control characters", value);
  return value;
}

function readParams(value: unknown): GenerationParams | undefined {
  if (value === undefined) return undefined;
  if (value === null || typeof value !== "object" || Array.isArray(value)) bad("params", 'an object such as {"maxTokens":64}', value);
  const params: GenerationParams = {};
  for (const [key, raw] of Object.entries(value as Record<string, unknown>)) {
    const range = GENERATION_PARAM_RANGES[key as keyof GenerationParams];
    if (!range) throw new BadRequest(`"params.${key}": unknown parameter (known: ${Object.keys(GENERATION_PARAM_RANGES).join(", ")})`);
    if (
      typeof raw !== "number" ||
      !Number.isFinite(raw) ||
      raw < range.min ||
      raw > range.max ||
      (range.integer && !Number.isInteger(raw))
    ) {
      bad(`params.${key}`, `${range.integer ? "a whole number" : "a number"} from ${range.min} to ${range.max}`, raw);
    }
    params[key as keyof GenerationParams] = raw;
  }
  return params;
}

function readMessages(value: unknown): ChatMessage[] | undefined {
  if (value === undefined) return undefined;
  if (!Array.isArray(value) || value.length === 0 || value.length > 256)
    bad("messages", "a list of 1 to 256 {role, content} objects", value);
  const messages = value.map((entry: unknown, index): ChatMessage => {
    const message = entry as Record<string, unknown> | null;
    if (message === null || typeof message !== "object" || Array.isArray(message))
      bad(`messages[${index}]`, "an object {role, content}", entry);
    if (typeof message.role !== "string" || !ROLES.includes(message.role))
      bad(`messages[${index}].role`, `one of ${ROLES.join(", ")}`, message.role);
    if (typeof message.content !== "string") bad(`messages[${index}].content`, "a string", message.content);
    return { role: message.role as ChatMessage["role"], content: message.content };
  });
  if (messages.at(-1)?.role !== "user") throw new BadRequest(`"messages": the last message must have role "user"`);
  return messages;
}

function unknownKeys(fields: Record<string, unknown>, known: string[]): void {
  const unknown = Object.keys(fields).filter((key) => !known.includes(key));
  if (unknown.length > 0)
    throw new BadRequest(
      `unknown key${unknown.length > 1 ? "s" : ""} ${unknown.map((k) => `"${k}"`).join(", ")} (known: ${known.join(", ")})`,
    );
}

/**
 * Shared frame of every request: decode, find the id and the route (even for a bad
 * payload, as far as they can be read), then let `read` check the rest.
 */
function parseWith<T>(
  envelope: Envelope,
  limits: ParseLimits,
  plainKey: string,
  read: (fields: Record<string, unknown>, id: string, idGiven: boolean) => T,
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
    const { fields } = decode(envelope, limits, plainKey);
    if (fields === null || typeof fields !== "object" || Array.isArray(fields)) bad("payload", "a JSON object", fields);
    // Route first, so that errors in other keys still reach the requester.
    const candidate = fields.replyTo;
    if (typeof candidate === "string" && checkReplyTopic(candidate, limits.prefix) === undefined) replyTo = candidate;
    id = readId(fields);
    if (fields.replyTo !== undefined) {
      const problem = typeof fields.replyTo === "string" ? checkReplyTopic(fields.replyTo, limits.prefix) : "a topic string";
      if (problem) bad("replyTo", problem, fields.replyTo);
    }
    if (envelope.responseTopic !== undefined) {
      const problem = checkReplyTopic(envelope.responseTopic, limits.prefix);
      if (problem) throw new BadRequest(`the response topic ${JSON.stringify(envelope.responseTopic)} is refused: expected ${problem}`);
    }
    const finalId = id ?? correlationId ?? (limits.newId ?? randomUUID)();
    const request = read(fields, finalId, id !== undefined || correlationId !== undefined);
    return { ok: true, request, route: routeFor(finalId) };
  } catch (error) {
    const finalId = id ?? correlationId ?? (limits.newId ?? randomUUID)();
    const agentError = error instanceof AgentError ? error : new AgentError("IA_ERR_BAD_REQUEST", (error as Error).message);
    return { ok: false, id: finalId, route: routeFor(finalId), error: agentError };
  }
}

/** Parses an `ask` payload: JSON `{id?, prompt | messages, system?, session?, params?, stream?, replyTo?}` or plain text. */
export function parseAsk(envelope: Envelope, limits: ParseLimits): Parsed<AskRequest> {
  return parseWith(envelope, limits, "prompt", (fields, id, idGiven) => {
    unknownKeys(fields, ASK_KEYS);
    const prompt = fields.prompt;
    if (prompt !== undefined && (typeof prompt !== "string" || prompt.trim() === "")) bad("prompt", "a non-empty string", prompt);
    const messages = readMessages(fields.messages);
    if ((prompt === undefined) === (messages === undefined))
      throw new BadRequest(`expected exactly one of "prompt" (a string) or "messages" (a list)`);
    const system = fields.system;
    if (system !== undefined && typeof system !== "string") bad("system", "a string", system);
    const session = optionalString(fields, "session", MAX_ID);
    if (session !== undefined && messages !== undefined)
      throw new BadRequest(`"session" keeps the history itself: send "prompt", not "messages"`);
    const stream = fields.stream;
    if (stream !== undefined && typeof stream !== "boolean") bad("stream", "true or false", stream);
    return {
      id,
      idGiven,
      prompt: prompt as string | undefined,
      messages,
      system: system as string | undefined,
      session,
      params: readParams(fields.params),
      stream: stream === true,
    };
  });
}

/** Parses an `scpi` payload: JSON `{id?, query, replyTo?}` or the query as plain text. */
export function parseScpi(envelope: Envelope, limits: ParseLimits): Parsed<ScpiRequest> {
  return parseWith(envelope, limits, "query", (fields, id, idGiven) => {
    unknownKeys(fields, SCPI_KEYS);
    const query = fields.query;
    if (typeof query !== "string" || query.trim() === "" || query.length > 256)
      bad("query", 'an SCPI query of 1 to 256 characters such as "*IDN?"', query);
    return { id, idGiven, query: query.trim() };
  });
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
