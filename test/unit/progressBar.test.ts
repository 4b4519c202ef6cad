import { describe, expect, it } from "vitest";
import { createProgressBar } from "../../common/progressBar.js";

function fakeStream(isTTY: boolean) {
  const writes: string[] = [];
  return { writes, stream: { isTTY, write: (chunk: string) => writes.push(chunk) } };
}

function fakeClock(start = 1_000_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

describe("createProgressBar on a non-TTY", () => {
  it("prints one plain line at each 10% step and a summary at done", () => {
    const { writes, stream } = fakeStream(false);
    const clock = fakeClock();
    const total = 200_000_000;
    const bar = createProgressBar({ label: "downloading qwen", totalBytes: total, stream, now: clock.now });
    for (let done = 0; done <= total; done += total / 100) {
      clock.advance(50);
      bar.update(done);
    }
    expect(writes).toHaveLength(10);
    expect(writes[0]).toBe("downloading qwen: 10%  20.0/200.0 MB\n");
    expect(writes[9]).toBe("downloading qwen: 100%  200.0/200.0 MB\n");
    expect(writes.every((w) => !w.includes("\r") && w.endsWith("\n"))).toBe(true);
    clock.advance(150);
    bar.done();
    expect(writes[10]).toBe("downloading qwen: done, 200.0 MB in 5.2 s\n");
    bar.update(total);
    bar.done("again");
    expect(writes).toHaveLength(11);
  });

  it("prints each step once when updates jump, and takes the total from update", () => {
    const { writes, stream } = fakeStream(false);
    const bar = createProgressBar({ label: "synth", stream });
    bar.update(5);
    expect(writes).toEqual([]);
    bar.update(35, 100);
    bar.update(36, 100);
    bar.update(99, 100);
    expect(writes).toEqual(["synth: 30%  0.0/0.0 MB\n", "synth: 90%  0.0/0.0 MB\n"]);
    bar.done("synth: wrote 1 file");
    expect(writes.at(-1)).toBe("synth: wrote 1 file\n");
  });
});

describe("createProgressBar on a TTY", () => {
  it("redraws one line in place at most every 100 ms, with percent, MB and speed", () => {
    const { writes, stream } = fakeStream(true);
    const clock = fakeClock();
    const bar = createProgressBar({ label: "dl", totalBytes: 10_000_000, stream, now: clock.now });
    bar.update(0);
    for (let i = 1; i <= 10; i++) {
      clock.advance(20);
      bar.update(i * 100_000);
    }
    // 200 ms of updates every 20 ms: the first draw and one per 100 ms after it.
    expect(writes).toHaveLength(3);
    expect(writes.every((w) => w.startsWith("\r") && !w.includes("\n"))).toBe(true);
    expect(writes.at(-1)).toMatch(/^\rdl \[##-{18}\]\s+10%  1\.0\/10\.0 MB  5\.0 MB\/s\x1b\[K$/);
    bar.update(10_000_000);
    expect(writes.at(-1)).toContain("100%");
    bar.done();
    expect(writes.at(-1)).toMatch(/^\rdl: done, 10\.0 MB in 0\.2 s\x1b\[K\n$/);
  });
});
