import { Command, Option } from "commander";
import type { AgentConfig } from "../config/config.js";
import { flagNameFor } from "../config/config.js";
import { CONFIG_FILE_OPTION, SETTING_KEYS, SETTINGS, settingArg, settingsIn } from "../config/settings.js";
import type { SettingDefinition, SettingKey } from "../config/settings.js";
import type { CommandOption, CommandOptions, RawValue } from "./commandOption.js";
import { setUp, setUpConsole } from "./context.js";
import type { ConsoleContext, Context, SettingFlags } from "./context.js";

/**
 * A command as data: its settings, its own options and its handler. The commander command,
 * its options and its help are made from it and from the settings table, so a command
 * offers exactly the settings it reads, each described once.
 */

/** What a handler gets: its arguments, its own options typed, and its set-up. */
export interface Invocation<O> {
  /** The positional arguments as typed. */
  args: string[];
  options: O;
  /** The settings given as flags; `ask --via` sends only the sampling the person set. */
  flags: SettingFlags;
  /** Config, logger and priority, with this command's defaults. */
  setUp(): Context;
  /** The same for a command whose console shares the terminal with the log (`run`, `chat`). */
  setUpConsole(): ConsoleContext;
}

export interface CommandSpec<O> {
  name: string;
  description: string;
  /** Positional arguments in commander's syntax (`<file>`, `[query]`, `<text...>`). Defaults to none. */
  arguments?: readonly { syntax: string; help: string }[];
  /** The settings this command reads, offered as its flags (the global ones come on top). */
  settings: readonly SettingKey[];
  /** Defaults that replace the global ones for this command, e.g. `logLevel: "warn"`. Defaults to none. */
  defaults?: Partial<AgentConfig>;
  /** Options of this command alone. */
  options: CommandOptions<O>;
  /** Examples and notes for the end of `--help`. */
  help?: string;
  /** The command that runs when none is named (`run`). */
  isDefault?: boolean;
  /** Does the work; resolves to the exit code. */
  run(invocation: Invocation<O>): Promise<number>;
}

/** The settings every command takes, so they are options of the program and never of a command. */
export const GLOBAL_SETTINGS: readonly SettingKey[] = settingsIn("log");

function formatDefault(value: unknown): string | undefined {
  if (value === undefined || (Array.isArray(value) && value.length === 0)) return undefined;
  return Array.isArray(value) ? value.join(",") : String(value);
}

/** The commander options of one setting: `--flag <arg>`, or `--flag` and `--no-flag` for one that can be forced off. */
export function settingOptions(key: SettingKey, commandDefaults: Partial<AgentConfig> = {}): Option[] {
  const definition: SettingDefinition = SETTINGS[key];
  const arg = settingArg(key);
  const flag = flagNameFor(key);
  if (arg === undefined) {
    const options = [new Option(flag, definition.help)];
    if (definition.negatedHelp) options.push(new Option(`--no-${flag.slice(2)}`, definition.negatedHelp));
    return options;
  }
  const defaultText =
    key in commandDefaults ? formatDefault(commandDefaults[key]) : (definition.defaultText ?? formatDefault(definition.default));
  // No commander default: an option left out must stay undefined so the other layers can set it.
  return [new Option(`${flag} ${arg}`, defaultText === undefined ? definition.help : `${definition.help} (default: ${defaultText})`)];
}

/** `--config <file>` and the global settings, for the program. */
export function globalOptions(): Option[] {
  return [
    new Option(`--${CONFIG_FILE_OPTION.key} ${CONFIG_FILE_OPTION.arg}`, CONFIG_FILE_OPTION.help),
    ...GLOBAL_SETTINGS.flatMap((key) => settingOptions(key)),
  ];
}

function commandOption(key: string, option: CommandOption<unknown>): Option {
  const made = new Option(option.arg ? `${flagNameFor(key)} ${option.arg}` : flagNameFor(key), option.help);
  if (option.choices) made.choices(option.choices);
  if (option.default !== undefined) made.default(option.default);
  return made;
}

/** A help line for the global settings this command defaults differently ("--log-level warn"). */
function globalDefaultsLine(defaults: Partial<AgentConfig>): string | undefined {
  const changed = GLOBAL_SETTINGS.filter((key) => defaults[key] !== undefined).map((key) => `${flagNameFor(key)} ${String(defaults[key])}`);
  return changed.length ? `Defaults here: ${changed.join(", ")}.` : undefined;
}

function raw(value: unknown): RawValue {
  return typeof value === "string" || typeof value === "boolean" ? value : undefined;
}

function readFlags(command: Command, settings: readonly SettingKey[]): SettingFlags {
  const values = command.optsWithGlobals();
  const flags: SettingFlags = {};
  for (const key of [CONFIG_FILE_OPTION.key, ...GLOBAL_SETTINGS, ...settings] as const) {
    const value = raw(values[key]);
    if (value !== undefined) flags[key] = value;
  }
  return flags;
}

function readOptions<O>(command: Command, options: CommandOptions<O>): O {
  const values = command.opts();
  const parsed: Record<string, unknown> = {};
  for (const [key, option] of Object.entries<CommandOption<unknown>>(options))
    parsed[key] = option.parse(raw(values[key]), flagNameFor(key));
  // One entry per key of the table, each parsed by that key's own option.
  return parsed as O;
}

/** Adds `spec` under `parent`; `finish` receives the exit code its handler resolves to. */
export function addCommand<O>(parent: Command, spec: CommandSpec<O>, finish: (code: number) => void): Command {
  const command = parent.command(spec.name, { isDefault: spec.isDefault === true }).description(spec.description);
  for (const argument of spec.arguments ?? []) command.argument(argument.syntax, argument.help);
  // The command's own options first, then its settings in table order so related ones stand together.
  for (const [key, option] of Object.entries<CommandOption<unknown>>(spec.options)) command.addOption(commandOption(key, option));
  const settings = SETTING_KEYS.filter((key) => spec.settings.includes(key));
  for (const key of settings) for (const option of settingOptions(key, spec.defaults)) command.addOption(option);
  const after = [globalDefaultsLine(spec.defaults ?? {}), spec.help].filter((text) => text !== undefined);
  if (after.length) command.addHelpText("after", `\n${after.join("\n\n")}`);
  command.action(async () => {
    const flags = readFlags(command, settings);
    const options = readOptions(command, spec.options);
    finish(
      await spec.run({
        args: command.args,
        options,
        flags,
        setUp: () => setUp(flags, spec.defaults),
        setUpConsole: () => setUpConsole(flags, spec.defaults),
      }),
    );
  });
  return command;
}
