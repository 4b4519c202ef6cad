import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { ROOT } from "../helpers/bundle.js";
import { synthModel, tempDir } from "../helpers/models.js";
import { runCommand } from "../helpers/packRelease.js";

// `--mlock auto` locks when it will work and otherwise runs unlocked; only `--mlock on` fails
// smoke. Run from the checkout as a newcomer runs it (no bundle), on this machine's real
// memlock limit, then with the limit lowered to 64 KiB and CAP_IPC_LOCK dropped, which is
// the host of a user who is not root: there the lock of the 1.1 MB tiny model cannot take.

const dir = tempDir("iagent-mlock-");
let model: string;

interface SmokeReport {
  ok: boolean;
  checks: { name: string; ok: boolean; detail: string }[];
  plan: { mlock: { value: boolean; reason: string } } | null;
}

function agent(args: string[], options: { lowLimit?: boolean } = {}) {
  const command = [process.execPath, "--import", "tsx", path.join(ROOT, "agent", "main.ts"), ...args].map((a) => `'${a}'`).join(" ");
  // As root the capability lifts any limit, so drop it (setpriv is util-linux, always there);
  // another user has no CAP_IPC_LOCK to drop.
  const shell = options.lowLimit ? `ulimit -l 64 && exec ${command}` : `exec ${command}`;
  const argv =
    options.lowLimit && process.getuid?.() === 0
      ? ["setpriv", "--inh-caps=-ipc_lock", "--bounding-set=-ipc_lock", "sh", "-c", shell]
      : ["sh", "-c", shell];
  return runCommand(argv[0]!, argv.slice(1), { cwd: ROOT, env: { ...process.env, NO_COLOR: "1" } });
}

async function smoke(
  args: string[],
  options: { lowLimit?: boolean } = {},
): Promise<{ code: number | null; report: SmokeReport; stderr: string }> {
  const { code, signal, stdout, stderr } = await agent(["smoke", "--model", model, "--json", ...args], options);
  try {
    return { code, report: JSON.parse(stdout) as SmokeReport, stderr };
  } catch {
    throw new Error(`smoke printed no JSON report (exit ${String(code)}, signal ${String(signal)}):\n${stdout}\n${stderr}`);
  }
}

const mlockCheck = (report: SmokeReport) => report.checks.find((c) => c.name === "mlock as planned");

beforeAll(async () => {
  model = await synthModel(dir);
});

describe("smoke and mlock", () => {
  it("--mlock auto (the default) passes on this host's own memlock limit", async () => {
    const { code, report } = await smoke([]);
    expect(report.checks.filter((c) => !c.ok)).toEqual([]);
    expect(code).toBe(0);
    expect(mlockCheck(report)?.ok).toBe(true);
  }, 130_000);

  it("--mlock auto with a 64 KiB limit and no CAP_IPC_LOCK plans no lock, says why and the fix, and passes", async () => {
    const { code, report } = await smoke([], { lowLimit: true });
    expect(report.plan?.mlock.value).toBe(false);
    expect(report.plan?.mlock.reason).toContain("64 KiB");
    expect(report.plan?.mlock.reason).toContain("lacks CAP_IPC_LOCK");
    expect(mlockCheck(report)).toMatchObject({ ok: true });
    expect(mlockCheck(report)?.detail).toContain("off as planned");
    expect(mlockCheck(report)?.detail).toContain("ulimit -l unlimited");
    expect(code).toBe(0);
  }, 130_000);

  it("an answer on the same host logs the unlocked model once, at info, with the fix", async () => {
    const { code, stdout, stderr } = await agent(["ask", "--model", model, "--max-tokens", "4", "--log-level", "info", "hello"], {
      lowLimit: true,
    });
    expect(code).toBe(0);
    expect(stdout.length).toBeGreaterThan(0);
    const said = stderr.split("\n").filter((line) => line.includes("mlock auto: the model runs unlocked"));
    expect(said).toHaveLength(1);
    expect(said[0]).toContain('"level":30');
    expect(said[0]).toContain("ulimit -l unlimited");
  }, 130_000);

  it("--mlock on with the same limit reports the failed lock and exits 3", async () => {
    const { code, report } = await smoke(["--mlock", "on"], { lowLimit: true });
    const check = mlockCheck(report);
    expect(check?.ok).toBe(false);
    expect(check?.detail).toContain("did not take effect");
    expect(check?.detail).toContain("Fix:");
    expect(report.checks.filter((c) => !c.ok).map((c) => c.name)).toEqual(["mlock as planned"]);
    expect(code).toBe(3);
  }, 130_000);
});
