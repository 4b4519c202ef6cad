import { describe, expect, it } from "vitest";
import { glibcVersionOfThisProcess, MIN_GLIBC, olderThanMinGlibc } from "../../agent/host/glibc.js";

describe("glibc", () => {
  it("compares versions against the prebuilt binaries' minimum, minor by number", () => {
    expect(MIN_GLIBC).toEqual([2, 34]);
    expect(olderThanMinGlibc("2.31")).toBe(true);
    expect(olderThanMinGlibc("1.99")).toBe(true);
    expect(olderThanMinGlibc("2.34")).toBe(false);
    expect(olderThanMinGlibc("2.100")).toBe(false);
    expect(olderThanMinGlibc("3.0")).toBe(false);
  });

  it("reads this process's glibc from Node's report (this test host is glibc Linux)", () => {
    expect(glibcVersionOfThisProcess()).toMatch(/^\d+\.\d+/);
  });
});
