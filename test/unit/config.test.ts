import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { CONFIG_DEFAULTS, configSchema, envNameFor, flagNameFor, loadConfig } from "../../agent/config/config.js";
import type { ConfigKey } from "../../agent/config/config.js";
import { SETTINGS } from "../../agent/config/settings.js";
import type { SettingDefinition } from "../../agent/config/settings.js";
import { AgentError } from "../../common/errors.js";

function dirWith(files: Record<string, string>): string {
  const dir = mkdtempSync(path.join(tmpdir(), "iagent-config-"));
  for (const [name, text] of Object.entries(files)) writeFileSync(path.join(dir, name), text);
  return dir;
}

function failure(run: () => unknown): AgentError {
  try {
    run();
  } catch (error) {
    if (error instanceof AgentError) return error;
    throw error;
  }
  throw new Error("expected an AgentError");
}

describe("config precedence", () => {
  it("uses defaults when nothing is given", () => {
    const { config, sources } = loadConfig({ flags: {}, env: {}, cwd: dirWith({}) });
    expect(config.threads).toBe("auto");
    expect(config.maxTokens).toBe(512);
    expect(config.modelsDir).toBe("./models-data");
    expect(sources.threads).toBe("default");
  });

  it("ranks flags over environment over file over defaults", () => {
    const cwd = dirWith({ "instrument-agent.yaml": "threads: 1\nmaxTokens: 100\ncontext: 1024\nlogLevel: debug\n" });
    const env = { IAGENT_THREADS: "2", IAGENT_MAX_TOKENS: "200" };
    const { config, sources } = loadConfig({ flags: { threads: "3" }, env, cwd });
    expect(config.threads).toBe(3);
    expect(sources.threads).toBe("flag");
    expect(config.maxTokens).toBe(200);
    expect(sources.maxTokens).toBe("env");
    expect(config.context).toBe(1024);
    expect(sources.context).toBe("file");
    expect(config.logLevel).toBe("debug");
    expect(config.mlock).toBe("auto");
    expect(sources.mlock).toBe("default");
  });

  it("reads a JSON config named by --config and by IAGENT_CONFIG", () => {
    const cwd = dirWith({ "a.json": '{"temperature": 0.2}', "b.json": '{"temperature": 0.4}' });
    expect(loadConfig({ flags: { config: "a.json" }, env: { IAGENT_CONFIG: "b.json" }, cwd }).config.temperature).toBe(0.2);
    expect(loadConfig({ flags: {}, env: { IAGENT_CONFIG: "b.json" }, cwd }).config.temperature).toBe(0.4);
  });

  it("lets a command's defaults replace the global ones but not what the user set", () => {
    const cwd = dirWith({});
    expect(loadConfig({ flags: {}, env: {}, cwd, commandDefaults: { logLevel: "warn" } }).config.logLevel).toBe("warn");
    expect(loadConfig({ flags: { logLevel: "debug" }, env: {}, cwd, commandDefaults: { logLevel: "warn" } }).config.logLevel).toBe("debug");
  });
});

describe("config errors name the source, the key and what was expected", () => {
  it("a bad flag value", () => {
    const error = failure(() => loadConfig({ flags: { threads: "many" }, env: {}, cwd: dirWith({}) }));
    expect(error.code).toBe("IA_ERR_USAGE");
    expect(error.exitCode).toBe(2);
    expect(error.message).toContain("--threads");
    expect(error.message).toContain("'auto'");
    expect(error.message).toContain('"many"');
  });

  it("the GPU and NUMA settings: CPU by default, bad values named", () => {
    const { config } = loadConfig({ flags: {}, env: {}, cwd: dirWith({}) });
    expect({ gpu: config.gpu, gpuLayers: config.gpuLayers, numa: config.numa }).toEqual({ gpu: "off", gpuLayers: "auto", numa: "off" });
    expect(
      loadConfig({ flags: { gpu: "auto", gpuLayers: "20" }, env: { IAGENT_NUMA: "distribute" }, cwd: dirWith({}) }).config,
    ).toMatchObject({ gpu: "auto", gpuLayers: 20, numa: "distribute" });
    const layers = failure(() => loadConfig({ flags: { gpuLayers: "lots" }, env: {}, cwd: dirWith({}) }));
    expect(layers.exitCode).toBe(2);
    expect(layers.message).toContain("--gpu-layers");
    expect(layers.message).toContain('"lots"');
    const gpu = failure(() => loadConfig({ flags: {}, env: { IAGENT_GPU: "cuda" }, cwd: dirWith({}) }));
    expect(gpu.message).toContain("IAGENT_GPU");
    expect(gpu.message).toContain("auto, off");
  });

  it("a bad environment value", () => {
    const error = failure(() => loadConfig({ flags: {}, env: { IAGENT_MLOCK: "maybe" }, cwd: dirWith({}) }));
    expect(error.code).toBe("IA_ERR_CONFIG");
    expect(error.message).toContain("IAGENT_MLOCK");
    expect(error.message).toContain("on, off, auto");
  });

  it("an unknown key and a bad value in the file", () => {
    const cwd = dirWith({ "instrument-agent.yaml": "thread: 2\n", "bad.yaml": "topP: 7\n" });
    const unknown = failure(() => loadConfig({ flags: {}, env: {}, cwd }));
    expect(unknown.code).toBe("IA_ERR_CONFIG");
    expect(unknown.message).toContain("thread in");
    expect(unknown.message).toContain("unknown setting");
    const bad = failure(() => loadConfig({ flags: { config: "bad.yaml" }, env: {}, cwd }));
    expect(bad.message).toMatch(/topP in .*bad\.yaml: expected at most 1, got 7/);
  });

  it("a value that breaks a pattern: the pattern's own words say what was expected", () => {
    const id = failure(() => loadConfig({ flags: { agentId: "lab/1" }, env: {}, cwd: dirWith({}) }));
    expect(id.message).toBe(`--agent-id: expected an id without '/', '#', '+' or spaces, got "lab/1"`);
    const prefix = failure(() => loadConfig({ flags: {}, env: { IAGENT_MQTT_PREFIX: "$SYS" }, cwd: dirWith({}) }));
    expect(prefix.message).toContain("IAGENT_MQTT_PREFIX: expected a topic prefix without '#', '+', spaces or a leading '$'");
  });

  it("a file that is not YAML, not a mapping, or missing", () => {
    const cwd = dirWith({ "broken.yaml": "threads: [1, 2\n", "list.yaml": "- 1\n- 2\n" });
    expect(failure(() => loadConfig({ flags: { config: "broken.yaml" }, env: {}, cwd })).code).toBe("IA_ERR_CONFIG_FILE");
    expect(failure(() => loadConfig({ flags: { config: "list.yaml" }, env: {}, cwd })).message).toContain("a list");
    const missing = failure(() => loadConfig({ flags: { config: "nope.yaml" }, env: {}, cwd }));
    expect(missing.code).toBe("IA_ERR_CONFIG_FILE");
    expect(missing.message).toContain("nope.yaml");
  });
});

describe("the settings table", () => {
  it("is where the schema and the defaults come from", () => {
    expect(Object.keys(configSchema.shape)).toEqual(Object.keys(SETTINGS));
    for (const [key, definition] of Object.entries(SETTINGS)) {
      const fallback: unknown = (definition as SettingDefinition).default;
      expect(CONFIG_DEFAULTS[key as ConfigKey], key).toEqual(fallback);
      // A setting without a default may be left unset; one with a default never is.
      expect(configSchema.shape[key as ConfigKey].safeParse(undefined).success, key).toBe(fallback === undefined);
    }
  });
});

describe("names", () => {
  it("maps keys to IAGENT_ variables and flags", () => {
    expect(envNameFor("reserveMem")).toBe("IAGENT_RESERVE_MEM");
    expect(envNameFor("topK")).toBe("IAGENT_TOP_K");
    expect(flagNameFor("maxTokens")).toBe("--max-tokens");
  });
});
