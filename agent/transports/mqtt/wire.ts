import { z } from "zod";
import type { AgentError } from "../../../common/errors.js";
import { round } from "../../../common/format.js";
import { GENERATION_PARAM_RANGES, type GenerateResult, type GenerationParams } from "../../engine/modelRuntime.js";
import type { AnswerResult } from "../../service/answerService.js";

/**
 * The payloads of the MQTT API (README "MQTT API"), each declared once as a zod schema:
 * the request fields the agent checks, and the replies, status and health it publishes,
 * which `ask --via` and `bench` read back with the same schemas.
 */

// ---------------------------------------------------------------------------------------
// Requests

const MAX_ID = 128;
/** Ids and correlation-data ids: no topic separators or wildcards, since an id can end a reply topic. */
export const ID_PATTERN = /^[^\u0000-\u001f/#+]{1,128}$/;
const ROLES = ["system", "user", "assistant"] as const;

/** Every check below names what it expects; `problemsOf` adds the key and the value received. */
const expecting = (text: string) => ({ error: text });

/** A strict object: a wrong type reads "expected <text>", unknown keys list the known ones. */
function strictObject<Shape extends z.core.$ZodLooseShape>(shape: Shape, text: string) {
  const known = Object.keys(shape).join(", ");
  return z.strictObject(shape, { error: (issue) => (issue.code === "unrecognized_keys" ? `known: ${known}` : text) });
}

/** A statement about the payload as a whole, shown as it is (not as "expected ..., got ..."). */
function statement(message: string) {
  return { message, params: { statement: true } };
}

function nonEmptyString(max: number) {
  const text = `a non-empty string of at most ${max} characters`;
  return z.string(expecting(text)).min(1, expecting(text)).max(max, expecting(text));
}

/** `id`: a whole number (taken as its decimal text) or a string that can end a topic. */
export const idSchema = z
  .custom<string | number>(
    (value) => (typeof value === "number" && Number.isInteger(value)) || (typeof value === "string" && ID_PATTERN.test(value)),
    expecting(`a string of 1 to ${MAX_ID} characters without '/', '#', '+' or control characters`),
  )
  .transform(String);

function paramSchema(range: { min: number; max: number; integer: boolean }) {
  const text = `${range.integer ? "a whole number" : "a number"} from ${range.min} to ${range.max}`;
  const number = z.number(expecting(text)).min(range.min, expecting(text)).max(range.max, expecting(text));
  return (range.integer ? number.int(expecting(text)) : number).optional();
}

const paramsSchema = strictObject(
  Object.fromEntries(Object.entries(GENERATION_PARAM_RANGES).map(([key, range]) => [key, paramSchema(range)])) as Record<
    keyof GenerationParams,
    ReturnType<typeof paramSchema>
  >,
  'an object such as {"maxTokens":64}',
);

const messagesSchema = z
  .array(
    z.object(
      { role: z.enum(ROLES, expecting(`one of ${ROLES.join(", ")}`)), content: z.string(expecting("a string")) },
      expecting("an object {role, content}"),
    ),
    expecting("a list of 1 to 256 {role, content} objects"),
  )
  .min(1, expecting("a list of 1 to 256 {role, content} objects"))
  .max(256, expecting("a list of 1 to 256 {role, content} objects"))
  // An empty list already failed `min`: no second complaint about its last message.
  .refine((messages) => messages.length === 0 || messages.at(-1)?.role === "user", statement('the last message must have role "user"'));

/** `<base>/ask`: a JSON object, or plain text read as `{"prompt": <text>}`. */
export const askFieldsSchema = strictObject(
  {
    id: idSchema.optional(),
    prompt: z
      .string(expecting("a non-empty string"))
      .refine((prompt) => prompt.trim() !== "", expecting("a non-empty string"))
      .optional(),
    messages: messagesSchema.optional(),
    system: z.string(expecting("a string")).optional(),
    session: nonEmptyString(MAX_ID).optional(),
    params: paramsSchema.optional(),
    stream: z.boolean(expecting("true or false")).optional(),
    /** Checked against the topic rules where the route is chosen (mqttRequest.ts). */
    replyTo: z.string(expecting("a topic string")).optional(),
  },
  "a JSON object",
).superRefine((fields, context) => {
  if ((fields.prompt === undefined) === (fields.messages === undefined))
    context.addIssue({ code: "custom", ...statement(`expected exactly one of "prompt" (a string) or "messages" (a list)`) });
  else if (fields.session !== undefined && fields.messages !== undefined)
    context.addIssue({ code: "custom", ...statement(`"session" keeps the history itself: send "prompt", not "messages"`) });
});

export type AskFields = z.output<typeof askFieldsSchema>;

const SCPI_QUERY = 'an SCPI query of 1 to 256 characters such as "*IDN?"';

/** `<base>/scpi`: a JSON object, or the query as plain text. */
export const scpiFieldsSchema = strictObject(
  {
    id: idSchema.optional(),
    query: z
      .string(expecting(SCPI_QUERY))
      .max(256, expecting(SCPI_QUERY))
      .refine((query) => query.trim() !== "", expecting(SCPI_QUERY))
      .transform((query) => query.trim()),
    replyTo: z.string(expecting("a topic string")).optional(),
  },
  "a JSON object",
);

export type ScpiFields = z.output<typeof scpiFieldsSchema>;

/** A received value as an error message shows it: short, typed, never the whole payload. */
export function describeValue(value: unknown): string {
  if (value === undefined) return "nothing";
  if (value === null) return "null";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "string") return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value);
  if (typeof value === "object") return "an object";
  return `${typeof value} ${String(value)}`;
}

/** `messages[0].role`, `params.maxTokens`; the payload itself is `payload`. */
export function keyPath(path: readonly PropertyKey[]): string {
  if (path.length === 0) return "payload";
  return path.map((part, i) => (typeof part === "number" ? `[${part}]` : i === 0 ? String(part) : `.${String(part)}`)).join("");
}

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let value = input;
  for (const part of path) value = value !== null && typeof value === "object" ? (value as Record<PropertyKey, unknown>)[part] : undefined;
  return value;
}

function problemText(issue: z.core.$ZodIssue, input: unknown): string {
  const where = keyPath(issue.path);
  if (issue.code === "unrecognized_keys") {
    const keys = issue.keys.map((key) => `"${key}"`);
    // Below the top level, only `params` is a strict object.
    if (issue.path.length > 0) return issue.keys.map((key) => `"${where}.${key}": unknown parameter (${issue.message})`).join("; ");
    return `unknown key${keys.length > 1 ? "s" : ""} ${keys.join(", ")} (${issue.message})`;
  }
  if (issue.code === "custom" && (issue.params as { statement?: boolean } | undefined)?.statement)
    return issue.path.length === 0 ? issue.message : `"${where}": ${issue.message}`;
  return `"${where}": expected ${issue.message}, got ${describeValue(valueAt(input, issue.path))}`;
}

/** The fields checked against `schema`, or every problem found, each naming the key, what was expected and what came. */
export function checkFields<T>(
  schema: z.ZodType<T>,
  fields: unknown,
): { ok: true; value: T; problems?: undefined } | { ok: false; problems: string[] } {
  const result = schema.safeParse(fields);
  if (result.success) return { ok: true, value: result.data };
  return { ok: false, problems: result.error.issues.map((issue) => problemText(issue, fields)) };
}

// ---------------------------------------------------------------------------------------
// Replies, status and health

const usageSchema = z.object({ promptTokens: z.number(), completionTokens: z.number() });
const toolRecordSchema = z.object({
  name: z.string(),
  arguments: z.unknown(),
  result: z.unknown().optional(),
  error: z.object({ code: z.string(), message: z.string() }).optional(),
});

/**
 * A streamed piece of the answer, `seq` from 0. `restarted: true` marks the chunks of an answer
 * started again after the agent died in the middle of it: their seq starts again at 0, and a
 * streaming client drops the partial text it saw before.
 */
export const chunkReplySchema = z.object({ id: z.string(), seq: z.number(), delta: z.string(), restarted: z.literal(true).optional() });
export const answerFinalSchema = z.object({
  id: z.string(),
  done: z.literal(true),
  agent: z.string(),
  text: z.string(),
  finishReason: z.enum(["stop", "length", "cancelled"]),
  usage: usageSchema,
  timings: z.object({ ttftMs: z.number(), tokensPerSecond: z.number(), queuedMs: z.number() }),
  session: z.string().optional(),
  /** The model's instrument calls (`--tools`), each with its result or the error it was given. */
  tools: z.array(toolRecordSchema).optional(),
  toolLimitReached: z.literal(true).optional(),
});
export const errorFinalSchema = z.object({
  id: z.string(),
  done: z.literal(true),
  agent: z.string(),
  error: z.object({ code: z.string(), message: z.string() }),
});
export const scpiFinalSchema = z.object({ id: z.string(), done: z.literal(true), agent: z.string(), query: z.string(), reply: z.string() });
/** Anything the agent publishes on a reply topic. */
export const replySchema = z.union([chunkReplySchema, errorFinalSchema, answerFinalSchema, scpiFinalSchema]);

export type ChunkReply = z.output<typeof chunkReplySchema>;
export type AnswerFinal = z.output<typeof answerFinalSchema>;
export type ErrorFinal = z.output<typeof errorFinalSchema>;
export type ScpiFinal = z.output<typeof scpiFinalSchema>;
export type FinalReply = AnswerFinal | ErrorFinal | ScpiFinal;
export type Reply = z.output<typeof replySchema>;

/** The firmware bridge's counts (README, "Firmware bridge"), in the status and health when an instrument is configured. */
export const scpiCountsSchema = z.object({
  sent: z.number(),
  refused: z.number(),
  failed: z.number(),
  auditWriteErrors: z.number().optional(),
});

export const onlineStatusSchema = z.object({
  state: z.literal("online"),
  agent: z.string(),
  model: z.string(),
  demo: z.boolean(),
  threads: z.number(),
  mlock: z.boolean(),
  contextSize: z.number(),
  queue: z.number(),
  version: z.string(),
  /** ISO time the agent started. */
  since: z.string(),
  host: z.string(),
  pid: z.number(),
  scpi: scpiCountsSchema.optional(),
});
export const offlineStatusSchema = z.object({ state: z.literal("offline"), agent: z.string() });
export type OnlineStatus = z.output<typeof onlineStatusSchema>;
export type OfflineStatus = z.output<typeof offlineStatusSchema>;

export const healthSchema = z.object({
  agent: z.string(),
  uptimeS: z.number(),
  rssBytes: z.number(),
  heapUsedBytes: z.number(),
  freeMemBytes: z.number(),
  load: z.array(z.number()),
  queue: z.object({ running: z.number(), waiting: z.number() }),
  answered: z.number(),
  tokensPerSecond: z.number(),
  ttftMs: z.number(),
  outbox: z.number(),
  scpi: scpiCountsSchema.optional(),
});
export type Health = z.output<typeof healthSchema>;

/** The final of an answer; timings rounded as the README shows them. */
export function answerFinal(id: string, agent: string, result: AnswerResult, session: string | undefined): AnswerFinal {
  return {
    id,
    done: true,
    agent,
    text: result.text,
    finishReason: result.finishReason,
    usage: result.usage,
    timings: {
      ttftMs: round(result.timings.ttftMs, 0),
      tokensPerSecond: round(result.timings.tokensPerSecond, 1),
      queuedMs: result.timings.queuedMs,
    },
    ...(session !== undefined ? { session } : {}),
    ...(result.tools !== undefined ? { tools: result.tools } : {}),
    ...(result.toolLimitReached ? { toolLimitReached: true as const } : {}),
  };
}

/** The final of an answer cancelled before it produced anything worth its figures. */
export function cancelledFinal(id: string, agent: string, session: string | undefined): AnswerFinal {
  const nothing = { ttftMs: 0, tokensPerSecond: 0, promptTokensPerSecond: 0, totalMs: 0, queuedMs: 0 };
  return answerFinal(
    id,
    agent,
    { text: "", finishReason: "cancelled", usage: { promptTokens: 0, completionTokens: 0 }, timings: nothing },
    session,
  );
}

export function errorFinal(id: string, agent: string, error: AgentError): ErrorFinal {
  return { id, done: true, agent, error: error.toJSON() };
}

function readJson<T>(schema: z.ZodType<T>, payload: Buffer): T | undefined {
  try {
    const parsed = schema.safeParse(JSON.parse(payload.toString("utf8")));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/** A reply as a requester reads it; undefined for anything that is not one (another tool's message, bad JSON). */
export function readReply(payload: Buffer): Reply | undefined {
  return readJson(replySchema, payload);
}

/**
 * A retained status as another agent or a requester reads it: leniently, since an agent of
 * another version may leave fields out, and its state must still count (the same-id check).
 */
const statusSeenSchema = z.object({
  state: z.string(),
  since: z.string().optional().catch(undefined),
  host: z.string().catch("unknown"),
  pid: z.number().catch(0),
  model: z.string().optional().catch(undefined),
});
export type StatusSeen = z.output<typeof statusSeenSchema>;

/** A retained status; undefined when the payload is not one. */
export function readStatus(payload: Buffer): StatusSeen | undefined {
  return readJson(statusSeenSchema, payload);
}

/** Whether a reply is the last one of its request. */
export function isFinal(reply: Reply): reply is FinalReply {
  return "done" in reply && reply.done;
}
