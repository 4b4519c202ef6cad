import { describe, expect, it, vi } from "vitest";
import { sleep, withAbortDeadline, withDeadline, within } from "../../common/async.js";
import { Backoff } from "../../common/backoff.js";
import { formatBytes, round } from "../../common/format.js";
import { LruMap } from "../../common/lruMap.js";

describe("Backoff", () => {
  it("doubles from the first wait up to the longest, and starts over after reset", () => {
    const backoff = new Backoff({ firstMs: 500, maxMs: 3000 });
    expect([backoff.next(), backoff.next(), backoff.next(), backoff.next(), backoff.next()]).toEqual([500, 1000, 2000, 3000, 3000]);
    backoff.reset();
    expect(backoff.next()).toBe(500);
  });

  it("spreads each wait by the jitter around its nominal value", () => {
    const low = new Backoff({ firstMs: 1000, maxMs: 8000, jitter: 0.2, random: () => 0 });
    const high = new Backoff({ firstMs: 1000, maxMs: 8000, jitter: 0.2, random: () => 1 });
    expect([low.next(), low.next()]).toEqual([800, 1600]);
    expect([high.next(), high.next()]).toEqual([1200, 2400]);
  });
});

describe("LruMap", () => {
  it("forgets the least recently used entry beyond its limit, a read counting as a use", () => {
    const map = new LruMap<string, number>(2);
    map.set("a", 1);
    map.set("b", 2);
    expect(map.get("a")).toBe(1);
    map.set("c", 3);
    expect([map.get("a"), map.get("b"), map.get("c"), map.size]).toEqual([1, undefined, 3, 2]);
  });
});

describe("promise deadlines", () => {
  it("withDeadline rejects with the message when the promise is late, and passes the value when it is not", async () => {
    vi.useFakeTimers();
    try {
      const late = withDeadline(new Promise(() => {}), 1000, "engine did not stop within 1 s");
      const onTime = withDeadline(Promise.resolve(7), 1000, "unused");
      vi.advanceTimersByTime(1000);
      await expect(late).rejects.toThrow("engine did not stop within 1 s");
      await expect(onTime).resolves.toBe(7);
    } finally {
      vi.useRealTimers();
    }
  });

  it("within gives undefined for a late promise", async () => {
    vi.useFakeTimers();
    try {
      const late = within(new Promise(() => {}), 50);
      vi.advanceTimersByTime(50);
      await expect(late).resolves.toBeUndefined();
      await expect(within(Promise.resolve("x"), 50)).resolves.toBe("x");
    } finally {
      vi.useRealTimers();
    }
  });

  it("withAbortDeadline aborts the work's signal and names what did not answer", async () => {
    vi.useFakeTimers();
    try {
      let signal: AbortSignal | undefined;
      const result = withAbortDeadline("broker", 200, (s) => ((signal = s), new Promise(() => {})));
      vi.advanceTimersByTime(200);
      await expect(result).rejects.toThrow("broker: no answer within 200 ms");
      expect(signal?.aborted).toBe(true);
    } finally {
      vi.useRealTimers();
    }
  });

  it("sleep resolves after its time", async () => {
    vi.useFakeTimers();
    try {
      let done = false;
      const slept = sleep(100).then(() => (done = true));
      vi.advanceTimersByTime(99);
      await Promise.resolve();
      expect(done).toBe(false);
      vi.advanceTimersByTime(1);
      await slept;
      expect(done).toBe(true);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe("format", () => {
  it("rounds and sizes bytes", () => {
    expect(round(1.23456)).toBe(1.23);
    expect(round(1.23456, 3)).toBe(1.235);
    expect(formatBytes(512 * 1024)).toBe("512 KiB");
    expect(formatBytes(1100 * 1024 * 1024)).toBe("1,100 MiB");
  });
});
