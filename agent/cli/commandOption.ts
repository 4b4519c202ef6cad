import { AgentError } from "../../common/errors.js";

/**
 * Options that belong to one command and are not settings (`smoke --smoke-tokens`,
 * `models synth --shape`): no variable, no config key. Each is declared once, in its
 * command's table, with its check; the flag name is the kebab-case form of its key.
 */

/** A flag's value as commander hands it over: the text typed, `true` for an on/off flag, or nothing. */
export type RawValue = string | boolean | undefined;

export interface CommandOption<T> {
  /** What follows the flag in the help, e.g. `<n>`. Defaults to none: an on/off flag. */
  arg?: string;
  help: string;
  /** The value when the flag is not given, as it would be typed. Defaults to none. */
  default?: string;
  /** The only values accepted; commander refuses any other with exit code 2 and names these. */
  choices?: readonly string[];
  /** Checks the value and returns it typed; a bad one is IA_ERR_USAGE naming the flag. */
  parse(value: RawValue, flag: string): T;
}

/** A command's own options, keyed by their camelCase names. */
export type CommandOptions<O> = { [K in keyof O]: CommandOption<O[K]> };

function bad(flag: string, expected: string, value: RawValue): never {
  throw new AgentError("IA_ERR_USAGE", `${flag}: expected ${expected}, got ${JSON.stringify(value)}`);
}

/** Text, or undefined when not given. */
export function text(value: RawValue): string | undefined {
  return typeof value === "string" ? value : undefined;
}

/** An on/off flag: given or not. */
export function given(value: RawValue): boolean {
  return value === true;
}

/** A whole number of at least `min` (and at most `max`). */
export function wholeNumber(min: number, max?: number) {
  return (value: RawValue, flag: string): number => {
    const number = Number(value);
    if (!Number.isInteger(number) || number < min || (max !== undefined && number > max))
      bad(flag, max === undefined ? `a whole number >= ${min}` : `a whole number from ${min} to ${max}`, value);
    return number;
  };
}

/** A number of at least `min`, fractions allowed. */
export function decimal(min: number) {
  return (value: RawValue, flag: string): number => {
    const number = Number(value);
    if (!Number.isFinite(number) || number < min) bad(flag, `a number >= ${min}`, value);
    return number;
  };
}

/** A positive number of seconds. */
export function seconds(value: RawValue, flag: string): number {
  const number = Number(value);
  if (!Number.isFinite(number) || number <= 0) bad(flag, "a number of seconds > 0", value);
  return number;
}

/** A TCP port, 0 meaning any free one; undefined when not given. */
export function tcpPort(value: RawValue, flag: string): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "string" || !/^\d+$/.test(value) || Number(value) > 65_535) bad(flag, "a TCP port from 0 to 65535", value);
  return Number(value);
}

/** One of `choices`, typed as that union (commander has refused the others already). */
export function oneOf<const C extends readonly string[]>(choices: C) {
  return (value: RawValue, flag: string): C[number] => {
    const found = choices.find((choice) => choice === value);
    if (found === undefined) bad(flag, `one of ${choices.join(", ")}`, value);
    return found;
  };
}
