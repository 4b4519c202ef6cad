import { execFileSync, spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { createServer } from "node:net";
import type { AddressInfo, Server } from "node:net";
import { existsSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROOT } from "../helpers/bundle.js";
import { synthModel, tempDir } from "../helpers/models.js";
import { packRelease, requireTool, runCommand } from "../helpers/packRelease.js";
import { waitUntil } from "../helpers/wait.js";
import { freePort, waitForPort } from "../helpers/mosquitto.js";

// The linux-x64 archive unpacked into an empty folder outside the repo and run with only
// Node on PATH: the folder must be self-sufficient. Then the same under qemu's Core 2.
interface SmokeJson {
  ok: boolean;
  checks: { name: string; ok: boolean; ms: number; detail: string }[];
  host: { platform: string } | null;
  plan: { threads: { value: number } } | null;
  model: { architecture: string } | null;
  tokensPerSecond: number | null;
  ttftMs: number | null;
}

let folder: string;
let model: string;
const nodeOnly = { PATH: `${path.dirname(process.execPath)}:/usr/bin:/bin`, HOME: tempDir("iagent-home-"), NO_COLOR: "1" };
const children: ChildProcess[] = [];
const servers: Server[] = [];

beforeAll(async () => {
  const packs = tempDir("iagent-deploy-linux-");
  const pack = packRelease("linux-x64", packs);
  const unpacked = tempDir("iagent-unpacked-");
  execFileSync("tar", ["-xzf", pack.archive, "-C", unpacked]);
  folder = path.join(unpacked, path.basename(pack.folder));
  model = await synthModel(tempDir("iagent-deploy-model-"));
  expect(folder.startsWith(ROOT)).toBe(false);
}, 120_000);

afterAll(() => {
  for (const child of children) child.kill("SIGTERM");
  for (const server of servers) server.close();
});

// With the default --mlock auto: a host whose memlock limit is small (8 MiB here) must pass.
function smoke(args: string[], timeoutMs = 120_000) {
  return runCommand(path.join(folder, "instrument-agent"), ["smoke", "--model", model, ...args], { cwd: folder, env: nodeOnly, timeoutMs });
}

function parse(stdout: string): SmokeJson {
  return JSON.parse(stdout) as SmokeJson;
}

describe("the unpacked linux-x64 release", () => {
  it("runs smoke --json with ok true, using only what is in the folder", async () => {
    const result = await smoke(["--json"]);
    expect(result.stderr).toBe("");
    const report = parse(result.stdout);
    expect(report.checks.filter((c) => !c.ok)).toEqual([]);
    expect(report.ok).toBe(true);
    expect(result.code).toBe(0);
    expect(report.checks.map((c) => c.name)).toEqual([
      "host probe",
      "model file valid",
      "model loads",
      "generates 16 tokens",
      "tokens/s above 1",
      "mlock as planned",
    ]);
    expect(report.model?.architecture).toBe("qwen2");
    expect(report.tokensPerSecond).toBeGreaterThan(0);
    expect(report.ttftMs).toBeGreaterThan(0);
    expect(report.plan?.threads.value).toBeGreaterThanOrEqual(1);
    const node_modules = path.join(folder, "node_modules", "node-llama-cpp");
    expect(report.checks[2]?.detail).toContain("prebuilt binaries");
    expect(existsSync(node_modules)).toBe(true);
  });

  it("prints the speed the way the field notes do and says every check passed", async () => {
    const result = await smoke([]);
    expect(result.stdout).toMatch(/^speed: \d+\.\d\d tokens\/s, first token after \d+ ms$/m);
    expect(result.stdout).toContain("smoke: all 6 checks passed");
    expect(result.code).toBe(0);
  });

  it("passes under qemu-x86_64 -cpu core2duo (no SSE4, no AVX)", async () => {
    const qemu = requireTool("qemu-x86_64", "apt-get install -y qemu-user");
    const result = await runCommand(
      qemu,
      [
        "-cpu",
        "core2duo",
        process.execPath,
        path.join(folder, "instrument-agent.mjs"),
        "smoke",
        "--model",
        model,
        "--smoke-tokens",
        "8",
        "--smoke-floor",
        "0.01",
        "--json",
      ],
      { cwd: folder, env: nodeOnly, timeoutMs: 280_000 },
    );
    const report = parse(result.stdout);
    expect(report.checks.filter((c) => !c.ok)).toEqual([]);
    expect(report.ok).toBe(true);
    expect(result.code).toBe(0);
  }, 300_000);

  it("exits 3 and names the MQTT check when the broker is unreachable", async () => {
    const port = await freePort();
    const result = await smoke(["--mqtt", `mqtt://127.0.0.1:${port}`, "--smoke-timeout", "3000", "--json"]);
    expect(result.code).toBe(3);
    const report = parse(result.stdout);
    expect(report.ok).toBe(false);
    const failed = report.checks.filter((c) => !c.ok);
    expect(failed.map((c) => c.name)).toEqual(["MQTT round trip"]);
    expect(failed[0]?.detail).toContain(`127.0.0.1:${port}`);
    const human = await smoke(["--mqtt", `mqtt://127.0.0.1:${port}`, "--smoke-timeout", "3000"]);
    expect(human.code).toBe(3);
    expect(human.stdout).toMatch(/^FAIL\s+MQTT round trip/m);
    expect(human.stdout).toContain("smoke: FAILED 1 of 7 checks (MQTT round trip)");
  });

  it("checks a real broker, a serial port and an instrument's *IDN? when configured", async () => {
    requireTool("mosquitto", "apt-get install -y mosquitto");
    requireTool("socat", "apt-get install -y socat");
    const port = await freePort();
    const broker = spawn("mosquitto", ["-p", String(port)], { stdio: "ignore" });
    children.push(broker);
    const ptys = tempDir("iagent-deploy-pty-");
    const socat = spawn("socat", [`pty,raw,echo=0,link=${ptys}/agent`, `pty,raw,echo=0,link=${ptys}/peer`], { stdio: "ignore" });
    children.push(socat);
    const instrument = createServer((socket) => {
      socket.setEncoding("utf8");
      socket.on("data", (text: string) => {
        if (text.includes("*IDN?")) socket.write("Keysight Technologies,N9020B,MY00000000,A.33.03\n");
      });
    });
    servers.push(instrument);
    await new Promise<void>((resolve) => instrument.listen(0, "127.0.0.1", resolve));
    const scpiPort = (instrument.address() as AddressInfo).port;
    await waitUntil(() => existsSync(`${ptys}/agent`), { what: "socat's pty", timeoutMs: 10_000, intervalMs: 50 });
    await waitForPort(port);
    const result = await smoke([
      "--mqtt",
      `mqtt://127.0.0.1:${port}`,
      "--serial",
      `${ptys}/agent`,
      "--instrument",
      `tcp://127.0.0.1:${scpiPort}`,
      "--json",
    ]);
    const report = parse(result.stdout);
    expect(report.checks.filter((c) => !c.ok)).toEqual([]);
    expect(report.checks.map((c) => c.name).slice(-3)).toEqual(["MQTT round trip", "serial port opens", "instrument *IDN?"]);
    expect(report.checks.at(-1)?.detail).toContain("N9020B");
    expect(result.code).toBe(0);
  });
});
