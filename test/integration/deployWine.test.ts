import { execFileSync, spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { copyFileSync, existsSync, readFileSync, symlinkSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SerialPortLink } from "../../common/serial/serialPortLink.js";
import { synthModel, tempDir } from "../helpers/models.js";
import { packRelease, requireTool, runCommand, windowsNode } from "../helpers/packRelease.js";

// The win-x64 archive, unpacked and run by the Windows Node 20 from the npm registry under
// Debian's wine: the nearest thing to the instrument's Windows this machine has.
// Wine's stdout must be a file (a pipe gives EBADF), so every run writes to files.
const WINE = "/usr/lib/wine/wine64";
const work = tempDir("iagent-wine-");
const prefix = path.join(work, "prefix");
const env = { ...process.env, WINEPREFIX: prefix, WINEDEBUG: "-all", NO_COLOR: "1" };
let folder: string;
let nodeExe: string;
const children: ChildProcess[] = [];

function toWindows(file: string): string {
  return `Z:${file.split("/").join("\\")}`;
}

/** Runs a Windows program under wine with stdout and stderr in files; returns them. */
async function wine(args: string[], options: { extraEnv?: NodeJS.ProcessEnv; timeoutMs?: number } = {}) {
  const out = path.join(work, `out-${Date.now()}-${Math.random().toString(36).slice(2)}.txt`);
  const err = `${out}.err`;
  const quoted = args.map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(" ");
  const result = await runCommand("sh", ["-c", `${WINE} ${quoted} > '${out}' 2> '${err}'`], {
    cwd: work,
    env: { ...env, ...options.extraEnv },
    timeoutMs: options.timeoutMs ?? 240_000,
  });
  return { code: result.code, stdout: readFileSync(out, "utf8"), stderr: readFileSync(err, "utf8") };
}

beforeAll(async () => {
  if (!existsSync(WINE)) throw new Error(`${WINE} is missing: install it with \`apt-get install -y wine64\` (.ci/run does)`);
  requireTool("unzip", "apt-get install -y unzip");
  const pack = packRelease("win-x64", tempDir("iagent-wine-pack-"));
  execFileSync("unzip", ["-q", pack.archive, "-d", work]);
  folder = path.join(work, path.basename(pack.folder));
  nodeExe = windowsNode();
  copyFileSync(await synthModel(tempDir("iagent-wine-model-")), path.join(work, "tiny.gguf"));
  // A fresh prefix says it is Windows 7, on which the agent must refuse to run.
  execFileSync(WINE, ["wineboot", "-i"], { env, stdio: "ignore", timeout: 180_000 });
}, 300_000);

afterAll(() => {
  for (const child of children) child.kill("SIGKILL");
  try {
    execFileSync("/usr/lib/wine/wineserver", ["-k"], { env, stdio: "ignore", timeout: 20_000 });
  } catch {
    // no wineserver left for this prefix
  }
});

describe("the win-x64 release under wine", () => {
  it("refuses Windows 7 in the launcher and in the agent, pointing to a host beside the instrument", async () => {
    const launcher = await wine(["cmd", "/c", toWindows(path.join(folder, "instrument-agent.cmd")), "--version"]);
    expect(launcher.stderr).toContain("needs Windows 10");
    expect(launcher.stderr).toContain("beside the instrument");
    expect(launcher.code).toBe(1);
    const agent = await wine(
      [nodeExe, toWindows(path.join(folder, "instrument-agent.mjs")), "smoke", "--model", "tiny.gguf", "--mlock", "off", "--json"],
      {
        extraEnv: { NODE_SKIP_PLATFORM_CHECK: "1" },
      },
    );
    expect(agent.code).toBe(3);
    const report = JSON.parse(agent.stdout) as { checks: { name: string; ok: boolean; detail: string }[] };
    expect(report.checks[0]?.name).toBe("host probe");
    expect(report.checks[0]?.detail).toContain("IA_ERR_OS_UNSUPPORTED");
    expect(report.checks[0]?.detail).toContain("beside the instrument");
  }, 120_000);

  it("on Windows 10 passes smoke --json with the Windows Node 20, and the .cmd launcher finds Node", async () => {
    execFileSync(WINE, ["winecfg", "-v", "win10"], { env, stdio: "ignore", timeout: 120_000 });
    const started = performance.now();
    const result = await wine([
      nodeExe,
      toWindows(path.join(folder, "instrument-agent.mjs")),
      "smoke",
      "--model",
      "tiny.gguf",
      "--mlock",
      "off",
      "--json",
    ]);
    const report = JSON.parse(result.stdout) as {
      ok: boolean;
      checks: { name: string; ok: boolean; detail: string }[];
      host: { platform: string };
    };
    expect(report.checks.filter((c) => !c.ok)).toEqual([]);
    expect(report.ok).toBe(true);
    expect(report.host.platform).toBe("win32");
    // llama.cpp ran in its own forked engine process, not inline.
    expect(report.checks.find((c) => c.name === "model loads")?.detail).toContain("engine process");
    expect(result.code).toBe(0);
    process.stderr.write(`wine smoke took ${Math.round(performance.now() - started)} ms\n`);
    const launcher = await wine(["cmd", "/c", toWindows(path.join(folder, "instrument-agent.cmd")), "--version"], {
      extraEnv: { WINEPATH: toWindows(path.dirname(nodeExe)) },
    });
    expect(launcher.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
    expect(launcher.code).toBe(0);
  }, 300_000);

  it("serves the serial console on COM5, which wine maps to a socat pty", async () => {
    requireTool("socat", "apt-get install -y socat");
    const ptys = tempDir("iagent-wine-pty-");
    const socat = spawn("socat", [`pty,raw,echo=0,link=${ptys}/agent`, `pty,raw,echo=0,link=${ptys}/peer`], { stdio: "ignore" });
    children.push(socat);
    for (let i = 0; i < 100 && !existsSync(`${ptys}/agent`); i++) await new Promise((r) => setTimeout(r, 50));
    symlinkSync(`${ptys}/agent`, path.join(prefix, "dosdevices", "com5"));

    const peer = new SerialPortLink({ path: `${ptys}/peer`, baudRate: 115200 });
    let received = "";
    await peer.open({ onData: (bytes) => (received += bytes.toString("utf8")) });
    const out = path.join(work, "run.out");
    const agent = spawn(
      "sh",
      [
        "-c",
        `exec ${WINE} '${nodeExe}' '${toWindows(path.join(folder, "instrument-agent.mjs"))}' run --model tiny.gguf --mlock off --mqtt off --serial COM5 --max-tokens 8 --temperature 0 > '${out}' 2>&1`,
      ],
      {
        cwd: work,
        env,
        stdio: "ignore",
      },
    );
    children.push(agent);
    try {
      const waitFor = async (text: string, from: number, ms: number) => {
        const until = Date.now() + ms;
        while (!received.slice(from).includes(text)) {
          if (Date.now() > until)
            throw new Error(
              `no ${JSON.stringify(text)} on the serial line after ${ms} ms; got ${JSON.stringify(received)}; agent log: ${readFileSync(out, "utf8")}`,
            );
          await new Promise((r) => setTimeout(r, 100));
        }
      };
      await waitFor("> ", 0, 120_000);
      const mark = received.length;
      await peer.write("/status\r");
      await waitFor("threads", mark, 30_000);
      const beforeQuestion = received.length;
      await peer.write("hello\r");
      await waitFor("> ", beforeQuestion + "hello".length, 60_000);
      expect(received.slice(beforeQuestion)).toContain("hello");
      expect(received).toContain("\r\n");
    } finally {
      agent.kill("SIGKILL");
      await peer.close();
    }
  }, 300_000);
});
