import { spawn, spawnSync } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { chmodSync, copyFileSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROOT } from "../helpers/bundle.js";
import { modelArgs, synthModel, tempDir } from "../helpers/models.js";
import { startMosquitto } from "../helpers/mosquitto.js";
import type { Mosquitto } from "../helpers/mosquitto.js";
import { spawnAgent, waitForStatus } from "../helpers/mqttAgent.js";
import type { AgentProcess } from "../helpers/mqttAgent.js";
import { requireTool } from "../helpers/packRelease.js";
import { waitUntil } from "../helpers/wait.js";

// systemd's Type=notify as the service manager sees it: the real bundle under `run`, a
// NOTIFY_SOCKET that this test opens itself (a unix datagram socket, as systemd's
// /run/systemd/notify is; python3 holds it, since Node cannot), and systemd-analyze on the unit.
const UNIT = path.join(ROOT, "deploy", "linux", "instrument-agent.service");
const dir = tempDir("iagent-sdnotify-");
let model: string;
let mosquitto: Mosquitto;
const children: ChildProcess[] = [];
const agents: AgentProcess[] = [];

interface Datagram {
  atMs: number;
  text: string;
}

/** A datagram socket at `socketPath`; each message received, with the wall-clock ms it came in. */
async function notifySocket(socketPath: string): Promise<Datagram[]> {
  const python = requireTool("python3", "apt-get install -y python3");
  const script = [
    "import socket, sys, time",
    "s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)",
    "s.bind(sys.argv[1])",
    'print("bound", flush=True)',
    "while True:",
    "    data = s.recv(65536)",
    '    print(int(time.time() * 1000), data.decode("utf8", "replace").replace("\\n", " "), flush=True)',
  ].join("\n");
  const receiver = spawn(python, ["-c", script, socketPath], { stdio: ["ignore", "pipe", "inherit"] });
  children.push(receiver);
  const received: Datagram[] = [];
  let bound = false;
  let buffered = "";
  receiver.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
    buffered += chunk;
    const lines = buffered.split("\n");
    buffered = lines.pop()!;
    for (const line of lines) {
      if (line === "bound") bound = true;
      const match = /^(\d+) (.*)$/.exec(line);
      // systemd-notify follows each message with BARRIER=1 (it waits until the manager has read it).
      if (match && match[2] !== "BARRIER=1") received.push({ atMs: Number(match[1]), text: match[2]! });
    }
  });
  await waitUntil(() => bound, { what: "python3's datagram socket", timeoutMs: 10_000 });
  return received;
}

const runArgs = (id: string) => [
  ...modelArgs(model),
  "--context",
  "4096",
  "--mqtt",
  mosquitto.url,
  "--agent-id",
  id,
  "--log-level",
  "info",
];

function logLines(output: string): Record<string, unknown>[] {
  return output
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

beforeAll(async () => {
  requireTool("systemd-notify", "apt-get install -y systemd");
  model = await synthModel(dir);
  mosquitto = await startMosquitto();
}, 60_000);

afterAll(async () => {
  for (const agent of agents) await agent.stop();
  for (const child of children) child.kill("SIGTERM");
  await mosquitto?.stop();
});

describe("systemd Type=notify", () => {
  it("systemd-analyze verify reports nothing about the unit, and does report a misspelled directive", () => {
    const analyze = requireTool("systemd-analyze", "apt-get install -y systemd");
    const unit = readFileSync(UNIT, "utf8");
    for (const directive of ["Type=notify", "NotifyAccess=all", "WatchdogSec=30", "ExecStart=/opt/instrument-agent/instrument-agent run"])
      expect(unit).toContain(`\n${directive}`);
    // verify checks that ExecStart's file is executable: point it at an executable copy of the launcher.
    const launcher = path.join(dir, "instrument-agent");
    copyFileSync(path.join(ROOT, "deploy", "launchers", "instrument-agent.sh"), launcher);
    chmodSync(launcher, 0o755);
    const here = unit.replace("ExecStart=/opt/instrument-agent/instrument-agent ", `ExecStart=${launcher} `);
    // verify exits 0 even for an unknown key ("Unknown key ..., ignoring"): every line it prints is a complaint.
    const verify = (text: string, name: string) => {
      const file = path.join(dir, name);
      writeFileSync(file, text);
      return spawnSync(analyze, ["verify", file], { encoding: "utf8", timeout: 30_000 });
    };
    const good = verify(here, "instrument-agent.service");
    expect(good.stderr + good.stdout).toBe("");
    expect(good.status).toBe(0);
    const misspelled = verify(here.replace("\nWatchdogSec=", "\nWatchdogSecs="), "misspelled.service");
    expect(misspelled.stderr).toContain("Unknown key 'WatchdogSecs'");
    const badType = verify(here.replace("\nType=notify", "\nType=notfy"), "badtype.service");
    expect(badType.stderr).toContain("notfy");
  });

  it("sends READY=1 once the transports started, WATCHDOG=1 while serving, STOPPING=1 on SIGTERM, in that order; exits 0", async () => {
    const socketPath = path.join(dir, "notify.sock");
    const received = await notifySocket(socketPath);
    const agent = spawnAgent(runArgs("sdnotify-a"), { NOTIFY_SOCKET: socketPath, WATCHDOG_USEC: "2000000" });
    agents.push(agent);
    const texts = () => received.map((d) => d.text);
    await waitUntil(() => texts().includes("READY=1"), { what: `READY=1 (agent output: ${agent.output()})`, timeoutMs: 60_000 });
    expect(texts()[0]).toBe("READY=1");
    // Cause and effect on one clock: the datagram came in after the agent logged the MQTT transport started.
    await waitUntil(() => logLines(agent.output()).some((l) => l.msg === "started" && l.transport === "mqtt"), { what: "the started log" });
    const started = logLines(agent.output()).find((l) => l.msg === "started" && l.transport === "mqtt")!;
    expect(received[0]!.atMs).toBeGreaterThanOrEqual(Number(started.time));
    await waitUntil(() => texts().includes("WATCHDOG=1"), {
      what: "WATCHDOG=1 (every second with WATCHDOG_USEC=2000000)",
      timeoutMs: 15_000,
    });

    expect(await agent.stop()).toEqual({ code: 0, signal: null });
    await waitUntil(() => texts().includes("STOPPING=1"), { what: "STOPPING=1", timeoutMs: 15_000 });
    expect(texts().join(" ")).toMatch(/^READY=1( WATCHDOG=1)+ STOPPING=1$/);
    expect(agent.output()).not.toContain("could not notify systemd");
  }, 120_000);

  it("keeps serving when notifying fails (no socket at NOTIFY_SOCKET), with one warning in all", async () => {
    const agent = spawnAgent(runArgs("sdnotify-b"), { NOTIFY_SOCKET: path.join(dir, "nobody-listens.sock"), WATCHDOG_USEC: "1000000" });
    agents.push(agent);
    await waitForStatus(mosquitto.url, "instrument-agent/sdnotify-b", "online", agent);
    const warnings = () =>
      logLines(agent.output()).filter((l) => typeof l.msg === "string" && l.msg.startsWith("could not notify systemd"));
    await waitUntil(() => warnings().length > 0, { what: "the notify warning", timeoutMs: 15_000 });
    // Several half-second pings fail meanwhile; none adds a warning.
    await new Promise((resolve) => setTimeout(resolve, 3000));
    expect(warnings()).toHaveLength(1);
    expect(String(warnings()[0]!.reason)).toContain("systemd-notify");
    expect(await agent.stop()).toEqual({ code: 0, signal: null });
  }, 120_000);
});
