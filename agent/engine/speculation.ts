import type { Llama, LlamaContext, LlamaModel, Token, TokenPredictor } from "node-llama-cpp";
import { AgentError } from "../../common/errors.js";
import type { Logger } from "../../common/logger.js";
import { FLASH_ATTENTION, llamaBackendOptions } from "./llamaRuntimeOptions.js";
import type { LlamaRuntimeOptions } from "./llamaRuntimeOptions.js";

/**
 * Speculative decoding through node-llama-cpp 3.21.1's token predictors: each slot's sequence
 * gets a `DraftSequenceTokenPredictor` (a small model of the same vocabulary drafts tokens on
 * a sequence of its own context) or an `InputLookupTokenPredictor` (tokens that followed the
 * same tokens in the prompt). The model checks the proposed tokens in one batch and keeps
 * the ones it would have sampled itself, so the answer is the same as without; only the
 * speed differs. Whether it is on is the resource policy's call (speculationDecision.ts).
 */

type NodeLlamaCpp = typeof import("node-llama-cpp");

export interface SpeculationParts {
  /** For RuntimeInfo and `probe`/`bench`: "draft qwen2.5-0.5b-instruct, 4 tokens per check", "prompt lookup", "off". */
  description: string;
  /** A new predictor for one slot's sequence (a sequence takes its predictor when it is created). */
  predictorFor(): TokenPredictor | undefined;
  dispose(): Promise<void>;
}

/** Prompt-lookup proposals per check: node-llama-cpp's default (3), matched on 1 or more tokens. */
const LOOKUP_MAX_TOKENS = 3;
/** Text whose tokens must come out the same from both models for the draft to be usable. */
const VOCABULARY_PROBE = "Span 10 MHz, RBW 3 kHz; marker 1 at 1.000 GHz reads -42.7 dBm. 测量 ✓";

export async function loadSpeculation(
  lib: NodeLlamaCpp,
  llama: Llama,
  model: LlamaModel,
  options: LlamaRuntimeOptions,
  parallel: number,
  target: LlamaContext,
  log: Logger,
): Promise<SpeculationParts> {
  const speculation = options.speculation;
  if (!speculation) return { description: "off", predictorFor: () => undefined, dispose: async () => undefined };
  if (speculation.kind === "lookup") {
    return {
      description: `prompt lookup, up to ${LOOKUP_MAX_TOKENS} tokens per check`,
      predictorFor: () => new lib.InputLookupTokenPredictor({ predictionLength: { min: 1, max: LOOKUP_MAX_TOKENS } }),
      dispose: async () => undefined,
    };
  }

  const disposers: Array<() => Promise<void>> = [];
  const dispose = async () => {
    for (const step of disposers.reverse()) await step().catch(() => undefined);
  };
  try {
    // Never locked: the draft is the cheaper one to page back in, and memlock is often small.
    const draft = await llama.loadModel({
      modelPath: speculation.draftPath,
      gpuLayers: llamaBackendOptions(options).gpuLayers,
      useMlock: false,
    });
    disposers.push(() => draft.dispose());
    refuseOtherVocabulary(model, draft, options, speculation.draftPath);
    const context: LlamaContext = await draft.createContext({
      contextSize: options.contextSize,
      sequences: parallel,
      threads: options.threads,
      flashAttention: FLASH_ATTENTION,
    });
    disposers.push(() => context.dispose());
    refuseIncompatibleContext(target, context, options, speculation.draftPath);
    log.debug({ draft: speculation.draftPath, contextSize: context.contextSize }, "draft model loaded");
    return {
      description: `draft ${speculation.draftLabel}, up to ${speculation.draftMax} tokens per check`,
      // minTokens = maxTokens: the model waits for the whole draft (or a token below
      // --draft-min-p) before it checks, so draft and model take turns on the cores instead
      // of contending for them (measured: waiting for none ran at 0.2 of plain decoding on 2 cores).
      predictorFor: () =>
        new lib.DraftSequenceTokenPredictor(context.getSequence(), {
          minTokens: speculation.draftMax,
          maxTokens: speculation.draftMax,
          minConfidence: speculation.draftMinP,
        }),
      dispose,
    };
  } catch (error) {
    await dispose();
    if (error instanceof AgentError) throw error;
    throw new AgentError(
      "IA_ERR_MODEL_LOAD",
      `--draft ${speculation.draftPath}: llama.cpp could not load the draft model (${(error as Error).message})`,
      { cause: error },
    );
  }
}

/**
 * A draft proposes token ids, so it must number the vocabulary as the model does: the same
 * ids for the same text and the same end-of-generation token. llama.cpp checks too, but only
 * when the first answer starts; this says so at load, naming both files.
 */
function refuseOtherVocabulary(model: LlamaModel, draft: LlamaModel, options: LlamaRuntimeOptions, draftPath: string): void {
  const ids = (m: LlamaModel): Token[] => m.tokenize(VOCABULARY_PROBE);
  const same =
    ids(model).join(",") === ids(draft).join(",") && model.tokens.eos === draft.tokens.eos && model.tokens.bos === draft.tokens.bos;
  if (!same) throw vocabularyError(options, draftPath, "the same text tokenizes differently");
}

function vocabularyError(options: LlamaRuntimeOptions, draftPath: string, detail: string): AgentError {
  return new AgentError(
    "IA_ERR_MODEL_LOAD",
    `--draft ${draftPath}: its vocabulary differs from the model's (${options.modelPath}: ${detail}), so its tokens cannot be checked; use a draft of the same family (README, "Speculative decoding") or --draft off`,
  );
}

interface NativeContext {
  ensureDraftContextIsCompatibleForSpeculative?(draft: unknown): void;
}

/**
 * llama.cpp's own whole-vocabulary check (every token's text, the special tokens), which the
 * predictor runs only when the first answer starts (DraftSequenceTokenPredictor.reset):
 * run here, at load, through the same call on node-llama-cpp's native context. Files of one
 * vocabulary size can still differ in a few tokens (seen: token 2035, "[PAD2035]" against
 * "<tool_response>"), which the tokenizing probe above does not meet.
 */
function refuseIncompatibleContext(target: LlamaContext, draft: LlamaContext, options: LlamaRuntimeOptions, draftPath: string): void {
  const native = (target as unknown as { _ctx?: NativeContext })._ctx;
  const nativeDraft = (draft as unknown as { _ctx?: unknown })._ctx;
  if (typeof native?.ensureDraftContextIsCompatibleForSpeculative !== "function" || nativeDraft === undefined) return;
  try {
    native.ensureDraftContextIsCompatibleForSpeculative(nativeDraft);
  } catch (error) {
    throw vocabularyError(options, draftPath, (error as Error).message);
  }
}
