import { defineConfig } from "vitest/config";

// Three projects (`npm run test:unit` runs the first alone):
// - unit: pure logic, fakes and fake timers; parallel, no build, no broker.
// - integration: the real bundle, mosquitto, socat ptys and llama.cpp with generated models. Model-dependent
//   suites share one loaded model per file and must not compete for the 2 cores with each other, so files run
//   one at a time in forks (a crash in llama.cpp then fails one file instead of the runner).
// - deploy: release packs, wine and qemu; one at a time as well.
// groupOrder runs the three one after another, so unit files never share the cores with a timed integration file.
const DEPLOY = ["test/integration/deployLinux.test.ts", "test/integration/deployWine.test.ts", "test/integration/pack.test.ts"];

export default defineConfig({
  test: {
    testTimeout: 60_000,
    // `run` serves HTTP on 127.0.0.1:8080 by default; tests that want HTTP pass --http with a
    // free port (a flag beats the variable). The README and quick start tests, which strip
    // IAGENT_* from their environment as a newcomer's shell has none, still get the default.
    env: { IAGENT_HTTP: "off" },
    hookTimeout: 120_000,
    projects: [
      { extends: true, test: { name: "unit", include: ["test/unit/**/*.test.ts"], sequence: { groupOrder: 0 } } },
      {
        extends: true,
        test: {
          name: "integration",
          include: ["test/integration/**/*.test.ts"],
          exclude: DEPLOY,
          pool: "forks",
          fileParallelism: false,
          sequence: { groupOrder: 1 },
        },
      },
      {
        extends: true,
        test: {
          name: "deploy",
          include: DEPLOY,
          pool: "forks",
          fileParallelism: false,
          sequence: { groupOrder: 2 },
        },
      },
    ],
  },
});
