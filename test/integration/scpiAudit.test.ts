import { execFile } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SIM_IDN } from "../../firmware-bridge/simulator.js";
import { SNAPSHOT_QUERIES } from "../../firmware-bridge/instrumentContext.js";
import { startSimulatorServer } from "../../firmware-bridge/simulatorServer.js";
import type { SimulatorServer } from "../../firmware-bridge/simulatorServer.js";
import { runAgent } from "../helpers/bundle.js";
import { modelArgs, synthModel, tempDir } from "../helpers/models.js";
import { requireMosquittoClients, startMosquitto } from "../helpers/mosquitto.js";
import type { Mosquitto } from "../helpers/mosquitto.js";
import { spawnAgent, testClient, waitForStatus } from "../helpers/mqttAgent.js";
import type { AgentProcess, TestClient } from "../helpers/mqttAgent.js";
import { PtyPair, PtyTerminal, requireSocat } from "../helpers/socat.js";

// The SCPI audit log (README, "Firmware bridge") over a session that takes every path a line
// can take from outside: the `scpi` command, `chat`'s /scpi, the context reads before `ask`,
// and in one `run` the serial console's /scpi (a socat pty) and MQTT scpi requests
// (mosquitto_rr and a plain client). The real bundle runs in child processes, each appending
// to one audit file; the instrument is the simulator in this test process, on TCP, so that
// what reached it is known independently of the agent: its record of every line received.
const dir = tempDir("iagent-scpi-audit-");
const audit = path.join(dir, "logs", "scpi-audit.jsonl");
const PROMPT = "\r\n> ";
const AGENT_ID = "audit-bench";
const BASE = `instrument-agent/${AGENT_ID}`;
const run = promisify(execFile);

let model: string;
let sim: SimulatorServer;
let broker: Mosquitto;
let rr: string;
const instrument = () => `tcp://127.0.0.1:${sim.port}`;

type AuditLine = {
  time: string;
  line: string;
  origin: string;
  wire?: string;
  replyBytes?: number;
  error?: { code: string; message: string };
};

function auditLines(): AuditLine[] {
  if (!existsSync(audit)) return [];
  return readFileSync(audit, "utf8")
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => JSON.parse(line) as AuditLine);
}

/** Where the audit file and the simulator's record stand, to take what one step added. */
function mark() {
  return { audit: auditLines().length, received: sim.simulator.received.length };
}

function since(at: ReturnType<typeof mark>) {
  return { audit: auditLines().slice(at.audit), received: sim.simulator.received.slice(at.received) };
}

/** Each audit line of a query sent names a line the simulator received, in order, and nothing else reached it. */
function expectSentIsReceived(step: ReturnType<typeof since>): void {
  expect(step.audit.filter((l) => l.replyBytes !== undefined).map((l) => l.wire)).toEqual(step.received);
  for (const line of step.audit.filter((l) => l.error !== undefined)) expect(line.error!.code).toBe("IA_ERR_SCPI_REFUSED");
}

const originsAndLines = (lines: AuditLine[]) => lines.map((l) => [l.origin, l.line]);

beforeAll(async () => {
  requireSocat();
  const clients = requireMosquittoClients();
  rr = path.join(path.dirname(clients.pub), "mosquitto_rr");
  if (!existsSync(rr)) throw new Error(`${rr} is missing: apt-get install mosquitto-clients (this test sends an MQTT 5 request with it)`);
  model = await synthModel(dir);
  sim = await startSimulatorServer({ port: 0 });
  broker = await startMosquitto();
});

afterAll(async () => {
  await sim?.close();
  await broker?.stop();
});

describe("the SCPI audit log over every path", () => {
  it("the scpi command: a query sent, two refused writes (flag and IAGENT_SCPI_AUDIT), origin cli", async () => {
    const at = mark();
    const sent = await runAgent(["scpi", "--instrument", instrument(), "--scpi-audit", audit, ":SWE:TIME?"]);
    expect(sent.stderr).toBe("");
    expect(sent.stdout).toBe("+1.00000000000E-003\n");
    const write = await runAgent(["scpi", "--instrument", instrument(), "--scpi-audit", audit, ":FREQ:CENT 2e9"]);
    expect(write.code).toBe(2);
    expect(write.stderr).toContain("IA_ERR_SCPI_REFUSED");
    const reset = await runAgent(["scpi", "--instrument", instrument(), "*RST"], { env: { IAGENT_SCPI_AUDIT: audit } });
    expect(reset.code).toBe(2);
    const step = since(at);
    expect(originsAndLines(step.audit)).toEqual([
      ["cli", ":SWE:TIME?"],
      ["cli", ":FREQ:CENT 2e9"],
      ["cli", "*RST"],
    ]);
    expect(step.audit[0]).toMatchObject({ wire: ":SWE:TIME?", replyBytes: "+1.00000000000E-003".length });
    expect(step.audit[1]!.error?.message).toContain('refused ":FREQ:CENT 2e9"');
    expectSentIsReceived(step);
    expect(step.received).toEqual([":SWE:TIME?"]);
  });

  it("chat's /scpi (piped stdin, the audit file from the config file): a refusal and a ;-joined line, origin console", async () => {
    const config = path.join(dir, "audit.yaml");
    writeFileSync(config, `scpiAudit: ${JSON.stringify(audit)}\n`);
    const at = mark();
    const chat = await runAgent(["chat", ...modelArgs(model), "--config", config, "--log-level", "error", "--instrument", instrument()], {
      input: "/scpi :BAND?\n/scpi *RST\n/scpi :FREQ:CENT?;:sense:freq:span?\nstop\n",
      timeoutMs: 90_000,
    });
    expect(chat.code).toBe(0);
    expect(chat.stdout).toContain('error IA_ERR_SCPI_REFUSED: refused "*RST"');
    expect(chat.stdout).toContain("+1.00000000000E+009;+1.00000000000E+008");
    const step = since(at);
    expect(originsAndLines(step.audit)).toEqual([
      ["console", ":BAND?"],
      ["console", "*RST"],
      ["console", ":FREQ:CENT?"],
      ["console", ":sense:freq:span?"],
    ]);
    expectSentIsReceived(step);
    expect(step.received).toEqual([":BAND?", ":FREQ:CENT?", ":FREQ:SPAN?"]);
  });

  it("ask: the reads before the answer, origin context", async () => {
    const at = mark();
    const ask = await runAgent(
      ["ask", ...modelArgs(model), "--max-tokens", "4", "--instrument", instrument(), "--scpi-audit", audit, "what is the span?"],
      { timeoutMs: 90_000 },
    );
    expect(ask.code).toBe(0);
    const step = since(at);
    expect(step.audit.length).toBeGreaterThanOrEqual(Object.keys(SNAPSHOT_QUERIES).length);
    expect(new Set(step.audit.map((l) => l.origin))).toEqual(new Set(["context"]));
    for (const query of Object.values(SNAPSHOT_QUERIES)) expect(step.audit.map((l) => l.line)).toContain(query);
    expectSentIsReceived(step);
  });

  describe("run: the serial console and MQTT in one agent", () => {
    const pair = new PtyPair(dir, "audit");
    let agent: AgentProcess;
    let terminal: PtyTerminal;
    let client: TestClient;

    beforeAll(async () => {
      await pair.start();
      agent = spawnAgent([
        ...modelArgs(model),
        "--serial",
        pair.a,
        "--mqtt",
        broker.url,
        "--agent-id",
        AGENT_ID,
        "--mqtt-health-interval",
        "1",
        "--instrument",
        instrument(),
        "--scpi-audit",
        audit,
      ]);
      const status = await waitForStatus(broker.url, BASE, "online", agent);
      expect(status.scpi).toEqual({ sent: 0, refused: 0, failed: 0, auditWriteErrors: 0 });
      terminal = new PtyTerminal(pair.b);
      await terminal.open();
      await terminal.type("\r");
      await terminal.waitFor("> ", { timeoutMs: 30_000 });
      client = await testClient(broker.url);
    });

    afterAll(async () => {
      await client?.end();
      await terminal?.close().catch(() => undefined);
      await agent?.stop();
      await pair.kill();
    });

    async function exchange(typed: string): Promise<string> {
      const from = terminal.text.length;
      await terminal.type(typed);
      const end = await terminal.waitFor(PROMPT, { from, timeoutMs: 30_000 });
      return terminal.text.slice(from, end);
    }

    async function mosquittoRr(responseTopic: string, payload: string): Promise<Record<string, unknown>> {
      const { stdout } = await run(rr, [
        "-h",
        "127.0.0.1",
        "-p",
        String(broker.port),
        "-t",
        `${BASE}/scpi`,
        "-e",
        responseTopic,
        "-m",
        payload,
        "-W",
        "20",
      ]);
      return JSON.parse(stdout) as Record<string, unknown>;
    }

    it("audits each line under serial or mqtt:<reply topic>, and counts them in /health and the retained /status", async () => {
      const at = mark();
      expect(await exchange("/scpi *IDN?\r")).toContain(SIM_IDN);
      expect(await exchange("/scpi :FREQ:CENT 2e9\r")).toContain("IA_ERR_SCPI_REFUSED");
      expect(await mosquittoRr("lab/audit/rr1", JSON.stringify({ id: "p1", query: ":SWE:POIN?" }))).toMatchObject({
        id: "p1",
        reply: "1001",
      });
      expect(await mosquittoRr("lab/audit/rr2", "*RST")).toMatchObject({ error: { code: "IA_ERR_SCPI_REFUSED" } });
      await client.client.subscribeAsync("lab/audit/plain", { qos: 1 });
      await client.client.publishAsync(
        `${BASE}/scpi`,
        JSON.stringify({ id: "p3", query: ":DISP:WIND:TRAC:Y:RLEV?", replyTo: "lab/audit/plain" }),
        {
          qos: 1,
        },
      );
      expect(await client.next("lab/audit/plain", (m) => m.done === true)).toMatchObject({ id: "p3", reply: "+0.00000000000E+000" });

      const step = since(at);
      expect(originsAndLines(step.audit)).toEqual([
        ["serial", "*IDN?"],
        ["serial", ":FREQ:CENT 2e9"],
        ["mqtt:lab/audit/rr1", ":SWE:POIN?"],
        ["mqtt:lab/audit/rr2", "*RST"],
        ["mqtt:lab/audit/plain", ":DISP:WIND:TRAC:Y:RLEV?"],
      ]);
      expectSentIsReceived(step);
      expect(step.received).toEqual(["*IDN?", ":SWE:POIN?", ":DISP:WIND:TRAC:Y:RLEV?"]);

      const counts = { sent: 3, refused: 2, failed: 0, auditWriteErrors: 0 };
      await client.client.subscribeAsync(`${BASE}/health`, { qos: 0 });
      const health = await client.next(`${BASE}/health`, (m) => (m.scpi as { sent?: number } | undefined)?.sent === 3);
      expect(health.scpi).toEqual(counts);
      // A client that comes later gets the retained status, renewed with the counts.
      const watcher = await testClient(broker.url);
      try {
        await watcher.client.subscribeAsync(`${BASE}/status`, { qos: 1 });
        const status = await watcher.next(`${BASE}/status`, (m) => (m.scpi as { sent?: number } | undefined)?.sent === 3);
        expect(status).toMatchObject({ state: "online", scpi: counts });
      } finally {
        await watcher.end();
      }
      expect((await agent.stop()).code).toBe(0);
    });
  });

  it("--instrument sim audits too; a file that cannot be opened stops at start with IA_ERR_CONFIG, exit 2, naming the path", async () => {
    const simAudit = path.join(dir, "sim-audit.jsonl");
    const idn = await runAgent(["scpi", "--instrument", "sim", "--scpi-audit", simAudit, "*IDN?"]);
    expect(idn.stdout).toBe(`${SIM_IDN}\n`);
    const simLines = readFileSync(simAudit, "utf8").trim().split("\n");
    expect(simLines.map((l) => JSON.parse(l) as AuditLine)).toMatchObject([
      { line: "*IDN?", origin: "cli", wire: "*IDN?", replyBytes: SIM_IDN.length },
    ]);
    const blocker = path.join(dir, "not-a-dir");
    writeFileSync(blocker, "");
    const bad = path.join(blocker, "audit.jsonl");
    for (const args of [
      ["scpi", "--instrument", "sim", "--scpi-audit", bad, "*IDN?"],
      ["ask", ...modelArgs(model), "--instrument", "sim", "--scpi-audit", bad, "hello"],
    ]) {
      const result = await runAgent(args, { timeoutMs: 90_000 });
      expect(result.code, result.stderr).toBe(2);
      expect(result.stderr).toContain("IA_ERR_CONFIG");
      expect(result.stderr).toContain(`--scpi-audit ${bad}: cannot open the SCPI audit log`);
      expect(result.stdout).toBe("");
    }
  });

  it("holds exactly one line per query sent and per refusal, and no refused line reached the instrument", () => {
    const lines = auditLines();
    for (const line of lines) {
      expect(new Date(line.time).toISOString()).toBe(line.time);
      expect(line.replyBytes === undefined).toBe(line.error !== undefined);
    }
    const sent = lines.filter((l) => l.replyBytes !== undefined);
    const refused = lines.filter((l) => l.error !== undefined);
    // The simulator received only what the audit says was sent, from every process, in order.
    expect(sent.map((l) => l.wire)).toEqual(sim.simulator.received);
    expect(refused.map((l) => [l.origin, l.line])).toEqual([
      ["cli", ":FREQ:CENT 2e9"],
      ["cli", "*RST"],
      ["console", "*RST"],
      ["serial", ":FREQ:CENT 2e9"],
      ["mqtt:lab/audit/rr2", "*RST"],
    ]);
    expect(sim.simulator.received.filter((l) => /RST|CENT [^?]|2e9/i.test(l))).toEqual([]);
    expect(sim.simulator.settings.center).toBe(1e9);
    expect(new Set(lines.map((l) => l.origin.replace(/^mqtt:.*/, "mqtt")))).toEqual(
      new Set(["cli", "console", "context", "serial", "mqtt"]),
    );
  });
});
