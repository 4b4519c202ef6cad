import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SerialPortLink } from "../../common/serial/serialPortLink.js";
import { SIM_IDN } from "../../firmware-bridge/simulator.js";
import type { SpectrumAnalyzerSimulator } from "../../firmware-bridge/simulator.js";
import { serveSimulatorOnSerial, startSimulatorServer } from "../../firmware-bridge/simulatorServer.js";
import type { SerialSimulator, SimulatorServer } from "../../firmware-bridge/simulatorServer.js";
import { BUNDLE, requireBundle, runAgent } from "../helpers/bundle.js";
import { tempDir } from "../helpers/models.js";
import { REFUSED_LINES, startPtyPair } from "../helpers/scpiFixtures.js";
import type { PtyPair } from "../helpers/scpiFixtures.js";

// The real bundle's `scpi` command against the simulator over each link: a raw socket, a
// serial line (socat pty pair) and a Prologix GPIB-USB adapter emulated on a pty.
const dir = tempDir("iagent-scpi-");
let tcp: SimulatorServer;
let pty: PtyPair;
let serialSim: SerialSimulator;
let ptyPrologix: PtyPair;
let prologixSim: SerialSimulator;

beforeAll(async () => {
  tcp = await startSimulatorServer({ port: 0 });
  pty = await startPtyPair(dir, "serial");
  serialSim = await serveSimulatorOnSerial(new SerialPortLink({ path: pty.a, baudRate: 9600 }));
  ptyPrologix = await startPtyPair(dir, "prologix");
  prologixSim = await serveSimulatorOnSerial(new SerialPortLink({ path: ptyPrologix.a, baudRate: 115200 }), { prologixAddress: 18 });
});

afterAll(async () => {
  await tcp?.close();
  await serialSim?.close();
  await prologixSim?.close();
  await pty?.stop();
  await ptyPrologix?.stop();
});

const links: [string, () => string, () => SpectrumAnalyzerSimulator][] = [
  ["tcp", () => `tcp://127.0.0.1:${tcp.port}`, () => tcp.simulator],
  ["serial pty", () => `serial://${pty.b}?baud=9600`, () => serialSim.simulator],
  ["prologix pty", () => `prologix://${ptyPrologix.b}?addr=18`, () => prologixSim.simulator],
];

describe.each(links)("scpi over %s", (_name, uri, simulator) => {
  const scpi = (query: string) => runAgent(["scpi", "--instrument", uri(), "--scpi-timeout", "5000", query]);

  it("returns the simulator's replies to *IDN? and to long-form queries", async () => {
    const idn = await scpi("*IDN?");
    expect(idn.stderr).toBe("");
    expect(idn.code).toBe(0);
    expect(idn.stdout).toBe(`${SIM_IDN}\n`);
    const center = await scpi(":SENSe:FREQuency:CENTer?");
    expect(center.code).toBe(0);
    expect(center.stdout).toBe("+1.00000000000E+009\n");
    const rbw = await scpi(":sense:bandwidth:resolution?");
    expect(rbw.code).toBe(0);
    expect(Number(rbw.stdout)).toBe(simulator().settings.rbw);
    expect(simulator().received.slice(-3)).toEqual(["*IDN?", ":FREQ:CENT?", ":BAND?"]);
  });

  it.each(REFUSED_LINES)("refuses %j with exit 2, and it never reaches the instrument", async (line) => {
    const before = simulator().received.length;
    const result = await scpi(line);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("IA_ERR_SCPI_REFUSED");
    expect(result.stderr).toMatch(/refused .*(would change instrument state|holds a line break)/);
    expect(result.stdout).toBe("");
    expect(simulator().received.slice(before)).toEqual([]);
    expect(simulator().settings.center).toBe(1e9);
    expect(simulator().settings.continuous).toBe(true);
  });
});

describe("the Prologix framing", () => {
  it("configures the adapter for the instrument's GPIB address and reads with ++read eoi", async () => {
    const result = await runAgent(["scpi", "--instrument", `prologix://${ptyPrologix.b}?addr=18`, ":SWE:POIN?"]);
    expect(result.stdout).toBe("1001\n");
    const commands = prologixSim.adapterCommands;
    for (const command of ["++mode 1", "++addr 18", "++auto 0", "++eoi 1", "++read eoi"]) expect(commands).toContain(command);
    expect(commands.indexOf("++addr 18")).toBeLessThan(commands.indexOf("++read eoi"));
  });
});

describe("the standalone simulator (scpi --serve-sim)", () => {
  it("serves on TCP, records every line it receives, and exits 0 on SIGTERM", async () => {
    requireBundle();
    const record = path.join(dir, "record.jsonl");
    const child = spawn(process.execPath, [BUNDLE, "scpi", "--serve-sim", "0", "--sim-record", record], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    try {
      const port = await new Promise<number>((resolve, reject) => {
        let out = "";
        child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
          out += chunk;
          const match = /listening on tcp:\/\/127\.0\.0\.1:(\d+)/.exec(out);
          if (match) resolve(Number(match[1]));
        });
        child.once("exit", () => reject(new Error(`simulator exited early: ${out}`)));
      });
      const idn = await runAgent(["scpi", "--instrument", `tcp://127.0.0.1:${port}`, "*IDN?"]);
      expect(idn.stdout).toBe(`${SIM_IDN}\n`);
      const refused = await runAgent(["scpi", "--instrument", `tcp://127.0.0.1:${port}`, "*IDN?;*RST"]);
      expect(refused.code).toBe(2);
      const lines = readFileSync(record, "utf8")
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l) as string);
      expect(lines).toEqual(["*IDN?"]);
    } finally {
      child.kill("SIGTERM");
    }
    expect(await exited).toBe(0);
  });
});

describe("scpi command usage", () => {
  it("refuses before anything else, and says when no instrument is configured or the URI is bad", async () => {
    const refused = await runAgent(["scpi", "*CLS"]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain("clears the instrument's status");
    const none = await runAgent(["scpi", "*IDN?"]);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain("no instrument is configured");
    const badUri = await runAgent(["scpi", "--instrument", "prologix:///dev/ttyUSB0", "*IDN?"]);
    expect(badUri.code).toBe(2);
    expect(badUri.stderr).toContain("IA_ERR_INSTRUMENT_URI");
    const sim = await runAgent(["scpi", "--instrument", "sim", "--json", ":SENS:SWE:TIME?"]);
    expect(JSON.parse(sim.stdout)).toEqual({ instrument: "sim", query: ":SENS:SWE:TIME?", reply: "+1.00000000000E-003" });
    const unreachable = await runAgent(["scpi", "--instrument", "tcp://127.0.0.1:1", "*IDN?"]);
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toContain("IA_ERR_INSTRUMENT_UNREACHABLE");
  });
});
