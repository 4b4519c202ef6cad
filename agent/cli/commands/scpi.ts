import { appendFileSync } from "node:fs";
import { AgentError, EXIT_OK } from "../../../common/errors.js";
import type { Logger } from "../../../common/logger.js";
import { createAllowlist } from "../../../firmware-bridge/instrumentBridge.js";
import { SpectrumAnalyzerSimulator } from "../../../firmware-bridge/simulator.js";
import { startSimulatorServer } from "../../../firmware-bridge/simulatorServer.js";
import { settingsIn } from "../../config/settings.js";
import { createInstrument } from "../../service/loadAgent.js";
import type { CommandSpec } from "../commandSpec.js";
import { tcpPort, text } from "../commandOption.js";
import { onSignals } from "../context.js";

/** `scpi`: one read-only query to the instrument, or (`--serve-sim`) the simulated analyzer on a TCP port. */

interface ScpiOptions {
  serveSim: number | undefined;
  simRecord: string | undefined;
}

function recordLine(file: string, line: string, logger: Logger): void {
  try {
    appendFileSync(file, `${JSON.stringify(line)}\n`);
  } catch (error) {
    logger.error({ err: error, file }, "cannot append to the simulator record");
  }
}

/** `scpi --serve-sim <port>`: the simulated analyzer on a TCP port until SIGINT/SIGTERM. */
async function serveSimulator(port: number, recordFile: string | undefined, logger: Logger): Promise<number> {
  const simulator = new SpectrumAnalyzerSimulator({
    onReceive: recordFile ? (line) => recordLine(recordFile, line, logger) : undefined,
  });
  const server = await startSimulatorServer({ port, simulator });
  process.stdout.write(`simulator listening on tcp://${server.host}:${server.port}\n`);
  logger.info({ port: server.port, record: recordFile }, "simulator serving");
  await new Promise<void>((resolve) => {
    const remove = onSignals(() => {
      remove();
      resolve();
    });
  });
  await server.close();
  return EXIT_OK;
}

export const scpiCommand: CommandSpec<ScpiOptions> = {
  name: "scpi",
  description: "send one read-only SCPI query to --instrument and print the reply (exit 2 if the allowlist refuses it)",
  arguments: [{ syntax: "[query]", help: 'the query, e.g. "*IDN?" or ":SENSe:FREQuency:CENTer?"' }],
  settings: [...settingsIn("instrument"), "json"],
  defaults: { logLevel: "warn" },
  options: {
    serveSim: {
      arg: "<port>",
      help: "instead: serve the simulated spectrum analyzer on this TCP port (0 = any) until SIGINT/SIGTERM",
      parse: tcpPort,
    },
    simRecord: {
      arg: "<file>",
      help: "with --serve-sim: append every line the simulator receives to this file (one JSON string a line)",
      parse: text,
    },
  },
  help: 'Examples:\n  instrument-agent scpi --instrument tcp://192.168.1.20:5025 ":SENS:BAND:RES?"\n  instrument-agent scpi --serve-sim 5025',
  async run({ args, options, setUp }) {
    const { config, logger } = setUp();
    if (options.serveSim !== undefined) return serveSimulator(options.serveSim, options.simRecord, logger);
    const query = args[0];
    if (query === undefined || query.trim() === "")
      throw new AgentError("IA_ERR_USAGE", 'scpi: the query is missing, e.g. instrument-agent scpi --instrument tcp://host:5025 "*IDN?"');
    // A refused line is refused even with no instrument configured; with one, the bridge
    // refuses it, so the refusal is counted and audited like any other.
    const checked = createAllowlist(config.scpiAllow).check(query);
    if (!checked.ok && config.instrument.trim() === "off") throw new AgentError("IA_ERR_SCPI_REFUSED", checked.message);
    const bridge = createInstrument(config, logger);
    if (!bridge)
      throw new AgentError(
        "IA_ERR_USAGE",
        "scpi: no instrument is configured: pass --instrument tcp://host:5025, serial://..., prologix://... or sim",
      );
    try {
      const reply = await bridge.query(query, "cli");
      process.stdout.write(config.json ? `${JSON.stringify({ instrument: bridge.description, query, reply })}\n` : `${reply}\n`);
      return EXIT_OK;
    } finally {
      await bridge.close();
    }
  },
};
