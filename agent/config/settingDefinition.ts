import type { z } from "zod";

/** Which part of the agent reads a setting; a command takes the groups it uses as flags. */
export type SettingGroup = "log" | "model" | "host" | "generation" | "mqtt" | "broker" | "serial" | "instrument" | "http" | "output";

export interface SettingDefinition<T extends z.ZodType = z.ZodType> {
  group: SettingGroup;
  /** What follows the flag in the help, e.g. `<n|auto>`. Defaults to the choices of a setting that is one of a few; none for an on/off flag. */
  arg?: string;
  schema: T;
  /** The value when no flag, variable or file sets one. Defaults to none (the setting stays unset). */
  default?: z.output<T>;
  /** The help's words for a default that is worked out rather than a fixed value. */
  defaultText?: string;
  help: string;
  /** What a bad value is told it should be, where zod's own words would say it less well. */
  expected?: string;
  /** Help of `--no-<flag>`, for an on/off flag that can also be forced off. */
  negatedHelp?: string;
}

/** Checks each entry's default against its own schema's type while keeping that type. */
export function setting<T extends z.ZodType>(definition: SettingDefinition<T>): SettingDefinition<T> {
  return definition;
}
