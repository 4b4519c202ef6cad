import { z } from "zod";
import { GENERATION_PARAM_RANGES } from "../engine/modelRuntime.js";

/**
 * The value types settings are made of. Flags and IAGENT_* variables always arrive as
 * strings and a config file may hold real numbers and booleans, so each type reads both.
 */

const NUMERIC = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;

/** Strings from flags and the environment become numbers when they look like one. */
export function numberFromString(value: unknown): unknown {
  return typeof value === "string" && NUMERIC.test(value.trim()) ? Number(value) : value;
}

function booleanFromString(value: unknown): unknown {
  if (typeof value !== "string") return value;
  const lowered = value.trim().toLowerCase();
  if (["1", "true", "yes", "on"].includes(lowered)) return true;
  if (["0", "false", "no", "off"].includes(lowered)) return false;
  return value;
}

export const wholeNumber = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  z.preprocess(numberFromString, z.number().int().min(min).max(max));

const realNumber = (min: number, max: number) => z.preprocess(numberFromString, z.number().min(min).max(max));

/** A sampling parameter, in the range the engine and the MQTT API accept too. */
export const paramNumber = (name: keyof typeof GENERATION_PARAM_RANGES) => {
  const { min, max, integer } = GENERATION_PARAM_RANGES[name];
  return integer ? wholeNumber(min, max) : realNumber(min, max);
};

export const autoOr = <T extends z.ZodType>(inner: T) => z.union([z.literal("auto"), inner]);

/** On or off: `--json` on the command line, `1`/`true`/`yes`/`on` in the environment. */
export const onOff = z.preprocess(booleanFromString, z.boolean());

/** A list from a file, or a comma-separated string from a flag or the environment. */
export const stringList = z.preprocess(
  (value) =>
    typeof value === "string"
      ? value
          .split(",")
          .map((s) => s.trim())
          .filter((s) => s !== "")
      : value,
  z.array(z.string().min(1)),
);

/** A name-like value that becomes one level of an MQTT topic. */
export const topicLevel = (what: string) => z.string().regex(/^[^/#+\s]+$/, `${what} without '/', '#', '+' or spaces`);

/**
 * The values a setting accepts when it is one of a few (an enum, or literals such as the
 * serial stop bits), looking through `.optional()` and the string-to-number step. The help
 * shows them, so they come from the schema that checks them rather than a second list.
 */
export function choicesOf(schema: z.ZodType): readonly (string | number)[] | undefined {
  if (schema instanceof z.ZodOptional) return choicesOf(schema.unwrap() as z.ZodType);
  if (schema instanceof z.ZodPipe) return choicesOf(schema.out as z.ZodType);
  if (schema instanceof z.ZodEnum) return schema.options as (string | number)[];
  if (schema instanceof z.ZodLiteral) return [...schema.values].filter((v) => typeof v === "string" || typeof v === "number");
  return undefined;
}
