import { spawn, spawnSync } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

/** The refusals the firmware-bridge issue lists: each must exit 2 and never reach the instrument. */
export const REFUSED_LINES = [
  ":FREQ:CENT 1e9",
  "*RST",
  ":sens:freq:cent 2e9",
  "FREQ:CENT?;:FREQ:CENT 1e9",
  "FREQ:CENT?\n*RST",
  ":SYST:PRES",
  ":INIT:CONT OFF",
];

export interface PtyPair {
  /** One end (the simulator's). */
  a: string;
  /** The other end (the agent's). */
  b: string;
  stop(): Promise<void>;
}

/** A socat pty pair; fails (never skips) when socat is missing. */
export async function startPtyPair(dir: string, prefix = "pty"): Promise<PtyPair> {
  const probe = spawnSync("socat", ["-V"], { encoding: "utf8" });
  if (probe.error) throw new Error("socat is missing, and these tests need a pty pair: apt-get install socat");
  const a = path.join(dir, `${prefix}A`);
  const b = path.join(dir, `${prefix}B`);
  const child: ChildProcess = spawn("socat", [`pty,raw,echo=0,link=${a}`, `pty,raw,echo=0,link=${b}`], { stdio: "ignore" });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  for (let i = 0; i < 100 && !(existsSync(a) && existsSync(b)); i++) await sleep(50);
  if (!existsSync(a) || !existsSync(b)) {
    child.kill("SIGTERM");
    throw new Error(`socat did not create ${a} and ${b}`);
  }
  return {
    a,
    b,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      await exited;
    },
  };
}
