import { z } from "zod";
import { HTTP_SETTINGS } from "./httpSettings.js";
import { INSTRUMENT_SETTINGS } from "./instrumentSettings.js";
import { SPEED_SETTINGS } from "./speedSettings.js";
import { setting } from "./settingDefinition.js";
import type { SettingDefinition, SettingGroup } from "./settingDefinition.js";
import { autoOr, choicesOf, numberFromString, onOff, paramNumber, topicLevel, wholeNumber } from "./settingValues.js";

export type { SettingDefinition, SettingGroup } from "./settingDefinition.js";

/**
 * Every setting, written once: its value type and range, its default and its help. The key
 * is the config file key; the flag (`--reserve-mem`) and the variable (`IAGENT_RESERVE_MEM`)
 * follow from it (README, Settings). The config schema, the defaults, the command-line
 * options and their help text are all made from this table, so they cannot drift apart.
 */

export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;

export const DEFAULT_SYSTEM_PROMPT =
  "You are an assistant beside a lab instrument. Answer briefly and precisely. " + "你是实验仪器旁的助手，请简明准确地回答。";

const DEPENDS_ON_SHAPE = "depends on --shape";
const MODEL_DEFAULT = "the model's";

export const SETTINGS = {
  logLevel: setting({
    group: "log",
    arg: "<level>",
    schema: z.enum(LOG_LEVELS),
    default: "info",
    help: LOG_LEVELS.join("|"),
  }),
  logFile: setting({
    group: "log",
    arg: "<file>",
    schema: z.string().min(1).optional(),
    defaultText: "stderr",
    help: "append JSON log lines to this file",
  }),

  model: setting({
    group: "model",
    arg: "<path|catalog-id|hf:uri|url|demo>",
    schema: z.string().min(1).optional(),
    defaultText: "a catalog model present in --models-dir, else the plan's choice",
    help: "the model; `demo` makes a tiny scripted model, offline, whose one answer says what it is and how to get a real one",
  }),
  modelsDir: setting({
    group: "model",
    arg: "<dir>",
    schema: z.string().min(1),
    default: "./models-data",
    help: "where models are stored",
  }),
  modelMirror: setting({
    group: "model",
    arg: "<url>",
    schema: z.url().optional(),
    help: "HTTP base that replaces https://huggingface.co for downloads (lab mirror)",
  }),

  ...SPEED_SETTINGS,

  threads: setting({
    group: "host",
    arg: "<n|auto>",
    schema: autoOr(wholeNumber(1, 256)),
    default: "auto",
    help: "generation threads",
    expected: "expected a whole number from 1 to 256 or 'auto'",
  }),
  mlock: setting({ group: "host", schema: z.enum(["on", "off", "auto"]), default: "auto", help: "pin the model in RAM" }),
  context: setting({
    group: "host",
    arg: "<n|auto>",
    schema: autoOr(wholeNumber(256, 1_048_576)),
    default: "auto",
    help: "context size in tokens",
    expected: "expected a whole number of tokens from 256 or 'auto'",
  }),
  parallel: setting({
    group: "host",
    arg: "<n|auto>",
    schema: autoOr(wholeNumber(1, 16)),
    default: "auto",
    help: "answers generated at once, one context sequence each",
    expected: "expected a whole number from 1 to 16 or 'auto'",
  }),
  reserveMem: setting({
    group: "host",
    arg: "<MiB>",
    schema: wholeNumber(0).optional(),
    defaultText: DEPENDS_ON_SHAPE,
    help: "memory left for the instrument and OS",
  }),
  reserveCores: setting({
    group: "host",
    arg: "<n>",
    schema: wholeNumber(0, 256).optional(),
    defaultText: DEPENDS_ON_SHAPE,
    help: "cores left for the instrument and OS",
  }),
  shape: setting({
    group: "host",
    schema: z.enum(["on-instrument", "beside-instrument"]),
    default: "beside-instrument",
    help: "where the agent runs",
  }),
  priority: setting({
    group: "host",
    schema: z.enum(["auto", "low", "normal"]),
    default: "auto",
    help: "this process's CPU priority; auto lowers it with --shape on-instrument",
  }),
  engine: setting({
    group: "host",
    schema: z.enum(["process", "inline"]),
    default: "process",
    help: "run llama.cpp in its own engine process, or inside this one",
  }),
  gpu: setting({
    group: "host",
    schema: z.enum(["auto", "off"]),
    default: "off",
    help: "use a GPU if node-llama-cpp finds one (CUDA, Vulkan, Metal), or CPU only",
  }),
  gpuLayers: setting({
    group: "host",
    arg: "<n|auto>",
    schema: autoOr(wholeNumber(0, 1024)),
    default: "auto",
    help: "layers offloaded to the GPU with --gpu auto; auto: as many as fit in free VRAM",
    expected: "expected a whole number of layers from 0 to 1024 or 'auto'",
  }),
  numa: setting({
    group: "host",
    schema: z.enum(["off", "distribute", "isolate"]),
    default: "off",
    help: "llama.cpp's NUMA policy on multi-socket hosts",
  }),

  system: setting({
    group: "generation",
    arg: "<text>",
    schema: z.string(),
    default: DEFAULT_SYSTEM_PROMPT,
    defaultText: "a short bilingual prompt",
    help: "system prompt",
  }),
  temperature: setting({
    group: "generation",
    arg: "<t>",
    schema: paramNumber("temperature").optional(),
    defaultText: MODEL_DEFAULT,
    help: "sampling temperature, 0 = greedy",
  }),
  topK: setting({
    group: "generation",
    arg: "<k>",
    schema: paramNumber("topK").optional(),
    defaultText: MODEL_DEFAULT,
    help: "top-k sampling",
  }),
  topP: setting({
    group: "generation",
    arg: "<p>",
    schema: paramNumber("topP").optional(),
    defaultText: MODEL_DEFAULT,
    help: "top-p sampling",
  }),
  repeatPenalty: setting({
    group: "generation",
    arg: "<r>",
    schema: paramNumber("repeatPenalty").optional(),
    defaultText: MODEL_DEFAULT,
    help: "repeat penalty, 1 = off",
  }),
  maxTokens: setting({
    group: "generation",
    arg: "<n>",
    schema: paramNumber("maxTokens"),
    default: 512,
    help: "most tokens in one answer",
  }),
  seed: setting({ group: "generation", arg: "<n>", schema: paramNumber("seed").optional(), defaultText: "random", help: "sampling seed" }),

  mqtt: setting({ group: "mqtt", arg: "<url|embedded|off>", schema: z.string().min(1), default: "embedded", help: "MQTT broker" }),
  agentId: setting({ group: "mqtt", arg: "<id>", schema: topicLevel("an id").optional(), defaultText: "host name", help: "MQTT identity" }),
  fleet: setting({
    group: "mqtt",
    arg: "<group>",
    schema: topicLevel("a group name").optional(),
    help: "also take questions from this fleet group's shared topic",
  }),
  mqttPrefix: setting({
    group: "mqtt",
    arg: "<prefix>",
    schema: z.string().regex(/^[^#+\s$][^#+\s]*$/, "a topic prefix without '#', '+', spaces or a leading '$'"),
    default: "instrument-agent",
    help: "first level of every MQTT topic",
  }),
  mqttVersion: setting({
    group: "broker",
    schema: z.preprocess((value) => (typeof value === "number" ? String(value) : value), z.enum(["5", "3.1.1"])),
    default: "5",
    help: "MQTT protocol for an external broker; the aedes fallback broker speaks 3.1.1",
  }),
  mqttUsername: setting({
    group: "broker",
    arg: "<name>",
    schema: z.string().min(1).optional(),
    defaultText: "none",
    help: "broker user name; with --mqtt embedded, the one login the broker accepts",
  }),
  mqttPassword: setting({
    group: "broker",
    arg: "<password>",
    schema: z.string().min(1).optional(),
    defaultText: "none",
    help: "broker password, never logged; prefer IAGENT_MQTT_PASSWORD, a flag shows in `ps`",
  }),
  mqttCa: setting({
    group: "broker",
    arg: "<file>",
    schema: z.string().min(1).optional(),
    defaultText: "the system's CAs",
    help: "CA certificate (PEM) for mqtts://",
  }),
  mqttCert: setting({
    group: "broker",
    arg: "<file>",
    schema: z.string().min(1).optional(),
    defaultText: "none",
    help: "client certificate (PEM) for mqtts://",
  }),
  mqttKey: setting({
    group: "broker",
    arg: "<file>",
    schema: z.string().min(1).optional(),
    defaultText: "none",
    help: "client certificate key (PEM)",
  }),
  mqttBind: setting({
    group: "mqtt",
    arg: "<host:port>",
    schema: z.string().regex(/^(\[[0-9a-fA-F:]+\]|[^\s:]+):\d{1,5}$/, "host:port, e.g. 127.0.0.1:1883"),
    default: "127.0.0.1:1883",
    help: "where the embedded broker listens; beyond loopback it needs a user name and password",
  }),
  mqttPayloadLimit: setting({
    group: "mqtt",
    arg: "<bytes>",
    schema: wholeNumber(64, 16 * 1024 * 1024),
    default: 65_536,
    help: "largest MQTT request read",
  }),
  mqttRateLimit: setting({
    group: "mqtt",
    arg: "<n>",
    schema: wholeNumber(0, 1_000_000),
    default: 60,
    help: "questions a minute per requester (reply topic), 0 = no limit",
  }),
  mqttHealthInterval: setting({
    group: "mqtt",
    arg: "<s>",
    schema: wholeNumber(1, 86_400),
    default: 60,
    help: "seconds between <base>/health messages",
  }),
  mqttMaxAge: setting({
    group: "mqtt",
    arg: "<s>",
    schema: wholeNumber(1, 86_400),
    default: 3600,
    help: "a question a crash left unanswered is answered after the restart only if it arrived within this many seconds (else IA_ERR_EXPIRED)",
  }),
  stateDir: setting({
    group: "mqtt",
    arg: "<dir>",
    schema: z.string().min(1),
    default: "./state-data",
    help: "the agent's own data: the MQTT request journal, the persistence of the mosquitto it runs",
  }),

  serial: setting({ group: "serial", arg: "<path|off>", schema: z.string().min(1), default: "off", help: "serial console port" }),
  baud: setting({ group: "serial", arg: "<n>", schema: wholeNumber(300, 921_600), default: 115_200, help: "serial speed" }),
  serialDataBits: setting({ group: "serial", arg: "<5-8>", schema: wholeNumber(5, 8), default: 8, help: "serial data bits" }),
  serialParity: setting({
    group: "serial",
    schema: z.enum(["none", "even", "odd", "mark", "space"]),
    default: "none",
    help: "serial parity; mark and space only on Windows",
  }),
  serialStopBits: setting({
    group: "serial",
    schema: z.preprocess(numberFromString, z.literal([1, 1.5, 2])),
    default: 1,
    help: "serial stop bits; 1.5 only on Windows",
    expected: "expected 1, 1.5 or 2",
  }),
  serialFlow: setting({ group: "serial", schema: z.enum(["none", "rtscts", "xonxoff"]), default: "none", help: "serial flow control" }),
  serialCharset: setting({
    group: "serial",
    schema: z.enum(["utf8", "ascii"]),
    default: "utf8",
    help: "what the serial terminal can show; ascii replaces the rest with ?",
  }),
  serialWrap: setting({
    group: "serial",
    arg: "<columns>",
    schema: wholeNumber(0, 1000),
    default: 0,
    help: "break answer lines on the serial console at this width, 0 = off",
  }),
  serialLineLimit: setting({
    group: "serial",
    arg: "<chars>",
    schema: wholeNumber(16, 100_000),
    default: 1000,
    help: "longest line accepted on the serial console",
  }),

  ...INSTRUMENT_SETTINGS,
  ...HTTP_SETTINGS,

  json: setting({ group: "output", schema: onOff, default: false, help: "machine-readable output (JSON)" }),
  color: setting({
    group: "output",
    schema: onOff.optional(),
    defaultText: "on when stdout is a terminal and NO_COLOR is unset",
    help: "force colour on",
    negatedHelp: "no colour even on a terminal",
  }),
};

export type SettingKey = keyof typeof SETTINGS;

/** `--config <file>`: where the file layer comes from, so not a setting a file could hold. */
export const CONFIG_FILE_OPTION = {
  key: "config",
  arg: "<file>",
  help: "YAML or JSON config file, also IAGENT_CONFIG (default: ./instrument-agent.yaml if present)",
} as const;

export const SETTING_KEYS = Object.keys(SETTINGS) as SettingKey[];

/** The settings of these groups, in table order. */
export function settingsIn(...groups: SettingGroup[]): SettingKey[] {
  return SETTING_KEYS.filter((key) => groups.includes(SETTINGS[key].group));
}

/** What follows the flag: the given placeholder, else the choices, else nothing (an on/off flag). */
export function settingArg(key: SettingKey): string | undefined {
  const definition: SettingDefinition = SETTINGS[key];
  if (definition.arg) return definition.arg;
  const choices = choicesOf(definition.schema);
  return choices ? `<${choices.join("|")}>` : undefined;
}
