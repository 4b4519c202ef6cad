import { EXIT_OK } from "../../../common/errors.js";
import { settingsIn } from "../../config/settings.js";
import { probeHost } from "../../host/hostProbe.js";
import { planForCatalog, prepareModel } from "../../service/loadAgent.js";
import type { CommandSpec } from "../commandSpec.js";
import { renderFacts, renderPlan } from "../probeReport.js";
import type { ProbeReport } from "../probeReport.js";

/** `probe`: the host facts and the plan the agent would use, with a reason for each choice. */
export const probeCommand: CommandSpec<Record<never, never>> = {
  name: "probe",
  description: "host facts and the resource plan the agent would use, with a reason for each choice (--json)",
  settings: [...settingsIn("model", "host"), "json"],
  defaults: { logLevel: "warn" },
  options: {},
  async run({ setUp }) {
    const { config, logger, priority } = setUp();
    let result: ProbeReport;
    if (config.model) {
      const prepared = await prepareModel(config, logger);
      result = {
        facts: prepared.facts,
        plan: { ...prepared.plan, priority },
        model: { ...prepared.summary, label: prepared.model.label, demo: prepared.model.isDemo },
      };
    } else {
      const facts = await probeHost();
      const plan = planForCatalog(facts, config);
      result = { facts, plan: { ...plan, priority }, model: { label: plan.model.id, chosenFrom: "catalog" } };
    }
    if (config.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    else process.stdout.write(`${renderFacts(result.facts)}\n\n${renderPlan(result.plan)}\n`);
    return EXIT_OK;
  },
};
