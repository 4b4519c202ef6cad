import { z } from "zod";
import { setting } from "./settingDefinition.js";
import { stringList, wholeNumber } from "./settingValues.js";

/** The firmware bridge's settings: where the instrument is and what may be asked of it (README, Firmware bridge). */
export const INSTRUMENT_SETTINGS = {
  instrument: setting({
    group: "instrument",
    arg: "<uri|off>",
    schema: z.string().min(1),
    default: "off",
    help: "firmware bridge: tcp://host:5025, serial://..., prologix://..., sim",
  }),
  scpiAllow: setting({
    group: "instrument",
    arg: "<queries>",
    schema: stringList,
    default: [],
    defaultText: "none beyond the built-in allowlist",
    help: "extra read-only SCPI queries for the allowlist, comma-separated (e.g. :SENS:DET:TRAC?)",
  }),
  scpiTimeout: setting({
    group: "instrument",
    arg: "<ms>",
    schema: wholeNumber(50, 600_000),
    default: 3000,
    help: "how long the instrument may stay silent while a reply is due (a long reply lasts as long as bytes keep coming)",
  }),
  scpiAudit: setting({
    group: "instrument",
    arg: "<file>",
    schema: z.string().min(1).optional(),
    defaultText: "none (no audit log)",
    help: "append one JSON line per SCPI query sent to the instrument and per refusal, with who asked (README, Firmware bridge)",
  }),
  tools: setting({
    group: "instrument",
    schema: z.enum(["on", "off", "auto"]),
    default: "auto",
    help: "let the model call read-only instrument tools (scpi_query, read_trace, read_errors); auto: on for catalog models that can (Qwen2.5 1.5B and larger, Qwen3)",
  }),
  toolCallsMax: setting({
    group: "instrument",
    arg: "<n>",
    schema: wholeNumber(1, 32),
    default: 4,
    help: "most instrument tool calls in one answer; past it the model answers without tools",
  }),
};
