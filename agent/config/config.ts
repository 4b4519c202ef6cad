import { existsSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { GENERATION_PARAM_RANGES } from "../engine/modelRuntime.js";
import { AgentError } from "../../common/errors.js";

/**
 * Configuration: one schema, four layers. Precedence is flags > IAGENT_* environment >
 * config file > defaults. Each layer is validated on its own so an error can name where
 * the bad value came from (`--threads`, `IAGENT_THREADS`, or `threads in ./x.yaml`).
 */

const NUMERIC = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;

/** Strings from flags and the environment become numbers when they look like one. */
function numberFromString(value: unknown): unknown {
  return typeof value === "string" && NUMERIC.test(value.trim()) ? Number(value) : value;
}

function booleanFromString(value: unknown): unknown {
  if (typeof value !== "string") return value;
  const lowered = value.trim().toLowerCase();
  if (["1", "true", "yes", "on"].includes(lowered)) return true;
  if (["0", "false", "no", "off"].includes(lowered)) return false;
  return value;
}

const wholeNumber = (min: number, max = Number.MAX_SAFE_INTEGER) => z.preprocess(numberFromString, z.number().int().min(min).max(max));
const realNumber = (min: number, max: number) => z.preprocess(numberFromString, z.number().min(min).max(max));
const paramNumber = (name: keyof typeof GENERATION_PARAM_RANGES) => {
  const { min, max, integer } = GENERATION_PARAM_RANGES[name];
  return integer ? wholeNumber(min, max) : realNumber(min, max);
};
const autoOr = <T extends z.ZodType>(inner: T) => z.union([z.literal("auto"), inner]);
const flag = z.preprocess(booleanFromString, z.boolean());
/** A list from a file, or a comma-separated string from a flag or the environment. */
const stringList = z.preprocess(
  (value) =>
    typeof value === "string"
      ? value
          .split(",")
          .map((s) => s.trim())
          .filter((s) => s !== "")
      : value,
  z.array(z.string().min(1)),
);

export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;

export const DEFAULT_SYSTEM_PROMPT =
  "You are an assistant beside a lab instrument. Answer briefly and precisely. " + "你是实验仪器旁的助手，请简明准确地回答。";

/** The schema of every setting. Keys are the camelCase form of the flag names. */
export const configSchema = z.strictObject({
  /** Model path, catalog id, hf: URI, http(s) URL or `demo`. Defaults to the plan's choice. */
  model: z.string().min(1).optional(),
  /** Where models are stored. Defaults to `./models-data`. */
  modelsDir: z.string().min(1),
  /** The agent's own data: the managed mosquitto's persistence (and, next, the question journal). Defaults to `./state-data`. */
  stateDir: z.string().min(1),
  /** Base URL that replaces https://huggingface.co for hf: downloads (a lab mirror). Defaults to none. */
  modelMirror: z.url().optional(),
  /** Generation threads. Defaults to `auto` (physical cores minus the reserve). */
  threads: autoOr(wholeNumber(1, 256)),
  /** Pin the model in RAM. Defaults to `auto` (only when it fits and the memlock limit allows). */
  mlock: z.enum(["on", "off", "auto"]),
  /** Context size in tokens. Defaults to `auto`. */
  context: autoOr(wholeNumber(256, 1_048_576)),
  /** Parallel sequences (answers generated at once). Defaults to `auto`. */
  parallel: autoOr(wholeNumber(1, 16)),
  /** Memory left for the instrument and OS, MiB. Defaults to the shape's reserve. */
  reserveMem: wholeNumber(0).optional(),
  /** Cores left for the instrument and OS. Defaults to the shape's reserve. */
  reserveCores: wholeNumber(0, 256).optional(),
  /** Where the agent runs: on the instrument's own PC or on a host beside it. Defaults to `beside-instrument`. */
  shape: z.enum(["on-instrument", "beside-instrument"]),
  /** This process's CPU priority: `auto` lowers it on the instrument's own PC. Defaults to `auto`. */
  priority: z.enum(["auto", "low", "normal"]),
  /** Where llama.cpp runs: its own engine process (one libuv thread, see engineProcess.ts) or this one. Defaults to `process`. */
  engine: z.enum(["process", "inline"]),
  /** GPU use: `off` (CPU only) or `auto` (node-llama-cpp picks CUDA, Vulkan or Metal when present). Defaults to `off`. */
  gpu: z.enum(["auto", "off"]),
  /** Layers offloaded to the GPU with `gpu: auto`; `auto` fits them to free VRAM (0 with `gpu: off`). Defaults to `auto`. */
  gpuLayers: autoOr(wholeNumber(0, 1024)),
  /** llama.cpp's NUMA policy on multi-socket hosts. Defaults to `off` (the OS decides). */
  numa: z.enum(["off", "distribute", "isolate"]),
  /** Broker URL, `embedded` or `off`. Defaults to `embedded` for `run`. */
  mqtt: z.string().min(1),
  /** MQTT identity. Defaults to the host name. */
  agentId: z
    .string()
    .regex(/^[^/#+\s]+$/, "an id without '/', '#', '+' or spaces")
    .optional(),
  /** Fleet group whose shared ask topic this agent also serves. Defaults to off. */
  fleet: z
    .string()
    .regex(/^[^/#+\s]+$/, "a group name without '/', '#', '+' or spaces")
    .optional(),
  /** First level of every MQTT topic: `<prefix>/<agentId>/ask`. Defaults to `instrument-agent`. */
  mqttPrefix: z.string().regex(/^[^#+\s$][^#+\s]*$/, "a topic prefix without '#', '+', spaces or a leading '$'"),
  /** MQTT protocol spoken to an external broker: `5` or `3.1.1` (the embedded broker is always 3.1.1). Defaults to `5`. */
  mqttVersion: z.preprocess((value) => (typeof value === "number" ? String(value) : value), z.enum(["5", "3.1.1"])),
  /** User name for the broker; for the embedded broker, the one login it accepts. Defaults to none. */
  mqttUsername: z.string().min(1).optional(),
  /** Password for the broker (prefer IAGENT_MQTT_PASSWORD or the config file to a flag); never logged. Defaults to none. */
  mqttPassword: z.string().min(1).optional(),
  /** CA certificate file (PEM) that signed the broker's certificate, for `mqtts://`. Defaults to the system's CAs. */
  mqttCa: z.string().min(1).optional(),
  /** Client certificate file (PEM) for brokers that require one. Defaults to none. */
  mqttCert: z.string().min(1).optional(),
  /** Private key file (PEM) of the client certificate. Defaults to none. */
  mqttKey: z.string().min(1).optional(),
  /** Where the embedded broker listens, `host:port`; beyond loopback it needs mqttUsername and mqttPassword. Defaults to `127.0.0.1:1883`. */
  mqttBind: z.string().regex(/^(\[[0-9a-fA-F:]+\]|[^\s:]+):\d{1,5}$/, "host:port, e.g. 127.0.0.1:1883"),
  /** Largest MQTT request payload read, bytes. Defaults to `65536`. */
  mqttPayloadLimit: wholeNumber(64, 16 * 1024 * 1024),
  /** Questions a minute one requester (reply topic) may ask; 0 is no limit. Defaults to `60`. */
  mqttRateLimit: wholeNumber(0, 1_000_000),
  /** Seconds between `<base>/health` messages. Defaults to `60`. */
  mqttHealthInterval: wholeNumber(1, 86_400),
  /** Serial console port or `off`. Defaults to `off`. */
  serial: z.string().min(1),
  /** Serial speed. Defaults to 115200. */
  baud: wholeNumber(300, 921_600),
  /** Serial data bits, 5 to 8. Defaults to `8`. */
  serialDataBits: wholeNumber(5, 8),
  /** Serial parity; `mark` and `space` only on Windows. Defaults to `none`. */
  serialParity: z.enum(["none", "even", "odd", "mark", "space"]),
  /** Serial stop bits: 1, 1.5 (Windows only) or 2. Defaults to `1`. */
  serialStopBits: z.preprocess(numberFromString, z.union([z.literal(1), z.literal(1.5), z.literal(2)])),
  /** Serial flow control. Defaults to `none`. */
  serialFlow: z.enum(["none", "rtscts", "xonxoff"]),
  /** What the serial terminal shows: `utf8`, or `ascii` (other characters become `?`). Defaults to `utf8`. */
  serialCharset: z.enum(["utf8", "ascii"]),
  /** Break answer lines on the serial console at this many columns; 0 is off. Defaults to `0`. */
  serialWrap: wholeNumber(0, 1000),
  /** Most characters in one line typed on the serial console. Defaults to `1000`. */
  serialLineLimit: wholeNumber(16, 100_000),
  /** Firmware bridge URI or `off`. Defaults to `off`. */
  instrument: z.string().min(1),
  /** Extra read-only SCPI queries for the firmware bridge's allowlist (e.g. `:SENS:DET:TRAC?`). Defaults to `[]`. */
  scpiAllow: stringList,
  /** How long the instrument may take to reply to one SCPI query, ms. Defaults to `3000`. */
  scpiTimeout: wholeNumber(50, 600_000),
  /** System prompt. Defaults to a short bilingual prompt. */
  system: z.string(),
  /** Sampling temperature; 0 is greedy. Defaults to the model's default. */
  temperature: paramNumber("temperature").optional(),
  /** Top-k sampling. Defaults to the model's default. */
  topK: paramNumber("topK").optional(),
  /** Top-p sampling. Defaults to the model's default. */
  topP: paramNumber("topP").optional(),
  /** Repeat penalty (1 = off). Defaults to the model's default. */
  repeatPenalty: paramNumber("repeatPenalty").optional(),
  /** Most tokens in one answer. Defaults to 512. */
  maxTokens: paramNumber("maxTokens"),
  /** Sampling seed. Defaults to random. */
  seed: paramNumber("seed").optional(),
  /** Pino log level. Defaults to `info`. */
  logLevel: z.enum(LOG_LEVELS),
  /** Log file; logs go to stderr when unset. Defaults to stderr. */
  logFile: z.string().min(1).optional(),
  /** Machine-readable output. Defaults to off. */
  json: flag,
  /** Colour on a TTY. Defaults to on when stdout is a TTY and NO_COLOR is unset. */
  color: flag.optional(),
});

export type AgentConfig = z.infer<typeof configSchema>;
export type ConfigKey = keyof AgentConfig;

export const CONFIG_DEFAULTS: Partial<AgentConfig> = {
  modelsDir: "./models-data",
  stateDir: "./state-data",
  threads: "auto",
  mlock: "auto",
  context: "auto",
  parallel: "auto",
  shape: "beside-instrument",
  priority: "auto",
  engine: "process",
  gpu: "off",
  gpuLayers: "auto",
  numa: "off",
  mqtt: "embedded",
  mqttPrefix: "instrument-agent",
  mqttVersion: "5",
  mqttBind: "127.0.0.1:1883",
  mqttPayloadLimit: 65_536,
  mqttRateLimit: 60,
  mqttHealthInterval: 60,
  serial: "off",
  baud: 115200,
  serialDataBits: 8,
  serialParity: "none",
  serialStopBits: 1,
  serialFlow: "none",
  serialCharset: "utf8",
  serialWrap: 0,
  serialLineLimit: 1000,
  instrument: "off",
  scpiAllow: [],
  scpiTimeout: 3000,
  system: DEFAULT_SYSTEM_PROMPT,
  maxTokens: 512,
  logLevel: "info",
  json: false,
};

export const CONFIG_KEYS = Object.keys(configSchema.shape) as ConfigKey[];

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
  /** Where each value came from, for `probe` and for error messages. */
  sources: Partial<Record<ConfigKey, ConfigSource>>;
  /** The config file read, if any. */
  configFile: string | undefined;
}

export interface LoadConfigOptions {
  /** Values from the command line, keyed like the schema; undefined means "not given". */
  flags: Record<string, unknown>;
  /** Environment to read IAGENT_* from. Defaults to `process.env`. */
  env?: NodeJS.ProcessEnv;
  /** Directory in which `./instrument-agent.yaml` is looked for. Defaults to `process.cwd()`. */
  cwd?: string;
  /** Per-command defaults that replace the global ones (e.g. `mqtt: off` for `ask`). */
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
  if (key === "threads") return "expected a whole number from 1 to 256 or 'auto'";
  if (key === "context") return "expected a whole number of tokens from 256 or 'auto'";
  if (key === "parallel") return "expected a whole number from 1 to 16 or 'auto'";
  if (key === "gpuLayers") return "expected a whole number of layers from 0 to 1024 or 'auto'";
  if (key === "serialStopBits") return "expected 1, 1.5 or 2";
  if (issue.code === "invalid_value" && "values" in issue) return `expected one of ${issue.values.map(String).join(", ")}`;
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

/** Reads and validates every layer, then merges them in precedence order. */
export function loadConfig(options: LoadConfigOptions): LoadedConfig {
  const env = options.env ?? process.env;
  const cwd = options.cwd ?? process.cwd();
  const flags = withoutUndefined(options.flags);
  const configFlag = flags.config;
  delete flags.config;

  const flagLayer = validateLayer(flags, (k) => flagNameFor(k), "IA_ERR_USAGE");
  const envLayer = validateLayer(readEnvLayer(env), (k) => envNameFor(k), "IA_ERR_CONFIG");

  const explicitFile = (configFlag as string | undefined) ?? env.IAGENT_CONFIG;
  const defaultFile = path.resolve(cwd, "instrument-agent.yaml");
  const configFile = explicitFile !== undefined ? path.resolve(cwd, explicitFile) : existsSync(defaultFile) ? defaultFile : undefined;
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
  const config = configSchema.parse(merged);
  return { config, sources, configFile };
}
