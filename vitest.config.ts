import { defineConfig } from "vitest/config";

// Model-dependent suites share one loaded model per file and must not compete for the
// 2 cores with each other, so files run one at a time in forks (a crash in llama.cpp
// then fails one file instead of the runner).
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    pool: "forks",
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
