import { afterEach, describe, expect, it, vi } from "vitest";
import { othersBusyCores, parseCpuSample, ThreadAdapter, threadsForContention } from "../../agent/engine/threadAdapter.js";
import type { CpuSample } from "../../agent/engine/threadAdapter.js";

const procStat = (user: number, idle: number) => `cpu  ${user} 0 0 ${idle} 0 0 0 0 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\nintr 1 2\n`;
const selfStat = (utime: number, stime: number) =>
  `4242 (node (engine) x) S 1 2 3 0 -1 4194560 100 0 0 0 ${utime} ${stime} 0 0 20 0 7 0 5 6 7`;

describe("reading CPU time", () => {
  it("takes the aggregate cpu line and this process's utime + stime, even with ')' in its name", () => {
    expect(parseCpuSample(procStat(1000, 3000), selfStat(150, 50))).toEqual({ total: 4000, idle: 3000, self: 200 });
    expect(parseCpuSample("intr 1 2\n", selfStat(1, 1))).toBeNull();
    expect(parseCpuSample(procStat(1, 1), "4242 (node) S")).toBeNull();
  });

  it("counts what everything but this process used, in cores", () => {
    // 2 cores, 1 s = 100 jiffies each: 200 elapsed, 60 idle, this process 100 → others 0.4 of a core.
    const before: CpuSample = { total: 10_000, idle: 5_000, self: 1_000 };
    const after: CpuSample = { total: 10_200, idle: 5_060, self: 1_100 };
    expect(othersBusyCores(before, after, 2)).toBeCloseTo(0.4, 5);
    expect(othersBusyCores(after, after, 2)).toBe(0);
  });
});

describe("threads under contention", () => {
  const at = (others: number, current: number) => threadsForContention({ planned: 2, cores: 2, others, current });

  it("drops a thread when others take 0.6 of a core, takes it back only at 0.3 or less", () => {
    expect(at(0, 2)).toBe(2);
    expect(at(0.5, 2)).toBe(2);
    expect(at(0.6, 2)).toBe(1);
    expect(at(1.5, 2)).toBe(1);
    expect(at(0.5, 1)).toBe(1);
    expect(at(0.31, 1)).toBe(1);
    expect(at(0.3, 1)).toBe(2);
    expect(threadsForContention({ planned: 4, cores: 8, others: 7.9, current: 4 })).toBe(1);
    expect(threadsForContention({ planned: 4, cores: 8, others: 2, current: 1 })).toBe(4);
  });
});

describe("ThreadAdapter", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("samples only while answering, applies changes, and starts from the plan after a quiet spell", () => {
    vi.useFakeTimers();
    let clock = { total: 0, idle: 0, self: 0 };
    // Each tick: 2 cores × 100 jiffies; `busyOthers` cores' worth used by other processes, this process the rest of its share.
    let busyOthers = 0;
    const advance = () => {
      clock = { total: clock.total + 200, idle: clock.idle + Math.max(0, 200 - 100 * busyOthers - 100), self: clock.self + 100 };
      return clock;
    };
    const applied: number[] = [];
    const adapter = new ThreadAdapter({
      planned: 2,
      cores: 2,
      apply: (n) => applied.push(n),
      intervalMs: 1000,
      forgetAfterMs: 5000,
      sample: () => ({ ...clock }),
    });
    adapter.begin();
    busyOthers = 1;
    advance();
    vi.advanceTimersByTime(1000);
    expect(adapter.threads).toBe(1);
    busyOthers = 0;
    advance();
    vi.advanceTimersByTime(1000);
    expect(adapter.threads).toBe(2);
    busyOthers = 1;
    advance();
    vi.advanceTimersByTime(1000);
    adapter.end();
    expect(applied).toEqual([1, 2, 1]);
    // Idle: no sampling, the decision stands for a quick next answer...
    advance();
    vi.advanceTimersByTime(3000);
    expect(applied).toEqual([1, 2, 1]);
    adapter.begin();
    expect(adapter.threads).toBe(1);
    adapter.end();
    // ...and is forgotten after the quiet spell.
    vi.advanceTimersByTime(6000);
    adapter.begin();
    expect(adapter.threads).toBe(2);
    adapter.end();
  });
});
