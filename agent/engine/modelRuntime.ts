/**
 * What the rest of the agent knows about a loaded model. Transports, consoles and the
 * answer service talk to this interface only; `llamaRuntime.ts` implements it with
 * node-llama-cpp, and unit tests hand in a fake.
 */

export interface GenerationParams {
  /** Sampling temperature; 0 is greedy. Defaults to the model's default. */
  temperature?: number | undefined;
  /** Top-k. Defaults to the model's default. */
  topK?: number | undefined;
  /** Top-p. Defaults to the model's default. */
  topP?: number | undefined;
  /** Repeat penalty; 1 turns it off. Defaults to the model's default. */
  repeatPenalty?: number | undefined;
  /** Most tokens to generate. Defaults to 512. */
  maxTokens?: number | undefined;
  /** Seed for sampling. Defaults to random. */
  seed?: number | undefined;
}

export type ChatRole = "system" | "user" | "assistant";

export interface ChatMessage {
  role: ChatRole;
  content: string;
}

/** A function the model may call (`--tools`): its parameters as a JSON schema node-llama-cpp turns into a grammar. */
export interface ToolSpec {
  name: string;
  description: string;
  params: Record<string, unknown>;
}

/** A call the model asked for. */
export interface ToolCall {
  name: string;
  arguments: unknown;
}

/** A call made during the answer being generated, with what came back, so the model can go on from it. */
export interface ToolExchange extends ToolCall {
  /** The answer text the model wrote before this call. */
  textBefore: string;
  result: unknown;
}

export interface GenerateRequest {
  /** `chat` renders `messages` through the model's chat template; `raw` completes `prompt` as is. */
  mode: "chat" | "raw";
  /** The conversation so far, ending with the user's new message (chat mode). */
  messages?: ChatMessage[];
  /** Text to complete (raw mode). */
  prompt?: string;
  /** System prompt for chat mode; a `system` message in `messages` takes precedence. */
  system?: string | undefined;
  params: GenerationParams;
  /** Aborting stops generation; the result then has finish reason `cancelled`. */
  signal?: AbortSignal | undefined;
  /** Receives the answer text as it is generated. */
  onDelta?: ((text: string) => void) | undefined;
  /** Functions the model may call (chat mode); it stops with `toolCalls` when it calls them. Defaults to none. */
  tools?: readonly ToolSpec[] | undefined;
  /** The calls already made in this answer, with their results, in order. Defaults to none. */
  toolExchanges?: readonly ToolExchange[] | undefined;
}

/** The range each generation parameter accepts, wherever it comes from (config, flag, MQTT request). */
export const GENERATION_PARAM_RANGES: Record<keyof GenerationParams, { min: number; max: number; integer: boolean }> = {
  temperature: { min: 0, max: 2, integer: false },
  topK: { min: 0, max: 1000, integer: true },
  topP: { min: 0, max: 1, integer: false },
  repeatPenalty: { min: 0, max: 5, integer: false },
  maxTokens: { min: 1, max: 131_072, integer: true },
  seed: { min: 0, max: 2 ** 32 - 1, integer: true },
};

export type FinishReason = "stop" | "length" | "cancelled";

export interface GenerateResult {
  text: string;
  finishReason: FinishReason;
  /** The model stopped to call these (only with `tools`); `text` is what it wrote before them. */
  toolCalls?: ToolCall[] | undefined;
  usage: { promptTokens: number; completionTokens: number };
  /** With speculative decoding: proposed tokens the model kept (validated) and rejected (refuted) in this answer. */
  predictions?: { validated: number; refuted: number } | undefined;
  timings: {
    /** From the start of evaluation (after any queue wait) to the first generated text. */
    ttftMs: number;
    /** Generated tokens per second after the first token. */
    tokensPerSecond: number;
    /** Prompt tokens evaluated per second (tokens reused from the cache are not counted). */
    promptTokensPerSecond: number;
    totalMs: number;
    /** Time spent waiting in the queue before a sequence was free. */
    queuedMs: number;
  };
}

export interface MlockState {
  requested: boolean;
  /** Whether the model's pages are really locked (Linux `VmLck`; elsewhere as llama.cpp reported). */
  locked: boolean;
  lockedBytes: number | null;
  /** What went wrong and how to fix it, when requested but not locked. */
  detail: string;
}

export interface RuntimeInfo {
  modelPath: string;
  modelLabel: string;
  /** The model is the demo: a scripted file whose one answer says what it is. */
  isDemo: boolean;
  threads: number;
  contextSize: number;
  parallelSequences: number;
  mlock: MlockState;
  loadMs: number;
  /** The CPU variant of the llama.cpp binaries in use, when known (e.g. `haswell`). */
  backend: string;
  /** Where llama.cpp runs: its own engine process, or inside the agent's process (`--engine`). */
  engine: "process" | "inline";
  /** Speculative decoding in use: "off", "prompt lookup, …" or "draft <model>, …" (speculation.ts). */
  speculation: string;
}

export interface ModelRuntime {
  readonly info: RuntimeInfo;
  /** How many generations can run at once (one per context sequence). */
  readonly slots: number;
  /** Generates on the given slot; one call per slot at a time (the queue guarantees it). */
  generate(slot: number, request: GenerateRequest): Promise<GenerateResult>;
  /** Tokens of `text` in the model's vocabulary (asks the engine process when there is one). */
  countTokens(text: string): Promise<number>;
  dispose(): Promise<void>;
  readonly disposed: boolean;
}

export interface RawEvaluationOptions {
  /** Text whose first `promptTokens` tokens are evaluated as the prompt. */
  text: string;
  promptTokens: number;
  /** Tokens to generate after the prompt (fewer if the model emits end-of-generation). */
  maxTokens: number;
}

export interface RawEvaluationResult {
  promptTokens: number;
  completionTokens: number;
  /** From the start of prompt evaluation to the first sampled token. */
  ttftMs: number;
  promptTokensPerSecond: number;
  /** Generated tokens per second after the first token. */
  tokensPerSecond: number;
}

export interface EngineStats {
  /** Peak resident set of the process that runs llama.cpp (Linux VmHWM, else maxRSS). */
  peakRssBytes: number;
  /** Batches of several sequences put in sequence-id order (batching.ts, gatherGeneratingSequences). */
  orderedBatches: number;
  /** Of those, the batches whose queue order the sort changed. */
  reorderedBatches: number;
  /** Batches of several sequences left in queue order because the ids could not be read. */
  unorderedBatches: number;
}

/** What `bench` needs beyond answering: the raw loop and memory figures. */
export interface EngineRuntime extends ModelRuntime {
  /** The plain node-llama-cpp evaluation loop on one slot (clears the slot's history). */
  rawEvaluationBaseline(slot: number, options: RawEvaluationOptions): Promise<RawEvaluationResult>;
  stats(): Promise<EngineStats>;
}
