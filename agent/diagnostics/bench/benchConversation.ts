import type { Logger } from "../../../common/logger.js";
import { InstrumentBridge } from "../../../firmware-bridge/instrumentBridge.js";
import type { AgentConfig } from "../../config/config.js";
import type { ResourcePlan } from "../../host/policy/planTypes.js";
import { AnswerService } from "../../service/answerService.js";
import { Conversation } from "../../service/conversation.js";
import { runtimeOptions } from "../../service/loadAgent.js";
import type { ResolvedModel } from "../../../models/modelResolver.js";
import { RequestQueue } from "../../service/requestQueue.js";
import { median } from "./benchStats.js";

/**
 * `bench --instrument ...`: what grounding costs a conversation. The model is loaded as `run`
 * loads it (the static system prompt evaluated at load), then a person's conversation of a
 * few turns, with the live reading put in each new turn. With `--instrument sim` the
 * simulator's marker moves between turns, as a person turning the knob would, so every
 * turn's reading differs from the last: the cached history must stay valid anyway, and
 * each follow-up should evaluate only its own turn.
 */

export interface ConversationTurn {
  ttftMs: number;
  /** Prompt tokens evaluated for this turn (those reused from the KV cache are not counted). */
  promptTokens: number;
  /** Tokens of the turn itself: the reading and the question, as the model saw them. */
  turnTokens: number;
  /** The reading the context reported for marker 1 (the simulator only). */
  markerDbm: number | null;
}

export interface ConversationFigures {
  instrument: string;
  turns: ConversationTurn[];
  /** The first question after load: TTFT and prompt tokens evaluated (the system prompt was at load). */
  first: { ttftMs: number; promptTokens: number; turnTokens: number };
  /** Medians over the follow-up turns. */
  followUp: { ttftMs: number; promptTokens: number; turnTokens: number };
}

const QUESTIONS = [
  "What does marker 1 read?",
  "And now?",
  "Is that above the noise floor?",
  "Has the reading changed since the last question?",
  "Summarise the marker readings.",
];
/** Where the simulator's marker goes before each turn: on the strong tone, on the weak one, and off both. */
const MARKER_POSITIONS_HZ = [1e9, 1.025e9, 1.01e9, 1e9, 1.025e9];

export async function benchConversation(deps: {
  config: AgentConfig;
  logger: Logger;
  model: ResolvedModel;
  plan: ResourcePlan;
  maxTokens: number;
}): Promise<ConversationFigures> {
  const { config, logger, model, plan } = deps;
  // A fresh reading for every turn: the bench is about a reading that changed.
  const bridge = new InstrumentBridge({
    uri: config.instrument,
    allow: config.scpiAllow,
    timeoutMs: config.scpiTimeout,
    contextCacheMs: 0,
    logger,
  });
  const { startEngine } = await import("../../engine/process/engineProcess.js");
  const runtime = await startEngine(
    { ...runtimeOptions(config, model, plan, logger), parallelSequences: 1, warmUp: { system: config.system } },
    config.engine,
  );
  try {
    const service = new AnswerService(
      runtime,
      new RequestQueue({ slots: 1 }),
      { system: config.system, params: { temperature: 0, maxTokens: deps.maxTokens } },
      { contextProvider: bridge.contextProvider },
    );
    const conversation = new Conversation();
    const turns: ConversationTurn[] = [];
    for (const [index, question] of QUESTIONS.entries()) {
      // The simulator's own front panel, not the bridge: nothing is ever written through it.
      bridge.simulator?.receive(`:CALC:MARK1:X ${MARKER_POSITIONS_HZ[index]!}`);
      const result = await conversation.ask(service, question);
      const marker = /reads (-?[\d.]+) dBm/.exec(result.context ?? "");
      turns.push({
        ttftMs: result.timings.ttftMs,
        promptTokens: result.usage.promptTokens,
        turnTokens: await runtime.countTokens(result.sentQuestion ?? question),
        markerDbm: marker ? Number(marker[1]) : null,
      });
    }
    const followUps = turns.slice(1);
    const medianOf = (pick: (turn: ConversationTurn) => number) => median(followUps.map(pick));
    const first = turns[0]!;
    return {
      instrument: bridge.description,
      turns,
      first: { ttftMs: first.ttftMs, promptTokens: first.promptTokens, turnTokens: first.turnTokens },
      followUp: {
        ttftMs: medianOf((t) => t.ttftMs),
        promptTokens: medianOf((t) => t.promptTokens),
        turnTokens: medianOf((t) => t.turnTokens),
      },
    };
  } finally {
    await bridge.close();
    await runtime.dispose();
  }
}
