import { describe, expect, it } from "vitest";
import { AgentError } from "../../common/errors.js";
import { RequestQueue } from "../../agent/service/requestQueue.js";

function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

describe("RequestQueue", () => {
  it("runs at most `slots` jobs at once, in arrival order, each on its own slot", async () => {
    const queue = new RequestQueue({ slots: 2 });
    const gates = [deferred(), deferred(), deferred()];
    const started: string[] = [];
    const slotsSeen: number[] = [];
    const jobs = ["a", "b", "c"].map((name, i) =>
      queue.run(async (slot) => {
        started.push(name);
        slotsSeen.push(slot);
        await gates[i]!.promise;
        return name;
      }),
    );
    await Promise.resolve();
    expect(started).toEqual(["a", "b"]);
    expect(queue.running).toBe(2);
    expect(queue.waiting).toBe(1);
    gates[0]!.resolve();
    await jobs[0];
    await new Promise((r) => setImmediate(r));
    expect(started).toEqual(["a", "b", "c"]);
    expect(slotsSeen[2]).toBe(slotsSeen[0]);
    gates[1]!.resolve();
    gates[2]!.resolve();
    expect(await Promise.all(jobs)).toEqual(["a", "b", "c"]);
    expect(queue.running).toBe(0);
  });

  it("hands out the lowest free slot, so running slots stay 0..n-1 and one asker stays on slot 0", async () => {
    const queue = new RequestQueue({ slots: 4 });
    const gates = [deferred(), deferred(), deferred()];
    const held = gates.map((gate) => queue.run(async (slot) => (await gate.promise, slot)));
    gates[0]!.resolve();
    gates[1]!.resolve();
    expect(await held[0]).toBe(0);
    expect(await held[1]).toBe(1);
    // Slots 0 and 1 are free again, pushed after 3 in the free list: one asker after another still gets 0.
    expect(await queue.run(async (slot) => slot)).toBe(0);
    expect(await queue.run(async (slot) => slot)).toBe(0);
    const three = [deferred(), deferred(), deferred()];
    const slots = three.map((gate) => queue.run(async (slot) => (await gate.promise, slot)));
    three.forEach((gate) => gate.resolve());
    expect(await Promise.all(slots)).toEqual([0, 1, 3]);
    gates[2]!.resolve();
    expect(await held[2]).toBe(2);
  });

  it("tells waiting jobs their place in line as it changes", async () => {
    const queue = new RequestQueue({ slots: 1 });
    const gate = deferred();
    const first = queue.run(() => gate.promise);
    const positionsB: number[] = [];
    const positionsC: number[] = [];
    const b = queue.run(async () => undefined, { onPosition: (p) => positionsB.push(p) });
    const c = queue.run(async () => undefined, { onPosition: (p) => positionsC.push(p) });
    expect(positionsB).toEqual([1]);
    expect(positionsC).toEqual([2]);
    gate.resolve();
    await Promise.all([first, b, c]);
    expect(positionsC).toEqual([2, 1]);
  });

  it("refuses work beyond its capacity with IA_ERR_QUEUE_FULL", async () => {
    const queue = new RequestQueue({ slots: 1, capacity: 1 });
    const gate = deferred();
    const running = queue.run(() => gate.promise);
    const waiting = queue.run(async () => "ok");
    await expect(queue.run(async () => "too many")).rejects.toMatchObject({ code: "IA_ERR_QUEUE_FULL" });
    gate.resolve();
    await running;
    expect(await waiting).toBe("ok");
  });

  it("removes a job cancelled while it waits, and the rest move up", async () => {
    const queue = new RequestQueue({ slots: 1 });
    const gate = deferred();
    const running = queue.run(() => gate.promise);
    const controller = new AbortController();
    const cancelled = queue.run(async () => "should not run", { signal: controller.signal });
    const positions: number[] = [];
    const after = queue.run(async () => "ran", { onPosition: (p) => positions.push(p) });
    controller.abort();
    await expect(cancelled).rejects.toBeInstanceOf(AgentError);
    await expect(cancelled).rejects.toMatchObject({ code: "IA_ERR_CANCELLED" });
    expect(queue.waiting).toBe(1);
    expect(positions).toEqual([2, 1]);
    gate.resolve();
    await running;
    expect(await after).toBe("ran");
  });

  it("frees the slot when a job throws", async () => {
    const queue = new RequestQueue({ slots: 1 });
    await expect(queue.run(async () => Promise.reject(new Error("boom")))).rejects.toThrow("boom");
    expect(await queue.run(async (slot) => slot)).toBe(0);
  });

  it("rejects waiting jobs on close and refuses new ones", async () => {
    const queue = new RequestQueue({ slots: 1 });
    const gate = deferred();
    const running = queue.run(() => gate.promise);
    const waiting = queue.run(async () => "never");
    queue.close();
    await expect(waiting).rejects.toMatchObject({ code: "IA_ERR_DISPOSED" });
    await expect(queue.run(async () => "late")).rejects.toMatchObject({ code: "IA_ERR_DISPOSED" });
    gate.resolve();
    await running;
  });
});
