import { z } from "zod";
import { AgentError } from "../../../common/errors.js";
import { GENERATION_PARAM_RANGES } from "../../engine/modelRuntime.js";
import type { ChatMessage, GenerationParams } from "../../engine/modelRuntime.js";

/**
 * The OpenAI request bodies this agent reads (README, HTTP API), checked once with zod. Keys
 * it does not use (`user`, `frequency_penalty`, `logprobs`, ...) are accepted and ignored, as
 * clients such as Open WebUI send them; what it cannot honour (`tools`, `n` > 1) is refused.
 */

const range = (name: keyof GenerationParams) => {
  const { min, max, integer } = GENERATION_PARAM_RANGES[name];
  const number = z
    .number(`expected ${integer ? "a whole number" : "a number"} from ${min} to ${max}`)
    .min(min)
    .max(max);
  return (integer ? number.int() : number).nullish();
};

const textPart = z.object({ type: z.literal("text", 'expected a content part of type "text"'), text: z.string() });

const messageSchema = z.object({
  role: z.enum(
    ["system", "developer", "user", "assistant"],
    'expected "system", "developer", "user" or "assistant" (tool messages need client-side tools)',
  ),
  content: z.union([z.string(), z.array(textPart)], "expected a string or a list of text parts"),
});

const stopSchema = z.union([z.string(), z.array(z.string()).max(4, "expected at most 4 stop strings")]).nullish();

const common = {
  model: z.string().nullish(),
  temperature: range("temperature"),
  top_p: range("topP"),
  max_tokens: range("maxTokens"),
  seed: range("seed"),
  stop: stopSchema,
  stream: z.boolean("expected true or false").nullish(),
  stream_options: z.object({ include_usage: z.boolean().nullish() }).nullish(),
  n: z.literal(1, "only n = 1 is supported").nullish(),
  tools: z.unknown().optional(),
  functions: z.unknown().optional(),
  tool_choice: z.unknown().optional(),
};

const chatSchema = z.looseObject({
  ...common,
  messages: z.array(messageSchema, "expected a list of {role, content} messages").min(1, "expected at least one message").max(256),
  max_completion_tokens: range("maxTokens"),
});

const completionSchema = z.looseObject({
  ...common,
  prompt: z.union([z.string(), z.array(z.string()).length(1, "expected one prompt")], "expected a string"),
  echo: z.literal(false, "echo is not supported").nullish(),
  suffix: z.null("suffix is not supported").nullish(),
});

export interface OpenAiRequest {
  params: GenerationParams;
  stop: string[];
  stream: boolean;
  includeUsage: boolean;
}

export interface ChatCompletionRequest extends OpenAiRequest {
  messages: ChatMessage[];
}

export interface CompletionRequest extends OpenAiRequest {
  prompt: string;
}

function parse<T extends z.ZodType>(schema: T, body: unknown, endpoint: string): z.output<T> {
  const result = schema.safeParse(body);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const where = issue.path.length > 0 ? `"${issue.path.join(".")}"` : "the body";
  throw new AgentError("IA_ERR_BAD_REQUEST", `${endpoint}: ${where}: ${issue.message}`);
}

function refuseClientTools(body: { tools?: unknown; functions?: unknown; tool_choice?: unknown }, endpoint: string): void {
  const given = (["tools", "functions", "tool_choice"] as const).filter((key) => body[key] !== undefined && body[key] !== null);
  if (given.length === 0) return;
  throw new AgentError(
    "IA_ERR_CLIENT_TOOLS",
    `${endpoint}: "${given[0]}": client-side tools are not supported; the agent calls its own read-only instrument tools and reports them in "instrument_tools"`,
  );
}

function sharedFields(
  body: z.output<typeof chatSchema> | z.output<typeof completionSchema>,
  maxTokens: number | null | undefined,
): OpenAiRequest {
  const params: GenerationParams = {};
  if (body.temperature != null) params.temperature = body.temperature;
  if (body.top_p != null) params.topP = body.top_p;
  if (maxTokens != null) params.maxTokens = maxTokens;
  if (body.seed != null) params.seed = body.seed;
  const stop = body.stop == null ? [] : typeof body.stop === "string" ? [body.stop] : body.stop;
  return { params, stop, stream: body.stream === true, includeUsage: body.stream_options?.include_usage === true };
}

export function parseChatCompletion(body: unknown): ChatCompletionRequest {
  const endpoint = "POST /v1/chat/completions";
  const fields = parse(chatSchema, body, endpoint);
  refuseClientTools(fields, endpoint);
  const messages: ChatMessage[] = fields.messages.map((m) => ({
    role: m.role === "developer" ? "system" : m.role,
    content: typeof m.content === "string" ? m.content : m.content.map((part) => part.text).join(""),
  }));
  if (messages.at(-1)!.role !== "user")
    throw new AgentError("IA_ERR_BAD_REQUEST", `${endpoint}: "messages": the last message must have role "user"`);
  return { ...sharedFields(fields, fields.max_completion_tokens ?? fields.max_tokens), messages };
}

export function parseCompletion(body: unknown): CompletionRequest {
  const endpoint = "POST /v1/completions";
  const fields = parse(completionSchema, body, endpoint);
  refuseClientTools(fields, endpoint);
  const prompt = typeof fields.prompt === "string" ? fields.prompt : fields.prompt[0]!;
  if (prompt === "") throw new AgentError("IA_ERR_BAD_REQUEST", `${endpoint}: "prompt": expected a non-empty string`);
  return { ...sharedFields(fields, fields.max_tokens), prompt };
}
