import type { AgentConfig } from "../config/config.js";
import { toAgentError } from "../../common/errors.js";
import type { LoadedAgent } from "../service/loadAgent.js";
import type { ToolRecord } from "../service/toolBox.js";

/** Said wherever the demo model answers, so nobody mistakes its text for an answer. */
export const DEMO_NOTICE =
  "DEMO MODEL: a scripted stand-in with no knowledge, for trying the plumbing; its one answer says how to get a real model.";

export function useColor(config: AgentConfig, stream: { isTTY?: boolean }): boolean {
  if (config.color !== undefined) return config.color;
  return Boolean(stream.isTTY) && process.env.NO_COLOR === undefined;
}

/** The first lines a person sees on a console: model, threads, context, mlock, demo notice. */
export function consoleBanner(agent: LoadedAgent): string {
  const info = agent.runtime.info;
  const lines = [
    `instrument-agent: ${info.modelLabel}, ${info.threads} threads, context ${info.contextSize}, mlock ${info.mlock.locked ? "on" : "off"}. /help for commands.`,
  ];
  if (info.isDemo) lines.push(DEMO_NOTICE);
  // The fix (memlock limits, systemd) is for the operator and is in the log; the person at
  // the console only needs to know.
  if (info.mlock.requested && !info.mlock.locked) lines.push("model not pinned in RAM");
  return lines.join("\n");
}

/**
 * What a console prints for `/scpi <query>`: the instrument's reply, or a line saying why
 * not (no instrument, no query, refused by the allowlist, unreachable). Never throws.
 */
export async function scpiCommandReply(
  scpi: ((query: string) => Promise<string>) | undefined,
  query: string,
): Promise<{ text: string; failed: boolean }> {
  if (!scpi) {
    return {
      text: "no instrument is configured: start the agent with --instrument tcp://host:5025, serial://..., prologix://... or sim",
      failed: false,
    };
  }
  if (query === "") return { text: "usage: /scpi <query>, e.g. /scpi *IDN?", failed: false };
  try {
    return { text: await scpi(query), failed: false };
  } catch (error) {
    const agentError = toAgentError(error);
    return { text: `error ${agentError.code}: ${agentError.message}`, failed: true };
  }
}

/** One line per instrument call the model made, on both consoles and under `ask`: `[tool] scpi_query {...} -> ...`. */
export function toolCallLine(record: ToolRecord): string {
  const outcome = record.error === undefined ? JSON.stringify(record.result) : `${record.error.code}: ${record.error.message}`;
  const line = `[tool] ${record.name} ${JSON.stringify(record.arguments)} -> ${outcome}`;
  return line.length > 300 ? `${line.slice(0, 297)}...` : line;
}
