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
    // 2, not llama.cpp's 16: at 60% acceptance 1 or 2 proposals is where a check still pays
    // (README, "Speculative decoding": 1.03x for 1 and 0.57x for 4 on the development VM's
    // measured batch costs, 1.11x for 2 on paper for a 4-core laptop).
    default: 2,
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
