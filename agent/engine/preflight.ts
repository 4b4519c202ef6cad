import { existsSync, readdirSync, readFileSync } from "node:fs";
import { release } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { AgentError } from "../../common/errors.js";
import { glibcVersionOfThisProcess, MIN_GLIBC, olderThanMinGlibc } from "../host/glibc.js";

/**
 * Checks that run before node-llama-cpp is loaded: whether this OS can run the engine at
 * all, and which engine to load (the shipped prebuilt binaries or a local build), so a
 * host that cannot load them hears why and what to run, instead of a dlopen error.
 */

/** Node 20 and the prebuilt binaries need Windows 10 / Server 2016 (NT 10.0). */
export const MIN_WINDOWS_MAJOR = 10;

export interface EngineHost {
  platform: NodeJS.Platform;
  /** e.g. "2.31"; null on Windows, musl, or when unknown. */
  glibcVersion: string | null;
  /** `os.release()` on Windows, e.g. "10.0.19045"; null elsewhere. */
  windowsVersion: string | null;
}

export interface EngineInstall {
  /** node-llama-cpp's package folder, or null when it cannot be found. */
  packageDir: string | null;
  /** The folder name of the last local build (llama/lastBuild.json), when its binary exists. */
  localBuild: string | null;
}

export type EngineChoice = { kind: "prebuilt" } | { kind: "localBuild"; folder: string };

/**
 * The one command that builds llama.cpp from the source node-llama-cpp ships (no download).
 * Shown end to end in a Debian 11 root (README, Deploy): it clones llama/gitRelease.bundle with
 * git, then runs `npm run cmake-js-llama` (the pack links node_modules/.bin/cmake-js and
 * accepts CMake 3.16+); node-llama-cpp compiles with -march=native, one job per CPU up to 4.
 */
export function localBuildCommand(packageDir: string | null): string {
  const cli = packageDir ? path.join(packageDir, "dist", "cli", "cli.js") : "node_modules/node-llama-cpp/dist/cli/cli.js";
  return `node ${cli} source download --gpu false --noUsageExample`;
}

/**
 * Pure decision: refuse hosts that cannot run the engine (with the fix), else say which
 * engine to load. A local build wins when present: it was made for this host on purpose.
 */
export function chooseEngine(host: EngineHost, install: EngineInstall): EngineChoice {
  if (host.platform === "win32" && host.windowsVersion !== null) {
    const major = Number(host.windowsVersion.split(".")[0]);
    if (Number.isFinite(major) && major < MIN_WINDOWS_MAJOR) {
      throw new AgentError(
        "IA_ERR_OS_UNSUPPORTED",
        `Windows ${host.windowsVersion} is older than Windows 10: Node 20 and llama.cpp's binaries need Windows 10 / Server 2016 or newer. ` +
          "Run the agent on a host beside the instrument instead (Linux or Windows 10+), and reach the instrument over LAN (SCPI socket), RS-232 or GPIB-USB.",
      );
    }
  }
  if (install.localBuild) return { kind: "localBuild", folder: install.localBuild };
  if (host.platform === "linux" && host.glibcVersion !== null && olderThanMinGlibc(host.glibcVersion)) {
    throw new AgentError(
      "IA_ERR_GLIBC_TOO_OLD",
      `glibc ${host.glibcVersion} is older than ${MIN_GLIBC.join(".")}, which node-llama-cpp's prebuilt llama.cpp binaries need (Ubuntu 22.04+, Debian 12+). ` +
        `Build the engine locally from the llama.cpp source that node-llama-cpp ships (needs cmake 3.16+, make, g++, git and the npm that comes with Node.js; no download), once: ${localBuildCommand(install.packageDir)}`,
    );
  }
  return { kind: "prebuilt" };
}

export function engineHostOfThisProcess(): EngineHost {
  return {
    platform: process.platform,
    glibcVersion: process.platform === "linux" ? glibcVersionOfThisProcess() : null,
    windowsVersion: process.platform === "win32" ? release() : null,
  };
}

/** Finds node-llama-cpp's folder beside this module (source) or the bundle (release pack). */
export function findEngineInstall(from: string = fileURLToPath(import.meta.url)): EngineInstall {
  let dir = path.dirname(from);
  for (;;) {
    const candidate = path.join(dir, "node_modules", "node-llama-cpp");
    if (existsSync(path.join(candidate, "package.json"))) return { packageDir: candidate, localBuild: lastLocalBuild(candidate) };
    const up = path.dirname(dir);
    if (up === dir) return { packageDir: null, localBuild: null };
    dir = up;
  }
}

function lastLocalBuild(packageDir: string): string | null {
  try {
    const info = JSON.parse(readFileSync(path.join(packageDir, "llama", "lastBuild.json"), "utf8")) as { folderName?: unknown };
    if (typeof info.folderName !== "string") return null;
    const folder = path.join(packageDir, "llama", "localBuilds", info.folderName);
    return existsSync(folder) && readdirSync(folder).length > 0 ? info.folderName : null;
  } catch {
    return null;
  }
}

/** Runs before node-llama-cpp is imported: throws the coded refusal, or names the engine. */
export function preflightEngine(): EngineChoice {
  return chooseEngine(engineHostOfThisProcess(), findEngineInstall());
}
