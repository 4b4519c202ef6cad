import type { LlamaContext } from "node-llama-cpp";

/**
 * The one place that reads node-llama-cpp's internals. Its public `BatchItem` is
 * `{tokens, logits, evaluationPriority}`: it does not say which sequence an item belongs to,
 * which the batching strategy needs to put a batch in sequence-id order (batching.ts).
 * node-llama-cpp 3.21.1 builds the strategy's items from its `@internal` `_queuedDecodes`
 * list, in order, and each entry carries its `sequenceId`.
 *
 * The version is pinned (package.json), and anything unexpected here gives undefined, so the
 * batch keeps queue order rather than failing. Guards: test/unit/engineBatching.test.ts fails
 * when the pinned version changes, and test/integration/engineProcess.test.ts when a real
 * 4-sequence run finds no ids or never reorders a batch.
 */
export function queuedSequenceIds(context: LlamaContext | undefined): number[] | undefined {
  const queued = (context as unknown as { _queuedDecodes?: unknown } | undefined)?._queuedDecodes;
  if (!Array.isArray(queued)) return undefined;
  const ids = queued.map((entry) => (entry as { sequenceId?: unknown }).sequenceId);
  return ids.every((id): id is number => typeof id === "number") ? ids : undefined;
}

/** The node-llama-cpp version whose internals `queuedSequenceIds` was written against. */
export const QUEUED_DECODES_CHECKED_VERSION = "3.21.1";
