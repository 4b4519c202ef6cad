import { AgentError } from "../../common/errors.js";
import { GgmlType, GgufValueType, TokenType, elementCount } from "../gguf/ggufFormat.js";
import type { GgufMetadataEntry } from "../gguf/ggufFormat.js";
import { writeGguf } from "../gguf/ggufWriter.js";
import type { GgufTensorSource } from "../gguf/ggufWriter.js";
import { halfBits } from "./syntheticModel.js";
import { planSyntheticTensors, syntheticShape } from "./syntheticShapes.js";
import type { SyntheticShape } from "./syntheticShapes.js";
import { buildSyntheticVocabulary, bytesToUnicode } from "./syntheticVocabulary.js";
import type { SyntheticVocabulary } from "./syntheticVocabulary.js";
import { syntheticMetadata } from "./syntheticModel.js";

/**
 * A model whose greedy answer to any chat question is a fixed text, so tests can assert what
 * an answer says. llama.cpp runs it like any other Qwen2 GGUF; the weights make it a
 * successor table:
 * - each piece of the text is its own token; every other token embeds to one shared
 *   "start" direction, each piece to a direction of its own (one-hot embeddings);
 * - the blocks' output projections are zero, so the residual stream still holds the current
 *   token's direction at the end, and `output.weight` points each piece to the next one, the
 *   start direction to the first piece and the last piece to `<|im_end|>`.
 * With `afterToolText`, one attention head also looks for a `<tool_response>` token (an added
 * token of this vocabulary, which only node-llama-cpp's tool-result section writes) and, when
 * one is in the context, adds a flag direction that turns the start to the second text: a
 * model that calls a tool once and then answers. The head's query and key sit in the last
 * rotary pair, whose frequency is so low that positions do not change the score.
 */

export interface ScriptedModelOptions {
  /** The answer to any question (before any tool result). */
  reply: string;
  /** The answer once a tool result is in the context. Defaults to `reply` (a model that repeats it). */
  afterToolText?: string | undefined;
  outPath: string;
}

export interface ScriptedModelResult {
  path: string;
  bytes: number;
  /** Tokens of each script, end-of-turn excluded. */
  pieces: number;
}

/** Metadata key holding the scripted texts, so `probe` and tests can tell what the model says. */
export const SCRIPTED_REPLY_KEY = "instrument_agent.scripted_reply";
export const SCRIPTED_AFTER_TOOL_KEY = "instrument_agent.scripted_after_tool";

const MAX_TEXT_BYTES = 16_384;
/** Logit margin of the scripted token over every other, in nats: deterministic at any temperature up to 1. */
const MARGIN = 12;
/** Attention score of the marker over other positions: e^20 outweighs any context of these sizes. */
const MARKER_SCORE = 20;
const TOOL_RESPONSE_TOKENS = ["<tool_response>", "</tool_response>"] as const;
const START_DIM = 0;

/** `from` is followed by `to` with this weight (4 for a text's own chain; 2 for a fallback a grammar picks when it masks the chain). */
interface Edge {
  from: number;
  to: number;
  weight: number;
}

function chainOf(pieces: readonly Piece[], endId: number): Edge[] {
  return pieces.map((piece, index) => ({ from: piece.id, to: pieces[index + 1]?.id ?? endId, weight: 4 }));
}

interface Piece {
  id: number;
  /** Vocabulary text (byte-level encoded, or the added token's own text). */
  text: string;
}

/** Writes the scripted GGUF (a few hundred kB): tiny's metadata and vocabulary, 1 block, f16 weights. */
export async function writeScriptedModel(options: ScriptedModelOptions): Promise<ScriptedModelResult> {
  const reply = checkedText(options.reply, "--reply");
  const afterTool = options.afterToolText === undefined ? undefined : checkedText(options.afterToolText, "--after-tool");
  const base = buildSyntheticVocabulary({ size: syntheticShape("tiny").vocabSize, family: "qwen2" });
  const vocab = new ScriptVocabulary(base);
  // The generation prompt ends with a newline token; it must stay the start, never a piece.
  vocab.reserve(vocab.idOfText("\n"));
  const marker = afterTool === undefined ? undefined : vocab.reserve(vocab.addedToken(TOOL_RESPONSE_TOKENS[0]));
  if (afterTool !== undefined) vocab.reserve(vocab.addedToken(TOOL_RESPONSE_TOKENS[1]));
  const first = vocab.segment(reply);
  const second = afterTool === undefined ? [] : vocab.segment(afterTool);

  // Edges of the successor table: each text's chain, the start to the first piece, and the
  // tool calls' extra edges for node-llama-cpp's grammar phases (ScriptVocabulary.segment).
  const edges: Edge[] = [...chainOf(first, base.imEndId), ...chainOf(second, base.imEndId), ...vocab.grammarEdges];
  // Directions: start, one per token that has successors, then the marker and the flag.
  const fromTokens = [...new Set(edges.map((edge) => edge.from))];
  const markerDim = fromTokens.length + 1;
  const flagDim = fromTokens.length + 2;
  const embedding = Math.max(64, Math.ceil((flagDim + 1) / 32) * 32);
  const shape: SyntheticShape = {
    ...syntheticShape("tiny"),
    embeddingLength: embedding,
    blockCount: 1,
    feedForwardLength: 64,
    headCount: embedding / 32,
    headCountKv: embedding / 32,
    headDim: 32,
    vocabSize: vocab.tokens.length,
    tiedEmbeddings: false,
  };
  const dimOf = new Map<number, number>(fromTokens.map((token, index) => [token, index + 1]));
  if (marker !== undefined) dimOf.set(marker, markerDim);

  const tokenEmbd = halves(embedding * shape.vocabSize);
  for (let token = 0; token < shape.vocabSize; token++) tokenEmbd.set(token * embedding + (dimOf.get(token) ?? START_DIM), 1);

  // After the final norm a one-hot direction has length sqrt(E), or sqrt(E/2) with the flag on.
  const unit = MARGIN / Math.sqrt(embedding / 2);
  const output = halves(embedding * shape.vocabSize);
  const point = (from: number, to: number, weight: number) => output.add(to * embedding + from, weight * unit);
  for (const edge of edges) point(dimOf.get(edge.from)!, edge.to, edge.weight);
  const firstId = first[0]!.id;
  point(START_DIM, firstId, 2);
  const attention = {
    q: new Float32Array(embedding),
    k: halves(embedding * embedding),
    v: halves(embedding * embedding),
    o: halves(embedding * embedding),
  };
  if (second.length > 0) {
    const secondId = second[0]!.id;
    point(START_DIM, secondId, 1);
    point(flagDim, secondId, 2);
    point(flagDim, firstId, -2);
    // Head 0, last rotary pair (NEOX pairs i and i + d/2): dim 31 carries query and key.
    const headDim = 32;
    const qk = Math.sqrt(MARKER_SCORE * Math.sqrt(headDim));
    const normed = Math.sqrt(embedding); // a one-hot direction after the attention norm
    attention.q[headDim - 1] = qk;
    attention.k.set((headDim - 1) * embedding + markerDim, qk / normed);
    attention.v.set(0 * embedding + markerDim, 1 / normed);
    attention.o.set(flagDim * embedding + 0, 1);
  }

  const tensors: GgufTensorSource[] = planSyntheticTensors(shape).map((tensor) => {
    const count = elementCount(tensor.dims);
    const f32 = (values: Float32Array) => ({ ...tensor, type: GgmlType.F32, chunks: () => [bytesOf(values)] });
    const f16 = (values: Halves) => ({ ...tensor, type: GgmlType.F16, chunks: () => [values.bytes] });
    const name = tensor.name.replace(/^blk\.0\./, "");
    if (tensor.role === "norm") return f32(new Float32Array(count).fill(1));
    if (name === "attn_q.bias") return f32(attention.q);
    if (tensor.role === "bias") return f32(new Float32Array(count));
    if (name === "token_embd.weight") return f16(tokenEmbd);
    if (name === "output.weight") return f16(output);
    if (name === "attn_k.weight") return f16(attention.k);
    if (name === "attn_v.weight") return f16(attention.v);
    if (name === "attn_output.weight") return f16(attention.o);
    return f16(halves(count));
  });

  const metadata = syntheticMetadata(shape, "f16", 0, vocab.asSyntheticVocabulary()).map(([key, entry]): [string, GgufMetadataEntry] =>
    key === "general.name" ? [key, { type: GgufValueType.STRING, value: `scripted: ${preview(reply)}` }] : [key, entry],
  );
  metadata.push([SCRIPTED_REPLY_KEY, { type: GgufValueType.STRING, value: reply }]);
  if (afterTool !== undefined) metadata.push([SCRIPTED_AFTER_TOOL_KEY, { type: GgufValueType.STRING, value: afterTool }]);
  const result = await writeGguf(options.outPath, { metadata, tensors });
  return { path: result.path, bytes: result.bytes, pieces: first.length + second.length };
}

function checkedText(text: string, flag: string): string {
  if (text.length === 0) throw new AgentError("IA_ERR_USAGE", `${flag} is empty; a scripted model needs a text to say`);
  if (Buffer.byteLength(text) > MAX_TEXT_BYTES) {
    throw new AgentError("IA_ERR_USAGE", `${flag} is ${Buffer.byteLength(text)} bytes; a scripted text holds at most ${MAX_TEXT_BYTES}`);
  }
  return text;
}

function preview(text: string): string {
  const line = text.replace(/\s+/g, " ").trim();
  return line.length > 60 ? `${line.slice(0, 57)}...` : line;
}

/**
 * The base vocabulary plus the texts' pieces. A piece is a word with its leading space, a run
 * of punctuation, or an added token (`<tool_call>`); a piece seen before in either text is
 * joined to the next one until it is new, because each token can have only one successor.
 * Pieces whose text the vocabulary already has reuse that token (llama.cpp refuses a
 * vocabulary with two tokens of one text); the rest are appended as normal tokens, which the
 * tokenizer never produces from input because no merge builds them.
 */
class ScriptVocabulary {
  readonly tokens: string[];
  readonly tokenTypes: number[];
  readonly #base: SyntheticVocabulary;
  readonly #idOf = new Map<string, number>();
  readonly #used = new Set<number>();
  readonly #byteText = bytesToUnicode();
  readonly #added: Set<string>;
  /** Extra successors for tool calls (#addGrammarEdges). */
  readonly grammarEdges: Edge[] = [];

  constructor(base: SyntheticVocabulary) {
    this.#base = base;
    this.tokens = [...base.tokens];
    this.tokenTypes = [...base.tokenTypes];
    this.tokens.forEach((text, id) => this.#idOf.set(text, id));
    this.#added = new Set(base.tokens.filter((_, id) => base.tokenTypes[id] === TokenType.USER_DEFINED));
    for (const text of TOOL_RESPONSE_TOKENS) this.#added.add(text);
  }

  /** An added token's id, appending it (user-defined, so input text containing it stays one token) when new. */
  addedToken(text: string): number {
    const known = this.#idOf.get(text);
    if (known !== undefined) return known;
    return this.#append(text, TokenType.USER_DEFINED);
  }

  /** The token of a plain text that the vocabulary has as one token. */
  idOfText(text: string): number {
    const id = this.#idOf.get(this.#encode(text));
    if (id === undefined) throw new AgentError("IA_ERR_INTERNAL", `the synthetic vocabulary has no token ${JSON.stringify(text)}`);
    return id;
  }

  /** Keeps a token out of the scripts (it is the start, or the tool-result marker). */
  reserve(id: number): number {
    this.#used.add(id);
    return id;
  }

  segment(text: string): Piece[] {
    const pieces: Piece[] = [];
    for (const part of splitToolCalls(text)) {
      if (typeof part !== "string") {
        const call = part.pieces.map((piece) => this.#take(piece, this.#added.has(piece)));
        pieces.push(...call);
        this.#addGrammarEdges(call);
        continue;
      }
      const chunks = splitAdded(part, this.#added).flatMap((chunk) =>
        this.#added.has(chunk) ? [chunk] : (chunk.match(/\s*[\p{L}\p{N}_]+|\s*[^\s\p{L}\p{N}_]+|\s+/gu) ?? []),
      );
      for (let i = 0; i < chunks.length;) {
        let chunk = chunks[i++]!;
        if (this.#added.has(chunk)) {
          pieces.push(this.#take(chunk, true));
          continue;
        }
        while (this.#isTaken(chunk) && i < chunks.length && !this.#added.has(chunks[i]!)) chunk += chunks[i++]!;
        if (this.#isTaken(chunk)) {
          throw new AgentError(
            "IA_ERR_USAGE",
            `cannot script ${JSON.stringify(text)}: its piece ${JSON.stringify(chunk)} repeats at the end or before an added token; end it differently`,
          );
        }
        pieces.push(this.#take(chunk, false));
      }
    }
    return pieces;
  }

  /**
   * How node-llama-cpp runs a Qwen call: once it sees the prefix it may re-render
   * `<tool_call>\n{"name": "` itself, tokenized, so its last token, a lone quote, points to the
   * name; the name's grammar then wants a newline (so the name also points there, below its
   * own chain); it re-renders `", "arguments": ` the same way, so its last token, a lone
   * space, points to the arguments; and the arguments' grammar ends on four newlines.
   * Without tools the chain wins and the text comes out as written.
   */
  #addGrammarEdges(call: readonly Piece[]): void {
    const [, , name, , args] = call;
    const space = this.idOfText(" ");
    const quote = this.idOfText('"');
    if (this.#used.has(space) || this.#used.has(quote)) {
      throw new AgentError("IA_ERR_USAGE", "a scripted model can make one tool call (in --reply or --after-tool)");
    }
    this.reserve(space);
    this.reserve(quote);
    const newlines = this.#idOf.get(this.#encode("\n\n\n\n")) ?? this.#append(this.#encode("\n\n\n\n"), TokenType.NORMAL);
    this.grammarEdges.push(
      { from: quote, to: name!.id, weight: 4 },
      { from: name!.id, to: this.idOfText("\n"), weight: 2 },
      { from: space, to: args!.id, weight: 4 },
      { from: args!.id, to: newlines, weight: 2 },
    );
  }

  asSyntheticVocabulary(): SyntheticVocabulary {
    return { ...this.#base, tokens: this.tokens, tokenTypes: this.tokenTypes };
  }

  #encode(chunk: string): string {
    return [...Buffer.from(chunk, "utf8")].map((b) => this.#byteText[b]).join("");
  }

  #isTaken(chunk: string): boolean {
    const id = this.#idOf.get(this.#added.has(chunk) ? chunk : this.#encode(chunk));
    return id !== undefined && this.#used.has(id);
  }

  #take(chunk: string, added: boolean): Piece {
    const text = added ? chunk : this.#encode(chunk);
    const id = this.#idOf.get(text) ?? this.#append(text, added ? TokenType.USER_DEFINED : TokenType.NORMAL);
    if (this.#used.has(id)) {
      throw new AgentError("IA_ERR_USAGE", `a scripted text can use ${chunk} once (each token has one successor)`);
    }
    this.#used.add(id);
    return { id, text };
  }

  #append(text: string, type: number): number {
    const id = this.tokens.length;
    this.tokens.push(text);
    this.tokenTypes.push(type);
    this.#idOf.set(text, id);
    return id;
  }
}

/**
 * A tool call in Qwen's form, `<tool_call>\n{"name": "N", "arguments": {...}}\n</tool_call>`, cut
 * where node-llama-cpp's QwenChatWrapper switches between its prefix, the name grammar, the
 * parameters grammar and the suffix, so each grammar starts on a token boundary and accepts
 * the scripted token. Text between calls is left as strings.
 */
const TOOL_CALL = /<tool_call>\n\{"name": "([^"]+)", "arguments": (\{.*?\})\}\n<\/tool_call>/gs;

function splitToolCalls(text: string): (string | { pieces: string[] })[] {
  const parts: (string | { pieces: string[] })[] = [];
  let at = 0;
  for (const match of text.matchAll(TOOL_CALL)) {
    if (match.index > at) parts.push(text.slice(at, match.index));
    const [, name = "", args = "{}"] = match;
    parts.push({ pieces: ["<tool_call>", '\n{"name": "', name, '", "arguments": ', args, "}\n", "</tool_call>"] });
    at = match.index + match[0].length;
  }
  if (at < text.length) parts.push(text.slice(at));
  return parts;
}

/** Cuts the added tokens' texts out as chunks of their own. */
function splitAdded(text: string, added: ReadonlySet<string>): string[] {
  const names = [...added].map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("|");
  return text.split(new RegExp(`(${names})`)).filter((chunk) => chunk !== "");
}

/** An f16 tensor built by setting a few values; zeros elsewhere. */
class Halves {
  readonly bytes: Buffer;
  readonly #values = new Map<number, number>();

  constructor(count: number) {
    this.bytes = Buffer.alloc(count * 2);
  }

  set(index: number, value: number): void {
    this.#values.set(index, value);
    this.bytes.writeUInt16LE(signedHalfBits(value), index * 2);
  }

  add(index: number, value: number): void {
    this.set(index, (this.#values.get(index) ?? 0) + value);
  }
}

function halves(count: number): Halves {
  return new Halves(count);
}

function signedHalfBits(value: number): number {
  if (value === 0) return 0;
  return value < 0 ? 0x8000 | halfBits(-value) : halfBits(value);
}

function bytesOf(values: Float32Array): Buffer {
  return Buffer.from(values.buffer, values.byteOffset, values.byteLength);
}
