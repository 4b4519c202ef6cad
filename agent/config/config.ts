import { existsSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { AgentError } from "../../common/errors.js";
import { CONFIG_FILE_OPTION, SETTING_KEYS, SETTINGS } from "./settings.js";
import type { SettingDefinition, SettingKey } from "./settings.js";

export { DEFAULT_SYSTEM_PROMPT, LOG_LEVELS } from "./settings.js";

/**
 * Configuration: one schema, four layers. Precedence is flags > IAGENT_* environment >
 * config file > defaults. Each layer is validated on its own so an error can name where
 * the bad value came from (`--threads`, `IAGENT_THREADS`, or `threads in ./x.yaml`).
 * The schema and the defaults are made from the settings table (settings.ts).
 */

type ConfigShape = { [K in SettingKey]: (typeof SETTINGS)[K]["schema"] };

function shapeOf(): ConfigShape {
  const shape: Partial<Record<SettingKey, z.ZodType>> = {};
  for (const key of SETTING_KEYS) shape[key] = SETTINGS[key].schema;
  // Filled from the same table the type is mapped over, key for key.
  return shape as ConfigShape;
}

/** The schema of every setting. Keys are the camelCase form of the flag names. */
export const configSchema = z.strictObject(shapeOf());

export type AgentConfig = z.infer<typeof configSchema>;
export type ConfigKey = keyof AgentConfig;

function defaultsOf(): Partial<AgentConfig> {
  const defaults: Record<string, unknown> = {};
  for (const key of SETTING_KEYS) {
    const value = (SETTINGS[key] as SettingDefinition).default;
    if (value !== undefined) defaults[key] = value;
  }
  // Each default was checked against its own setting's schema type in the table.
  return defaults as Partial<AgentConfig>;
}

export const CONFIG_DEFAULTS: Partial<AgentConfig> = defaultsOf();

export const CONFIG_KEYS: ConfigKey[] = SETTING_KEYS;

/** `reserveMem` -> `IAGENT_RESERVE_MEM`, `topK` -> `IAGENT_TOP_K`. */
export function envNameFor(key: string): string {
  return `IAGENT_${key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;
}

/** `reserveMem` -> `--reserve-mem`. */
export function flagNameFor(key: string): string {
  return `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

export type ConfigSource = "flag" | "env" | "file" | "default";

export interface LoadedConfig {
  config: AgentConfig;
  /** Where each value came from: a console on the log's terminal quietens only a log level nobody set. */
  sources: Partial<Record<ConfigKey, ConfigSource>>;
}

export interface LoadConfigOptions {
  /** Values from the command line, keyed like the schema, plus `config` (the file); undefined means "not given". */
  flags: Record<string, unknown>;
  /** Environment to read IAGENT_* from. Defaults to `process.env`. */
  env?: NodeJS.ProcessEnv;
  /** Directory in which `./instrument-agent.yaml` is looked for. Defaults to `process.cwd()`. */
  cwd?: string;
  /** Per-command defaults that replace the global ones (e.g. `mqtt: off` for `smoke`). */
  commandDefaults?: Partial<AgentConfig>;
}

type LayerDescriber = (key: string) => string;

function validateLayer(values: Record<string, unknown>, describe: LayerDescriber, code: "IA_ERR_USAGE" | "IA_ERR_CONFIG") {
  const result = configSchema.partial().safeParse(values);
  if (result.success) return result.data as Partial<AgentConfig>;
  const problems = result.error.issues.map((issue) => {
    const key = issue.path[0];
    if (issue.code === "unrecognized_keys") {
      return `${issue.keys.map((k) => describe(k)).join(", ")}: unknown setting (known: ${CONFIG_KEYS.join(", ")})`;
    }
    const bad = typeof key === "string" ? values[key] : undefined;
    return `${describe(String(key))}: ${expectedText(issue)}, got ${JSON.stringify(bad)}`;
  });
  throw new AgentError(code, problems.join("; "));
}

function expectedText(issue: z.core.$ZodIssue): string {
  const key = String(issue.path[0]);
  const written = key in SETTINGS ? (SETTINGS[key as SettingKey] as SettingDefinition).expected : undefined;
  if (written) return written;
  if (issue.code === "invalid_value" && "values" in issue) return `expected one of ${issue.values.map(String).join(", ")}`;
  // A pattern's own message says what the value should look like ("an id without '/'...").
  if (issue.code === "invalid_format" && issue.format === "regex") return `expected ${issue.message}`;
  if (issue.code === "invalid_format")
    return `expected a valid ${issue.format === "url" ? "URL such as http://mirror.lab:8080" : issue.format}`;
  if (issue.code === "too_small") return `expected at least ${String(issue.minimum)}`;
  if (issue.code === "too_big") return `expected at most ${String(issue.maximum)}`;
  return `expected ${issue.message.replace(/^Invalid input: expected /, "")}`;
}

function readEnvLayer(env: NodeJS.ProcessEnv): Record<string, unknown> {
  const layer: Record<string, unknown> = {};
  for (const key of CONFIG_KEYS) {
    const value = env[envNameFor(key)];
    if (value !== undefined && value !== "") layer[key] = value;
  }
  return layer;
}

function readFileLayer(file: string): Record<string, unknown> {
  let text: string;
  try {
    if (statSync(file).isDirectory()) throw new Error("it is a directory");
    text = readFileSync(file, "utf8");
  } catch (error) {
    throw new AgentError("IA_ERR_CONFIG_FILE", `config file ${file}: cannot read it (${(error as Error).message})`, { cause: error });
  }
  let parsed: unknown;
  try {
    // YAML 1.2 is a superset of JSON, so one parser reads both forms.
    parsed = text.trim() === "" ? {} : parseYaml(text);
  } catch (error) {
    throw new AgentError("IA_ERR_CONFIG_FILE", `config file ${file}: not valid YAML or JSON (${(error as Error).message.split("\n")[0]})`, {
      cause: error,
    });
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new AgentError(
      "IA_ERR_CONFIG_FILE",
      `config file ${file}: expected a mapping of settings at the top level, got ${Array.isArray(parsed) ? "a list" : typeof parsed}`,
    );
  }
  return parsed as Record<string, unknown>;
}

function withoutUndefined(values: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(values).filter(([, v]) => v !== undefined));
}

/** `--config`, else IAGENT_CONFIG, else `./instrument-agent.yaml` when it exists. */
function configFileFrom(configFlag: unknown, env: NodeJS.ProcessEnv, cwd: string): string | undefined {
  const explicit = typeof configFlag === "string" ? configFlag : env[envNameFor(CONFIG_FILE_OPTION.key)];
  if (explicit !== undefined) return path.resolve(cwd, explicit);
  const defaultFile = path.resolve(cwd, "instrument-agent.yaml");
  return existsSync(defaultFile) ? defaultFile : undefined;
}

/** Reads and validates every layer, then merges them in precedence order. */
export function loadConfig(options: LoadConfigOptions): LoadedConfig {
  const env = options.env ?? process.env;
  const cwd = options.cwd ?? process.cwd();
  const { [CONFIG_FILE_OPTION.key]: configFlag, ...flags } = withoutUndefined(options.flags);

  const flagLayer = validateLayer(flags, (k) => flagNameFor(k), "IA_ERR_USAGE");
  const envLayer = validateLayer(readEnvLayer(env), (k) => envNameFor(k), "IA_ERR_CONFIG");
  const configFile = configFileFrom(configFlag, env, cwd);
  const fileLayer =
    configFile === undefined ? {} : validateLayer(readFileLayer(configFile), (k) => `${k} in ${configFile}`, "IA_ERR_CONFIG");

  const defaults = { ...CONFIG_DEFAULTS, ...options.commandDefaults };
  const sources: LoadedConfig["sources"] = {};
  const merged: Record<string, unknown> = {};
  const layers: [ConfigSource, Partial<AgentConfig>][] = [
    ["default", defaults],
    ["file", fileLayer],
    ["env", envLayer],
    ["flag", flagLayer],
  ];
  for (const [source, layer] of layers) {
    for (const [key, value] of Object.entries(layer)) {
      if (value === undefined) continue;
      merged[key] = value;
      sources[key as ConfigKey] = source;
    }
  }
  return { config: configSchema.parse(merged), sources };
}
