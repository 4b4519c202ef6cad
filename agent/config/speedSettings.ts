import { z } from "zod";
import { setting } from "./settingDefinition.js";
import { numberFromString, wholeNumber } from "./settingValues.js";

/**
 * Speculative decoding (README, "Speculative decoding"): a small draft model of the same
 * vocabulary, or prompt lookup, proposes tokens that the model checks in one batch.
 * `auto` leaves the choice to the resource policy (host/policy/speculationDecision.ts).
 */
export const SPEED_SETTINGS = {
  draft: setting({
    group: "model",
    arg: "<path|catalog-id|auto|off>",
    schema: z.string().min(1),
    default: "auto",
    help: "draft model for speculative decoding; auto: the catalog's draft for this model when it is present and pays on this host",
  }),
  draftMax: setting({
    group: "model",
    arg: "<n>",
    schema: wholeNumber(1, 32),
    default: 4,
    help: "tokens the draft model proposes before the model checks them in one batch",
  }),
  draftMinP: setting({
    group: "model",
    arg: "<p>",
    schema: z.preprocess(numberFromString, z.number().min(0).max(1)),
    default: 0.6,
    help: "the draft stops proposing at a token it gives less than this probability (0: never stops early)",
  }),
  lookup: setting({
    group: "model",
    schema: z.enum(["on", "off", "auto"]),
    default: "auto",
    help: "prompt-lookup decoding: propose the tokens that followed the last ones in the prompt (readings, settings quoted back)",
  }),
};
