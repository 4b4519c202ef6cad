import type { LoadedAgent } from "../../service/loadAgent.js";
import type { Transport } from "../transport.js";

/** `GET /health` once the model is ready: the model, the queue, the other transports and the instrument. */
export function healthBody(agent: LoadedAgent, peers: readonly Transport[], uptimeS: number): Record<string, unknown> {
  const { runtime, service, instrument } = agent;
  const info = runtime.info;
  const transports = Object.fromEntries(
    peers
      .filter((peer) => peer.name !== "http")
      .map((peer) => [peer.name, peer.summary?.replace(new RegExp(`^${peer.name}\\s+`), "") ?? "started"]),
  );
  return {
    status: "ok",
    model: { id: info.modelLabel, demo: info.isDemo, contextSize: info.contextSize, parallel: info.parallelSequences, engine: info.engine },
    queue: { running: service.queue.running, waiting: service.queue.waiting, slots: service.queue.slots },
    answered: service.stats.answered,
    uptimeS: Math.round(uptimeS),
    transports,
    instrument: instrument ? { description: instrument.description, scpi: instrument.counts } : null,
  };
}
