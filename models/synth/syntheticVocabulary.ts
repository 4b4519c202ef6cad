import { AgentError } from "../../common/errors.js";
import { TokenType } from "../gguf/ggufFormat.js";

/** Qwen2.5's added tokens, ids counted from the end of the BPE part (151643 in the real one). */
const QWEN2_ADDED_TOKENS: readonly (readonly [string, TokenType])[] = [
  ["<|endoftext|>", TokenType.CONTROL],
  ["<|im_start|>", TokenType.CONTROL],
  ["<|im_end|>", TokenType.CONTROL],
  ["<|object_ref_start|>", TokenType.CONTROL],
  ["<|object_ref_end|>", TokenType.CONTROL],
  ["<|box_start|>", TokenType.CONTROL],
  ["<|box_end|>", TokenType.CONTROL],
  ["<|quad_start|>", TokenType.CONTROL],
  ["<|quad_end|>", TokenType.CONTROL],
  ["<|vision_start|>", TokenType.CONTROL],
  ["<|vision_end|>", TokenType.CONTROL],
  ["<|vision_pad|>", TokenType.CONTROL],
  ["<|image_pad|>", TokenType.CONTROL],
  ["<|video_pad|>", TokenType.CONTROL],
  ["<tool_call>", TokenType.USER_DEFINED],
  ["</tool_call>", TokenType.USER_DEFINED],
  ["<|fim_prefix|>", TokenType.CONTROL],
  ["<|fim_middle|>", TokenType.CONTROL],
  ["<|fim_suffix|>", TokenType.CONTROL],
  ["<|fim_pad|>", TokenType.CONTROL],
  ["<|repo_name|>", TokenType.CONTROL],
  ["<|file_sep|>", TokenType.CONTROL],
];

const QWEN3_ADDED_TOKENS: readonly (readonly [string, TokenType])[] = [
  ...QWEN2_ADDED_TOKENS,
  ["<tool_response>", TokenType.USER_DEFINED],
  ["</tool_response>", TokenType.USER_DEFINED],
  ["<think>", TokenType.USER_DEFINED],
  ["</think>", TokenType.USER_DEFINED],
];

/** The real Qwen tokenizers: 151643 BPE tokens, then added tokens, padded to 151936 rows. */
const QWEN_VOCAB_ROWS = 151936;
const QWEN_BPE_TOKENS = 151643;

export interface SyntheticVocabularyOptions {
  /** Total tokens, padding included: the rows of token_embd. */
  size: number;
  /** Whose added tokens follow the BPE part. Defaults to `"qwen2"`. */
  family?: "qwen2" | "qwen3";
  /**
   * Byte and merged tokens before the added tokens. Defaults to 151643 for the real size,
   * else `size - 3 - min(293, floor(size / 64))` (the same padding share, capped as Qwen's).
   */
  bpeTokenCount?: number;
}

export interface SyntheticVocabulary {
  tokens: string[];
  tokenTypes: number[];
  /** `"left right"` pairs in rank order; each makes the token `left + right`. */
  merges: string[];
  bpeTokenCount: number;
  endOfTextId: number;
  imStartId: number;
  imEndId: number;
  /** `<|im_end|>`, as in Qwen's instruct GGUFs. */
  eosTokenId: number;
  bosTokenId: number;
  paddingTokenId: number;
}

/**
 * A Qwen-style byte-level BPE vocabulary (llama.cpp `gpt2` model, pre-tokenizer `qwen2`):
 * the 256 byte tokens in GPT-2's byte-to-unicode order, merged tokens (common English and
 * CJK first, then letter sequences by English letter frequency), Qwen's added tokens at
 * their real offsets, then `[PAD<id>]` tokens typed unused up to `size`.
 */
export function buildSyntheticVocabulary(options: SyntheticVocabularyOptions): SyntheticVocabulary {
  const { size } = options;
  const added = options.family === "qwen3" ? QWEN3_ADDED_TOKENS : QWEN2_ADDED_TOKENS;
  const bpeTokenCount = options.bpeTokenCount ?? defaultBpeTokenCount(size);
  if (!Number.isInteger(size) || !Number.isInteger(bpeTokenCount) || bpeTokenCount < 256 || bpeTokenCount + 3 > size) {
    throw new AgentError(
      "IA_ERR_USAGE",
      `synthetic vocabulary of ${size} tokens with ${bpeTokenCount} BPE tokens; expected at least 256 BPE tokens and room for 3 control tokens`,
    );
  }
  const { tokens, merges } = buildBpe(bpeTokenCount);
  const tokenTypes: number[] = new Array<number>(bpeTokenCount).fill(TokenType.NORMAL);
  for (const [text, type] of added.slice(0, size - bpeTokenCount)) {
    tokens.push(text);
    tokenTypes.push(type);
  }
  for (let id = tokens.length; id < size; id++) {
    tokens.push(`[PAD${id}]`);
    tokenTypes.push(TokenType.UNUSED);
  }
  return {
    tokens,
    tokenTypes,
    merges,
    bpeTokenCount,
    endOfTextId: bpeTokenCount,
    imStartId: bpeTokenCount + 1,
    imEndId: bpeTokenCount + 2,
    eosTokenId: bpeTokenCount + 2,
    bosTokenId: bpeTokenCount,
    paddingTokenId: bpeTokenCount,
  };
}

function defaultBpeTokenCount(size: number): number {
  if (size === QWEN_VOCAB_ROWS) return QWEN_BPE_TOKENS;
  return size - 3 - Math.min(QWEN_VOCAB_ROWS - QWEN_BPE_TOKENS, Math.floor(size / 64));
}

/** GPT-2's byte-to-unicode table: printable bytes map to themselves, the rest to U+0100 onwards. */
export function bytesToUnicode(): string[] {
  const table = new Array<string>(256);
  let shifted = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    table[b] = String.fromCharCode(printable ? b : 256 + shifted++);
  }
  return table;
}

/** GPT-2's byte token order: the printable bytes first, then the shifted ones. */
function byteTokenOrder(table: readonly string[]): string[] {
  return [...table].sort((a, b) => a.charCodeAt(0) - b.charCodeAt(0));
}

const COMMON_WORDS =
  "the of and to in is that for it as was with be by on not he this are or his from at which but have an they you were her " +
  "she there been one all we their has would when if so no will can more about my what up said out some them into than its " +
  "only other new time could these two may first then do any like now over such our man me even most made after also did many " +
  "before must through back years where much your way well down should because each just those people how too little state " +
  "good very make world still own see men work long get here between both life being under never day same another know while " +
  "last might us great old year off come since against go came right used take three question answer model value data file " +
  "system error number result frequency span marker trace level signal power sweep center start stop reference bandwidth " +
  "instrument measurement analyzer spectrum voltage current time please thank hello yes";

/** Frequent Chinese characters (UTF-8: three bytes each). */
const COMMON_CJK =
  "的一是不了在人有我他这个们中来上大为和国地到以说时要就出会可也你对生能而子那得于着下自之年过发后作里用道行所然家种事成方多经么去法学如都同现当没动面起看定天分还进好小部其些主样理心她本前开但因只从想实日者意无力它与长把机十民第公此已工使情明性知全三又关点正业外将两高间由问很最重并物手应向头文体美相见被利什二等产或新己制身果加西月话合回特代内信表化老给世位次度门任常先海通教儿原东声提立及比员解水名真论处走义各入几口认条平系气题活更别打女变四神总何电数安少报才结反受目太量再感建务做接必场件计管期市直资命山金指许统区保至形社便空决治展科司五基眼书非则听白却界达光放强即像难且权思王象完设式色路记南品住告类求据程北边死张该交规万取拉格望觉术领共确传师观清今切院让识候带导争运笑飞风步改收根干造言联持组每济车亲极林服快办议往元英士证近失转夫令准布始怎呢存未远叫台单影具字爱击流备连调深商算质团集百需价花城石级整府离况请技际约示复病息究线似官火断精满支视消越器容照须九增研写称企八功吗包片史委乎查轻易早曾除农找装广显吧阿李标谈吃图念六引历首医局突专费号尽另周较注语仅考落青随选列武红响虽推势参希古众构房半节土投某案黑维革划";

/** Letters by English frequency, so the common sequences are merged first. */
const LETTERS = "etaoinshrdlcumwfgypbvkjxqz";

class BpeBuilder {
  readonly tokens: string[];
  readonly merges: string[] = [];
  private readonly known: Set<string>;
  private readonly byteChar: readonly string[];

  constructor(private readonly limit: number) {
    this.byteChar = bytesToUnicode();
    this.tokens = byteTokenOrder(this.byteChar);
    this.known = new Set(this.tokens);
  }

  get full(): boolean {
    return this.tokens.length >= this.limit;
  }

  /** Adds `text` (already in byte-to-unicode form) and every prefix it needs, left to right. */
  addMapped(chars: string): void {
    let prefix = chars.charAt(0);
    for (let i = 1; i < chars.length && !this.full; i++) {
      const next = chars.charAt(i);
      const merged = prefix + next;
      if (!this.known.has(merged)) {
        this.known.add(merged);
        this.tokens.push(merged);
        this.merges.push(`${prefix} ${next}`);
      }
      prefix = merged;
    }
  }

  addText(text: string): void {
    let mapped = "";
    for (const byte of Buffer.from(text, "utf8")) mapped += this.byteChar[byte];
    this.addMapped(mapped);
  }
}

function buildBpe(limit: number): { tokens: string[]; merges: string[] } {
  const bpe = new BpeBuilder(limit);
  const steps: (() => void)[] = [
    () => ["  ", "    ", "\n\n", "\n  ", "\n    ", "        ", ". ", ", ", "()", "{}", "[]", "://", "..."].forEach((t) => bpe.addText(t)),
    () =>
      COMMON_WORDS.split(" ").forEach((w) => {
        bpe.addText(` ${w}`);
        bpe.addText(w);
        bpe.addText(` ${w.charAt(0).toUpperCase()}${w.slice(1)}`);
      }),
    () => [...COMMON_CJK].forEach((c) => bpe.addText(c)),
    () => letterSequences(bpe, 2),
    () => letterSequences(bpe, 3),
    () => letterSequences(bpe, 4),
    () => letterSequences(bpe, 5),
  ];
  for (const step of steps) {
    if (bpe.full) break;
    step();
  }
  if (!bpe.full)
    throw new AgentError("IA_ERR_INTERNAL", `synthetic vocabulary generator ran out of merges at ${bpe.tokens.length} of ${limit} tokens`);
  return { tokens: bpe.tokens, merges: bpe.merges };
}

/** Every `length`-letter lowercase sequence, with and without a leading space (Ġ). */
function letterSequences(bpe: BpeBuilder, length: number): void {
  const space = bytesToUnicode()[0x20] ?? "Ġ";
  const visit = (prefix: string): void => {
    if (bpe.full) return;
    if (prefix.length === length) {
      bpe.addMapped(space + prefix);
      bpe.addMapped(prefix);
      return;
    }
    for (const letter of LETTERS) visit(prefix + letter);
  };
  visit("");
}

/** Qwen2.5-Instruct's chat template (ChatML with tool calls), as llama.cpp keeps it. */
export const QWEN25_CHAT_TEMPLATE = String.raw`{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}
    {%- endif %}
    {{- "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}
    {%- else %}
        {{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}
            {{- '\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\n<tool_call>\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' }}
        {{- message.content }}
        {{- '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
{%- endif %}
`;

/** Qwen3's chat template (ChatML with thinking and tool calls), as llama.cpp keeps it. */
export const QWEN3_CHAT_TEMPLATE = String.raw`{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0].role == 'system' %}
        {{- messages[0].content + '\n\n' }}
    {%- endif %}
    {{- "# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- else %}
    {%- if messages[0].role == 'system' %}
        {{- '<|im_start|>system\n' + messages[0].content + '<|im_end|>\n' }}
    {%- endif %}
{%- endif %}
{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}
{%- for message in messages[::-1] %}
    {%- set index = (messages|length - 1) - loop.index0 %}
    {%- if ns.multi_step_tool and message.role == "user" and not(message.content.startswith('<tool_response>') and message.content.endswith('</tool_response>')) %}
        {%- set ns.multi_step_tool = false %}
        {%- set ns.last_query_index = index %}
    {%- endif %}
{%- endfor %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {%- set content = message.content %}
        {%- set reasoning_content = '' %}
        {%- if message.reasoning_content is defined and message.reasoning_content is not none %}
            {%- set reasoning_content = message.reasoning_content %}
        {%- else %}
            {%- if '</think>' in message.content %}
                {%- set content = message.content.split('</think>')[-1].lstrip('\n') %}
                {%- set reasoning_content = message.content.split('</think>')[0].rstrip('\n').split('<think>')[-1].lstrip('\n') %}
            {%- endif %}
        {%- endif %}
        {%- if loop.index0 > ns.last_query_index %}
            {%- if loop.last or (not loop.last and reasoning_content) %}
                {{- '<|im_start|>' + message.role + '\n<think>\n' + reasoning_content.strip('\n') + '\n</think>\n\n' + content.lstrip('\n') }}
            {%- else %}
                {{- '<|im_start|>' + message.role + '\n' + content }}
            {%- endif %}
        {%- else %}
            {{- '<|im_start|>' + message.role + '\n' + content }}
        {%- endif %}
        {%- if message.tool_calls %}
            {%- for tool_call in message.tool_calls %}
                {%- if (loop.first and content) or (not loop.first) %}
                    {{- '\n' }}
                {%- endif %}
                {%- if tool_call.function %}
                    {%- set tool_call = tool_call.function %}
                {%- endif %}
                {{- '<tool_call>\n{"name": "' }}
                {{- tool_call.name }}
                {{- '", "arguments": ' }}
                {%- if tool_call.arguments is string %}
                    {{- tool_call.arguments }}
                {%- else %}
                    {{- tool_call.arguments | tojson }}
                {%- endif %}
                {{- '}\n</tool_call>' }}
            {%- endfor %}
        {%- endif %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if loop.first or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' }}
        {{- message.content }}
        {{- '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
    {%- if enable_thinking is defined and enable_thinking is false %}
        {{- '<think>\n\n</think>\n\n' }}
    {%- endif %}
{%- endif %}`;

export function chatTemplateFor(family: "qwen2" | "qwen3"): string {
  return family === "qwen3" ? QWEN3_CHAT_TEMPLATE : QWEN25_CHAT_TEMPLATE;
}
