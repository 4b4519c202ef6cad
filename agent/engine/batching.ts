import type { BatchItem, CustomBatchingPrioritizationStrategy, PrioritizedBatchItem } from "node-llama-cpp";

/**
 * node-llama-cpp keeps decoding whatever is queued the moment a batch ends. With several
 * sequences generating, the one whose next token is queued a few microtasks later than the
 * others always misses the batch: with 4 requesters it decoded 84 batches of 3 instead of
 * 63 of 4, and on AVX2 a batch of 3 costs as much as 3 single tokens while a batch of 4
 * takes the llamafile kernels (measured 130 ms against 105 ms here). An empty answer
 * makes node-llama-cpp's loop yield one microtask round and look again; it is bounded, so
 * a sequence that is not about to queue (waiting for I/O) never holds the others back.
 * The public `BatchingOptions.dispatchSchedule` cannot do this wait: node-llama-cpp calls it only
 * for the first decode queued while no batch loop runs, and inside the loop
 * (`LlamaContext.dispatchPendingBatch`) the next batch is taken as soon as the last one ends.
 *
 * The batch also goes out in sequence-id order. node-llama-cpp gives every sequence its own
 * KV stream, and llama.cpp then cuts a batch into one graph run per run of consecutive,
 * increasing sequence ids: queued as 1, 2, 3, 0 (sequence 0 finished sampling last) a
 * 4-token batch ran as 3 + 1 and took 156 ms instead of 89 here (llama-batch.cpp,
 * split_equal). `sequenceIds` gives the id of each queued item, in the order of `items`,
 * or undefined when it cannot (queuedSequenceIds.ts); the items then keep queue order.
 */
export function gatherGeneratingSequences(
  generating: () => number,
  sequenceIds: () => readonly number[] | undefined = () => undefined,
  maxWaits = 32,
  counts?: BatchOrderCounts,
): CustomBatchingPrioritizationStrategy {
  let waits = 0;
  return ({ items, size }) => {
    if (items.length < generating() && waits < maxWaits) {
      waits += 1;
      return [];
    }
    waits = 0;
    const ids = sequenceIds();
    const ordered = inSequenceOrder(items, ids);
    if (counts && items.length > 1) {
      if (ids?.length !== items.length) counts.unorderedBatches += 1;
      else {
        counts.orderedBatches += 1;
        if (ordered.some((item, index) => item !== items[index])) counts.reorderedBatches += 1;
      }
    }
    return fairShare(ordered, size);
  };
}

/** Batches of several sequences: put in sequence-id order, of those the ones the sort changed, and the ones left in queue order. */
export interface BatchOrderCounts {
  orderedBatches: number;
  reorderedBatches: number;
  unorderedBatches: number;
}

/** `items` sorted by their sequence ids; unchanged when the ids do not match them one to one. */
export function inSequenceOrder(items: readonly BatchItem[], ids: readonly number[] | undefined): readonly BatchItem[] {
  if (items.length < 2 || ids?.length !== items.length) return items;
  return items
    .map((item, index) => ({ item, id: ids[index]! }))
    .sort((a, b) => a.id - b.id)
    .map((entry) => entry.item);
}

/** Every queued item gets an equal share of the batch; what is left goes in the order given (sequence order, above). */
export function fairShare(items: readonly BatchItem[], size: number): PrioritizedBatchItem[] {
  const share = Math.max(1, Math.floor(size / Math.max(1, items.length)));
  let left = size;
  const result = items.map((item) => {
    const processAmount = Math.min(item.tokens.length, share, left);
    left -= processAmount;
    return { item, processAmount };
  });
  for (const entry of result) {
    if (left <= 0) break;
    const more = Math.min(entry.item.tokens.length - entry.processAmount, left);
    entry.processAmount += more;
    left -= more;
  }
  return result.filter((entry) => entry.processAmount > 0);
}
