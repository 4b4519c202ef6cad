/** What the resource policy needs to know of a model to size memory, context and mlock for it. */
export interface ModelFootprint {
  id: string;
  /** Name shown to people. */
  label: string;
  fileBytes: number;
  /** KV cache bytes per token of context (K and V, all layers, F16). */
  kvBytesPerToken: number;
  trainedContextLength: number;
  /** Sizes the logits scratch of a batch. Defaults to Qwen's 151,936. */
  vocabularySize?: number;
  /** Query heads; sizes the attention scratch of a batch. Defaults to none (logits scratch only). */
  attentionHeadCount?: number;
  /** The random-weight demo model (`--model demo`): `--mlock auto` never locks it. */
  demo?: boolean;
}
