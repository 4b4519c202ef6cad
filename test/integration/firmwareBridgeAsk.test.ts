import net from "node:net";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AnswerService } from "../../agent/service/answerService.js";
import { LlamaRuntime } from "../../agent/engine/llamaRuntime.js";
import { createLogger } from "../../common/logger.js";
import type { GenerateRequest, ModelRuntime } from "../../agent/engine/modelRuntime.js";
import { RequestQueue } from "../../agent/service/requestQueue.js";
import { InstrumentBridge } from "../../firmware-bridge/instrumentBridge.js";
import { SNAPSHOT_QUERIES } from "../../firmware-bridge/instrumentContext.js";
import { startSimulatorServer } from "../../firmware-bridge/simulatorServer.js";
import type { SimulatorServer } from "../../firmware-bridge/simulatorServer.js";
import { runAgent } from "../helpers/bundle.js";
import { synthModel, tempDir } from "../helpers/models.js";

// The instrument's live settings in the answers: the real bundle and the real runtime with
// a tiny random-weight model, reading a simulator over TCP.
const dir = tempDir("iagent-fb-");
let tiny: string;
let sim: SimulatorServer;
const common = () => [
  "--model",
  tiny,
  "--mlock",
  "off",
  "--threads",
  "1",
  "--temperature",
  "0",
  "--max-tokens",
  "8",
  "--models-dir",
  path.join(dir, "models"),
];
const snapshotWire = [...Object.values(SNAPSHOT_QUERIES)].map((q) => q.replace("MARK1", "MARK"));

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return typeof address === "object" && address ? address.port : 1;
}

beforeAll(async () => {
  tiny = await synthModel(dir);
  sim = await startSimulatorServer({ port: 0 });
  // Settings other than the preset, set by the "lab" directly on the simulator.
  sim.simulator.receive(":FREQ:CENT 2.4 GHz;:FREQ:SPAN 1 MHz");
  sim.simulator.received.length = 0;
});

afterAll(async () => {
  await sim?.close();
});

describe("ask with an instrument", () => {
  it("reads the settings before answering and puts them into the prompt", async () => {
    const result = await runAgent(
      ["ask", ...common(), "--instrument", `tcp://127.0.0.1:${sim.port}`, "--log-level", "debug", "RBW 和扫描时间是什么关系？"],
      { timeoutMs: 90_000 },
    );
    expect(result.code).toBe(0);
    expect(result.stdout.trim().length).toBeGreaterThan(0);
    expect(sim.simulator.received).toEqual(snapshotWire);
    const contextLine = result.stderr.split("\n").find((line) => line.includes('"msg":"instrument context"'));
    expect(contextLine, result.stderr).toBeDefined();
    const context = (JSON.parse(contextLine ?? "{}") as { context: string }).context;
    for (const part of [
      "N9020A",
      "center 2.4 GHz",
      "span 1 MHz (2.3995 GHz to 2.4005 GHz)",
      "RBW 10 kHz",
      "VBW 10 kHz",
      "sweep time 25 ms",
    ])
      expect(context).toContain(part);
    expect(sim.simulator.settings.center).toBe(2.4e9);
  });

  it("with the instrument unreachable still answers, exits 0 and says the instrument could not be read", async () => {
    const port = await closedPort();
    const result = await runAgent(["ask", ...common(), "--instrument", `tcp://127.0.0.1:${port}`, "what is the RBW?"], {
      timeoutMs: 90_000,
    });
    expect(result.code).toBe(0);
    expect(result.stdout.trim().length).toBeGreaterThan(0);
    expect(result.stderr).toContain(`note: the instrument at tcp://127.0.0.1:${port} could not be read`);
  });

  it("chat: /scpi answers read-only queries, refuses setters, and questions read the instrument", async () => {
    sim.simulator.received.length = 0;
    const input = "/scpi *IDN?\n/scpi *RST\n/scpi :SENSe:FREQuency:SPAN?\nhow fast is the sweep?\n/scpi\nstop\n";
    const result = await runAgent(["chat", ...common(), "--log-level", "error", "--instrument", `tcp://127.0.0.1:${sim.port}`], {
      input,
      timeoutMs: 90_000,
    });
    expect(result.code).toBe(0);
    expect(result.stdout).toContain("Keysight Technologies,N9020A,SIM00001,A.99.99");
    expect(result.stdout).toContain('error IA_ERR_SCPI_REFUSED: refused "*RST"');
    expect(result.stdout).toContain("+1.00000000000E+006");
    expect(result.stdout).toContain("usage: /scpi <query>");
    expect(sim.simulator.received).not.toContain("*RST");
    expect(sim.simulator.received.slice(0, 2)).toEqual(["*IDN?", ":FREQ:SPAN?"]);
    expect(sim.simulator.received.slice(2)).toEqual(snapshotWire);
  });
});

describe("the context the model sees (real runtime, in process)", () => {
  let runtime: LlamaRuntime | undefined;

  afterAll(async () => {
    await runtime?.dispose();
  });

  it("AnswerService puts the instrument summary at the start of the newest user turn of chat requests, not in the system prompt, not in raw ones", async () => {
    const logger = createLogger({ level: "silent" });
    runtime = await LlamaRuntime.load({
      modelPath: tiny,
      modelLabel: "tiny",
      isDemo: true,
      threads: 1,
      contextSize: 1024,
      mlock: false,
      logger,
    });
    const seen: GenerateRequest[] = [];
    const real = runtime;
    const recording: ModelRuntime = {
      info: real.info,
      slots: real.slots,
      get disposed() {
        return real.disposed;
      },
      countTokens: (text) => real.countTokens(text),
      dispose: () => real.dispose(),
      generate: (slot, request) => {
        seen.push(request);
        return real.generate(slot, request);
      },
    };
    const bridge = new InstrumentBridge({ uri: `tcp://127.0.0.1:${sim.port}` });
    const service = new AnswerService(
      recording,
      new RequestQueue({ slots: 1 }),
      { system: "Be brief.", params: { maxTokens: 4, temperature: 0 } },
      {
        contextProvider: bridge.contextProvider,
      },
    );
    const result = await service.answer({ messages: [{ role: "user", content: "what is the span?" }] });
    expect(result.usage.completionTokens).toBeGreaterThan(0);
    expect(seen[0]?.system).toBe("Be brief.");
    const turn = seen[0]?.messages?.at(-1);
    expect(turn?.role).toBe("user");
    expect(turn?.content).toMatch(/^Live instrument settings[^]*span 1 MHz[^]*\n\nwhat is the span\?$/);
    expect(result.context).toContain("span 1 MHz");
    expect(result.sentQuestion).toBe(turn?.content);
    await service.answer({ mode: "raw", prompt: "x" });
    expect(seen[1]?.system).toBe("Be brief.");
    expect(seen[1]?.prompt).toBe("x");
    await bridge.close();

    const dead = new InstrumentBridge({ uri: `tcp://127.0.0.1:${await closedPort()}` });
    const offline = new AnswerService(
      recording,
      new RequestQueue({ slots: 1 }),
      { system: "Be brief.", params: { maxTokens: 4, temperature: 0 } },
      {
        contextProvider: dead.contextProvider,
      },
    );
    const answered = await offline.answer({ messages: [{ role: "user", content: "span?" }] });
    expect(answered.usage.completionTokens).toBeGreaterThan(0);
    expect(seen[2]?.messages?.at(-1)?.content).toMatch(/could not be read[^]*\n\nspan\?$/);
    await dead.close();
  });
});
