import { readFileSync } from "node:fs";
import path from "node:path";
import type { BatchItem, LlamaContext, Token } from "node-llama-cpp";
import { describe, expect, it } from "vitest";
import { DeltaBatcher } from "../../agent/engine/process/engineWorker.js";
import { fairShare, gatherGeneratingSequences, inSequenceOrder } from "../../agent/engine/batching.js";
import { findEngineInstall } from "../../agent/engine/preflight.js";
import { QUEUED_DECODES_CHECKED_VERSION, queuedSequenceIds } from "../../agent/engine/queuedSequenceIds.js";

const item = (tokens: number): BatchItem => ({
  tokens: Array.from({ length: tokens }, (_, i) => i as Token),
  logits: [],
  evaluationPriority: 5,
});

describe("batching the sequences that are generating", () => {
  it("waits (an empty batch) while fewer sequences are queued than are generating, then takes them all", () => {
    let generating = 4;
    const strategy = gatherGeneratingSequences(() => generating, undefined, 3);
    const three = [item(1), item(1), item(1)];
    expect(strategy({ items: three, size: 512 })).toEqual([]);
    const four = [...three, item(1)];
    expect(strategy({ items: four, size: 512 }).map((p) => p.processAmount)).toEqual([1, 1, 1, 1]);
    generating = 1;
    expect(strategy({ items: [item(1)], size: 512 })).toHaveLength(1);
  });

  it("gives up waiting after its bound, so a sequence busy elsewhere never stalls the rest", () => {
    const strategy = gatherGeneratingSequences(() => 4, undefined, 3);
    const two = [item(1), item(1)];
    for (let i = 0; i < 3; i++) expect(strategy({ items: two, size: 512 })).toEqual([]);
    expect(strategy({ items: two, size: 512 })).toHaveLength(2);
    // The count starts again for the next batch.
    expect(strategy({ items: two, size: 512 })).toEqual([]);
  });

  it("puts the batch in sequence-id order, which llama.cpp needs to run it as one graph", () => {
    const [a, b, c, d] = [item(1), item(1), item(1), item(1)];
    // Queued by sequences 1, 2, 3, 0: sequence 0 finished sampling last.
    let ids = [1, 2, 3, 0];
    const counts = { orderedBatches: 0, reorderedBatches: 0, unorderedBatches: 0 };
    const strategy = gatherGeneratingSequences(
      () => 4,
      () => ids,
      32,
      counts,
    );
    expect(strategy({ items: [a, b, c, d], size: 512 }).map((p) => p.item)).toEqual([d, a, b, c]);
    ids = [0, 1, 2, 3];
    expect(strategy({ items: [a, b, c, d], size: 512 }).map((p) => p.item)).toEqual([a, b, c, d]);
    // Counted: two batches ordered, one of them changed by the sort.
    expect(counts).toEqual({ orderedBatches: 2, reorderedBatches: 1, unorderedBatches: 0 });
    expect(inSequenceOrder([a, b, c], [7, 2, 5])).toEqual([b, c, a]);
  });

  it("keeps queue order when the ids are missing or do not match the items one to one", () => {
    const [a, b, c] = [item(1), item(1), item(1)];
    expect(inSequenceOrder([a, b, c], undefined)).toEqual([a, b, c]);
    expect(inSequenceOrder([a, b, c], [2, 1])).toEqual([a, b, c]);
    const counts = { orderedBatches: 0, reorderedBatches: 0, unorderedBatches: 0 };
    const strategy = gatherGeneratingSequences(
      () => 3,
      () => undefined,
      32,
      counts,
    );
    expect(strategy({ items: [a, b, c], size: 512 }).map((p) => p.item)).toEqual([a, b, c]);
    // A batch of one sequence has no order to keep and is not counted.
    gatherGeneratingSequences(
      () => 1,
      () => undefined,
      32,
      counts,
    )({ items: [a], size: 512 });
    expect(counts).toEqual({ orderedBatches: 0, reorderedBatches: 0, unorderedBatches: 1 });
  });

  it("fair share: every item gets an equal part of the batch and what is left goes in order", () => {
    expect(fairShare([item(300), item(1), item(300)], 512).map((p) => p.processAmount)).toEqual([300, 1, 211]);
    expect(fairShare([item(10), item(10)], 512).map((p) => p.processAmount)).toEqual([10, 10]);
    expect(fairShare([item(5), item(5), item(5)], 2).map((p) => p.processAmount)).toEqual([1, 1]);
  });
});

describe("queuedSequenceIds, the one reader of node-llama-cpp internals", () => {
  it("was checked against the node-llama-cpp that is installed", () => {
    // queuedSequenceIds.ts reads the @internal `_queuedDecodes` of exactly this version. After an
    // upgrade, read LlamaContext.dispatchPendingBatch: if the strategy's items are still built
    // from `_queuedDecodes` in order, each with its `sequenceId`, update the constant; else fix the reader.
    const { packageDir } = findEngineInstall();
    if (packageDir === null) throw new Error("node-llama-cpp is not installed: run `npm ci`");
    const installed = (JSON.parse(readFileSync(path.join(packageDir, "package.json"), "utf8")) as { version: string }).version;
    expect(installed, "node-llama-cpp changed: re-check agent/engine/queuedSequenceIds.ts").toBe(QUEUED_DECODES_CHECKED_VERSION);
  });

  it("gives the queued ids in order, and undefined for anything it does not recognise", () => {
    const context = (queued: unknown) => ({ _queuedDecodes: queued }) as unknown as LlamaContext;
    expect(queuedSequenceIds(context([{ sequenceId: 2 }, { sequenceId: 0 }, { sequenceId: 1 }]))).toEqual([2, 0, 1]);
    expect(queuedSequenceIds(context([{ sequenceId: 2 }, { id: 0 }]))).toBeUndefined();
    expect(queuedSequenceIds(context(undefined))).toBeUndefined();
    expect(queuedSequenceIds(undefined)).toBeUndefined();
  });
});

describe("DeltaBatcher", () => {
  it("sends the first text at once, then at most one message per interval, only when text comes (no timer)", () => {
    let clock = 0;
    const sent: string[] = [];
    const batcher = new DeltaBatcher(
      (text) => sent.push(text),
      100,
      () => clock,
    );
    batcher.push("A");
    expect(sent).toEqual(["A"]);
    clock = 40;
    batcher.push("b");
    clock = 80;
    batcher.push("c");
    expect(sent).toEqual(["A"]);
    clock = 100;
    batcher.push("d");
    expect(sent).toEqual(["A", "bcd"]);
    clock = 150;
    batcher.push("e");
    batcher.flush();
    expect(sent).toEqual(["A", "bcd", "e"]);
    // Nothing waiting: flush sends nothing.
    batcher.flush();
    expect(sent).toHaveLength(3);
    expect(sent.join("")).toBe("Abcde");
  });
});
