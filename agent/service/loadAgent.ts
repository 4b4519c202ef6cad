import { existsSync } from "node:fs";
import path from "node:path";
import { listCatalog, resolveHfUri } from "../../models/catalog.js";
import { validateModelFile } from "../../models/gguf/ggufValidator.js";
import type { ModelFileSummary } from "../../models/gguf/ggufValidator.js";
import { ensureDemoModel, isReachable, resolveModel } from "../../models/modelResolver.js";
import type { ResolvedModel } from "../../models/modelResolver.js";
import { InstrumentBridge } from "../../firmware-bridge/instrumentBridge.js";
import { canCallTools, catalogEntryForFileName } from "../../models/catalog.js";
import { createInstrumentTools } from "./instrumentTools.js";
import type { ToolBox } from "./toolBox.js";
import { AnswerService } from "./answerService.js";
import { AgentMetrics } from "./metrics.js";
import type { AgentConfig } from "../config/config.js";
import type { HostFacts } from "../host/hostFacts.js";
import { probeHost } from "../host/hostProbe.js";
import type { LlamaRuntimeOptions } from "../engine/llamaRuntime.js";
import type { Logger } from "../../common/logger.js";
import type { ModelRuntime } from "../engine/modelRuntime.js";
import { createProgressBar } from "../../common/progressBar.js";
import { RequestQueue } from "./requestQueue.js";
import { planResources } from "../host/resourcePolicy.js";
import type { ResourcePlan } from "../host/resourcePolicy.js";
import { selfCommand } from "../cli/selfCommand.js";
import { catalogDraft, resolveDraft } from "./draftModel.js";
import type { ResolvedDraft } from "./draftModel.js";

export interface PreparedModel {
  facts: HostFacts;
  model: ResolvedModel;
  summary: ModelFileSummary;
  plan: ResourcePlan;
  /** The draft model the plan weighed for speculative decoding, if any (`plan.speculation` says whether it is used). */
  draft?: ResolvedDraft | undefined;
}

function requestedFrom(config: AgentConfig) {
  return {
    threads: config.threads,
    mlock: config.mlock,
    contextSize: config.context,
    parallelSequences: config.parallel,
    ...(config.reserveMem !== undefined ? { reserveMemMiB: config.reserveMem } : {}),
    ...(config.reserveCores !== undefined ? { reserveCores: config.reserveCores } : {}),
    speculation: { draft: config.draft, lookup: config.lookup, draftMax: config.draftMax },
  };
}

/**
 * The plan for a model not chosen yet: the largest catalog entry that fits this host,
 * among those present when `presentOnly`, else among all (each can be downloaded).
 */
export function planForCatalog(facts: HostFacts, config: AgentConfig, presentOnly = false): ResourcePlan {
  const candidates = listCatalog().map((entry) => ({
    id: entry.id,
    baseModel: entry.baseModel,
    quant: entry.quant,
    parameterCount: entry.parameterCount,
    footprint: entry.footprint,
    available: !presentOnly || existsSync(path.resolve(config.modelsDir, entry.fileName)),
  }));
  const requested = requestedFrom(config);
  const plan = planResources({ facts, shape: config.shape, requested, model: { candidates } });
  // The draft depends on the model chosen, so the plan is made again with the chosen model's draft.
  const draft =
    config.draft === "auto"
      ? catalogDraft(
          listCatalog().find((e) => e.id === plan.model.id),
          config.modelsDir,
        )
      : undefined;
  if (!draft) return plan;
  return planResources({ facts, shape: config.shape, requested, model: { candidates }, draftCandidate: draft.candidate });
}

export function planForFile(
  facts: HostFacts,
  config: AgentConfig,
  model: ResolvedModel,
  summary: ModelFileSummary,
  draft?: ResolvedDraft,
): ResourcePlan {
  return planResources({
    draftCandidate: draft?.candidate,
    facts,
    shape: config.shape,
    requested: requestedFrom(config),
    model: {
      id: model.label,
      label: model.label,
      fileBytes: summary.fileBytes,
      kvBytesPerToken: summary.kvBytesPerToken,
      trainedContextLength: summary.contextLength,
      demo: model.isDemo,
    },
  });
}

/**
 * With no --model: a catalog model already in the models directory, else the plan's
 * choice if its source answers, else the demo model, said plainly.
 */
async function chooseDefaultModel(facts: HostFacts, config: AgentConfig, logger: Logger): Promise<ResolvedModel> {
  const resolveOptions = { modelsDir: config.modelsDir, mirror: config.modelMirror, logger };
  const present = listCatalog().find((e) => e.id === planForCatalog(facts, config, true).model.id);
  if (present && existsSync(path.resolve(config.modelsDir, present.fileName))) return resolveModel(present.id, resolveOptions);
  const wanted = listCatalog().find((e) => e.id === planForCatalog(facts, config).model.id);
  if (wanted && (await isReachable(resolveHfUri(wanted.uri, config.modelMirror)))) {
    logger.info({ model: wanted.id }, "no model present; downloading the plan's choice");
    return resolveModel(wanted.id, resolveOptions);
  }
  logger.warn(
    `no model present in ${path.resolve(config.modelsDir)} and ${wanted ? "the download source is unreachable" : "none fits this host"}: ` +
      `using the demo model, which has no knowledge and only says what it is${wanted ? ` (get a real one with: ${selfCommand()} models pull ${wanted.id})` : ""}`,
  );
  return ensureDemoModel(resolveOptions);
}

/** Probe, resolve, validate and plan: everything before llama.cpp sees the file. */
export async function prepareModel(config: AgentConfig, logger: Logger): Promise<PreparedModel> {
  const facts = await probeHost();
  const model = config.model
    ? await resolveModel(config.model, { modelsDir: config.modelsDir, mirror: config.modelMirror, logger })
    : await chooseDefaultModel(facts, config, logger);
  // Validation runs before every load: some malformed files abort llama.cpp itself.
  const summary = await validateModelFile(model.path);
  const draft = await resolveDraft(config, model, logger);
  const plan = planForFile(facts, config, model, summary, draft);
  for (const warning of plan.warnings) logger.warn(warning);
  for (const notice of plan.notices) logger.info(notice);
  return { facts, model, summary, plan, draft };
}

export interface LoadedAgent extends PreparedModel {
  runtime: ModelRuntime;
  service: AnswerService;
  /** The Prometheus figures (`GET /metrics` serves `metrics.render()`); the service counts into them. */
  metrics: AgentMetrics;
  /** The firmware bridge when `--instrument` is set; close it at shutdown. */
  instrument?: InstrumentBridge | undefined;
  /**
   * Read-only SCPI for the local console's `/scpi`, audited as origin `console`; refusals throw
   * IA_ERR_SCPI_REFUSED. The serial console and MQTT call `instrument.query(line, origin)` with their own origin.
   */
  scpi?: ((query: string) => Promise<string>) | undefined;
}

/** The firmware bridge for `--instrument`, or undefined when it is `off`; checks the URI and allowlist, opens nothing. */
export function createInstrument(config: AgentConfig, logger: Logger): InstrumentBridge | undefined {
  if (config.instrument.trim() === "off") return undefined;
  return new InstrumentBridge({
    uri: config.instrument,
    allow: config.scpiAllow,
    timeoutMs: config.scpiTimeout,
    auditFile: config.scpiAudit,
    logger,
  });
}

/**
 * The model's instrument tools, or none: `--tools on` always (with an instrument), `off`
 * never, `auto` for the catalog models that can call them (canCallTools). Every call goes
 * through the bridge's allowlist and audit log as origin `model`.
 */
function instrumentTools(config: AgentConfig, model: ResolvedModel, instrument: InstrumentBridge, logger: Logger): ToolBox | undefined {
  // A catalog file carried in by path counts as that catalog model.
  const entry = model.catalogEntry ?? catalogEntryForFileName(model.path);
  const on = config.tools === "on" || (config.tools === "auto" && entry !== undefined && canCallTools(entry));
  if (!on) {
    if (config.tools === "auto")
      logger.debug({ model: model.label }, "instrument tools off: --tools auto gives them to catalog models that can call them");
    return undefined;
  }
  logger.info({ model: model.label, maxCalls: config.toolCallsMax }, "instrument tools on: scpi_query, read_trace, read_errors");
  return createInstrumentTools({ query: (line) => instrument.query(line, "model"), maxCalls: config.toolCallsMax });
}

/**
 * The model runtime's options as every command derives them from the config, the model and
 * its plan; `run`, `smoke` and `bench` differ only in what they override.
 */
export function runtimeOptions(
  config: AgentConfig,
  model: ResolvedModel,
  plan: ResourcePlan,
  logger: Logger,
  draft?: ResolvedDraft,
): LlamaRuntimeOptions {
  const speculation = plan.speculation.value;
  return {
    modelPath: model.path,
    modelLabel: model.label,
    isDemo: model.isDemo,
    threads: plan.threads.value,
    contextSize: plan.contextSize.value,
    parallelSequences: plan.parallelSequences.value,
    mlock: plan.mlock.value,
    mlockRequired: config.mlock === "on",
    gpu: config.gpu,
    gpuLayers: config.gpuLayers,
    numa: config.numa,
    adaptThreads: config.threads === "auto",
    speculation:
      speculation.kind === "lookup"
        ? { kind: "lookup" }
        : speculation.kind === "draft" && draft?.path !== undefined
          ? {
              kind: "draft",
              draftPath: draft.path,
              draftLabel: draft.candidate.label,
              draftMax: speculation.draftMax,
              draftMinP: config.draftMinP,
            }
          : undefined,
    logger,
  };
}

/** Prepares and loads the model, and puts the shared queue and answer service around it. */
export async function loadAgent(config: AgentConfig, logger: Logger, options: { showProgress?: boolean } = {}): Promise<LoadedAgent> {
  // Before the model: a bad --instrument URI is bad usage and should not wait for a load.
  const instrument = createInstrument(config, logger);
  const prepared = await prepareModel(config, logger);
  const { plan, model } = prepared;
  logger.info(
    {
      model: model.label,
      threads: plan.threads.value,
      contextSize: plan.contextSize.value,
      mlock: plan.mlock.value,
      parallel: plan.parallelSequences.value,
    },
    "loading model",
  );
  const bar = options.showProgress
    ? createProgressBar({ label: `loading ${model.label}`, totalBytes: prepared.summary.fileBytes })
    : undefined;
  const tools = instrument ? instrumentTools(config, model, instrument, logger) : undefined;
  const { startEngine, EngineProcess } = await import("../engine/process/engineProcess.js");
  const runtime = await startEngine(
    {
      ...runtimeOptions(config, model, plan, logger, prepared.draft),
      warmUp: { system: config.system, tools: tools?.specs },
      ...(bar ? { onLoadProgress: (fraction: number) => bar.update(Math.round(fraction * prepared.summary.fileBytes)) } : {}),
    },
    config.engine,
  );
  bar?.done();
  const queue = new RequestQueue({ slots: runtime.slots });
  const metrics = new AgentMetrics({
    model: model.label,
    queue: () => ({ running: queue.running, waiting: queue.waiting }),
    // Only the engine process restarts (--engine process); inline, a crash ends the agent.
    engineRestarts: () => (runtime instanceof EngineProcess ? runtime.restarts : 0),
    scpi: instrument ? () => instrument.counts : undefined,
  });
  const service = new AnswerService(
    runtime,
    queue,
    {
      system: config.system,
      params: {
        temperature: config.temperature,
        topK: config.topK,
        topP: config.topP,
        repeatPenalty: config.repeatPenalty,
        maxTokens: config.maxTokens,
        seed: config.seed,
      },
    },
    { contextProvider: instrument?.contextProvider, tools, metrics },
  );
  return {
    ...prepared,
    runtime,
    service,
    metrics,
    instrument,
    scpi: instrument ? (query) => instrument.query(query, "console") : undefined,
  };
}
