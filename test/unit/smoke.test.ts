import { describe, expect, it } from "vitest";
import { CONFIG_DEFAULTS } from "../../agent/config/config.js";
import type { AgentConfig } from "../../agent/config/config.js";
import { AgentError } from "../../common/errors.js";
import { createLogger } from "../../common/logger.js";
import { chooseEngine, localBuildCommand } from "../../agent/engine/preflight.js";
import { formatSpeed, renderSmoke, runSmoke } from "../../agent/diagnostics/smoke.js";
import type { SmokeProbes } from "../../agent/diagnostics/smoke.js";
import { probeHost } from "../../agent/host/hostProbe.js";
import { synthModel, tempDir } from "../helpers/models.js";

const install = { packageDir: "/opt/instrument-agent/node_modules/node-llama-cpp", localBuild: null };

describe("engine preflight", () => {
  it("refuses glibc 2.31 before loading and names the one local build command", () => {
    const refuse = () => chooseEngine({ platform: "linux", glibcVersion: "2.31", windowsVersion: null }, install);
    expect(refuse).toThrow(AgentError);
    expect(refuse).toThrow(/glibc 2\.31 is older than 2\.34/);
    expect(refuse).toThrow(localBuildCommand(install.packageDir));
    expect(refuse).toThrow(/needs cmake 3\.16\+, make, g\+\+, git and the npm that comes with Node\.js; no download/);
    expect(localBuildCommand(install.packageDir)).toBe(
      "node /opt/instrument-agent/node_modules/node-llama-cpp/dist/cli/cli.js source download --gpu false --noUsageExample",
    );
    // An object matcher, not a try/catch: if nothing were thrown, this would fail too.
    expect(refuse).toThrow(expect.objectContaining({ code: "IA_ERR_GLIBC_TOO_OLD" }));
  });

  it("uses a local build when one exists, and the prebuilt binaries on glibc 2.34+", () => {
    expect(
      chooseEngine({ platform: "linux", glibcVersion: "2.31", windowsVersion: null }, { ...install, localBuild: "linux-x64-abc" }),
    ).toEqual({ kind: "localBuild", folder: "linux-x64-abc" });
    expect(chooseEngine({ platform: "linux", glibcVersion: "2.34", windowsVersion: null }, install)).toEqual({ kind: "prebuilt" });
    expect(chooseEngine({ platform: "linux", glibcVersion: "2.36", windowsVersion: null }, install)).toEqual({ kind: "prebuilt" });
  });

  it("refuses Windows 7 and 8.1 with a pointer to a host beside the instrument, and takes Windows 10 and 11", () => {
    for (const version of ["6.1.7601", "6.3.9600"]) {
      expect(() => chooseEngine({ platform: "win32", glibcVersion: null, windowsVersion: version }, install)).toThrow(
        /beside the instrument/,
      );
    }
    expect(chooseEngine({ platform: "win32", glibcVersion: null, windowsVersion: "10.0.22631" }, install)).toEqual({ kind: "prebuilt" });
  });
});

describe("smoke report", () => {
  const config = { ...CONFIG_DEFAULTS, mqtt: "mqtt://127.0.0.1:1", mlock: "off" } as AgentConfig;
  const logger = createLogger({ level: "silent" });

  function probes(overrides: Partial<SmokeProbes>): SmokeProbes {
    return {
      probeHost: () => probeHost(),
      loadRuntime: () => Promise.reject(new AgentError("IA_ERR_MODEL_LOAD", "x.gguf: llama.cpp could not load the model")),
      mqttRoundTrip: () => Promise.reject(new Error("MQTT mqtt://127.0.0.1:1: connect ECONNREFUSED")),
      serialOpens: () => Promise.resolve("ok"),
      instrumentIdn: () => Promise.resolve("ok"),
      ...overrides,
    };
  }

  it("prints speed as the field notes do", () => {
    expect(formatSpeed(5.549)).toBe("5.55 tokens/s");
    expect(formatSpeed(12)).toBe("12.00 tokens/s");
  });

  it("a failing load is a failed check, later steps say why they did not run, and nothing throws", async () => {
    const model = await synthModel(tempDir("iagent-smoke-unit-"));
    const report = await runSmoke({ config: { ...config, model }, logger, probes: probes({}) });
    expect(report.ok).toBe(false);
    const byName = Object.fromEntries(report.checks.map((c) => [c.name, c]));
    expect(byName["host probe"]?.ok).toBe(true);
    expect(byName["model file valid"]?.ok).toBe(true);
    expect(byName["model loads"]?.ok).toBe(false);
    expect(byName["model loads"]?.detail).toContain("IA_ERR_MODEL_LOAD");
    expect(byName["generates 16 tokens"]?.detail).toBe("not run: the model did not load");
    expect(byName["MQTT round trip"]?.detail).toContain("ECONNREFUSED");
    expect(report.tokensPerSecond).toBeNull();
    const text = renderSmoke(report);
    expect(text).toMatch(/^FAIL\s+model loads/m);
    expect(text).toContain(
      "smoke: FAILED 5 of 7 checks (model loads, generates 16 tokens, tokens/s above 1, mlock as planned, MQTT round trip); 2 passed",
    );
  });

  it("an invalid model file fails its own check with the file's error code", async () => {
    const report = await runSmoke({ config: { ...config, model: "/nonexistent/x.gguf", mqtt: "off" }, logger, probes: probes({}) });
    expect(report.checks.map((c) => [c.name, c.ok])).toEqual([
      ["host probe", true],
      ["model file valid", false],
      ["model loads", false],
      ["generates 16 tokens", false],
      ["tokens/s above 1", false],
      ["mlock as planned", false],
    ]);
    expect(report.checks[1]?.detail).toMatch(/^IA_ERR_MODEL_NOT_FOUND: /);
  });
});
