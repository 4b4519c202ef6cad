import { readFile } from "node:fs/promises";
import os from "node:os";
import { glibcVersionOfThisProcess } from "./glibc.js";
import type { CpuFlags, HostFacts, PhysicalCoresSource } from "./hostFacts.js";

/**
 * Gathers HostFacts from /proc and the os module. Never throws for a missing or unreadable
 * source: it records it in `unreadable` and falls back to what the os module says.
 * The parse helpers are pure and exported so they can be tested on fixture text.
 */

const KIB = 1024;

export interface Meminfo {
  totalBytes: number | null;
  freeBytes: number | null;
  /** MemAvailable; null on kernels before 3.14, which lack it. */
  availableBytes: number | null;
  swapTotalBytes: number | null;
  swapFreeBytes: number | null;
  /** MemFree + Buffers + Cached: the stand-in for MemAvailable on old kernels. */
  reclaimableEstimateBytes: number | null;
}

/** /proc/meminfo text to bytes (the file counts in kB, meaning KiB). */
export function parseMeminfo(text: string): Meminfo {
  const kib = new Map<string, number>();
  for (const line of text.split("\n")) {
    const match = /^([\w()]+):\s+(\d+)(?:\s+kB)?\s*$/.exec(line.trim());
    if (match?.[1] !== undefined && match[2] !== undefined) kib.set(match[1], Number(match[2]));
  }
  const bytes = (key: string): number | null => {
    const value = kib.get(key);
    return value === undefined ? null : value * KIB;
  };
  const free = bytes("MemFree");
  const buffers = bytes("Buffers") ?? 0;
  const cached = bytes("Cached") ?? 0;
  return {
    totalBytes: bytes("MemTotal"),
    freeBytes: free,
    availableBytes: bytes("MemAvailable"),
    swapTotalBytes: bytes("SwapTotal"),
    swapFreeBytes: bytes("SwapFree"),
    reclaimableEstimateBytes: free === null ? null : free + buffers + cached,
  };
}

export interface Cpuinfo {
  /** Number of `processor` entries. */
  logicalCores: number;
  /** null when the file has no topology fields (some VMs, some kernels). */
  physicalCores: number | null;
  physicalCoresSource: Exclude<PhysicalCoresSource, "logical-count"> | null;
  modelName: string | null;
  /** null when no `flags` line was found. */
  flags: CpuFlags | null;
}

function cpuFlagsFrom(list: ReadonlySet<string>): CpuFlags {
  return {
    sse42: list.has("sse4_2"),
    avx: list.has("avx"),
    avx2: list.has("avx2"),
    avx512: list.has("avx512f"),
    avx512Vnni: list.has("avx512_vnni"),
    avxVnni: list.has("avx_vnni"),
    amx: list.has("amx_int8") || list.has("amx_tile"),
    f16c: list.has("f16c"),
    fma: list.has("fma"),
  };
}

/**
 * /proc/cpuinfo text. Physical cores are the unique (physical id, core id) pairs; without
 * core ids, the sum of `cpu cores` over the unique physical ids; otherwise unknown.
 */
export function parseCpuinfo(text: string): Cpuinfo {
  const blocks = text
    .split(/\n\s*\n/)
    .map((block) => {
      const fields = new Map<string, string>();
      for (const line of block.split("\n")) {
        const colon = line.indexOf(":");
        if (colon > 0) fields.set(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
      }
      return fields;
    })
    .filter((fields) => fields.has("processor"));

  const modelName = blocks.map((b) => b.get("model name")).find((v) => v !== undefined && v !== "") ?? null;
  const flagsLine = blocks.map((b) => b.get("flags")).find((v) => v !== undefined);
  const flags = flagsLine === undefined ? null : cpuFlagsFrom(new Set(flagsLine.split(/\s+/)));

  let physicalCores: number | null = null;
  let physicalCoresSource: Cpuinfo["physicalCoresSource"] = null;
  if (blocks.length > 0 && blocks.every((b) => b.has("physical id") && b.has("core id"))) {
    physicalCores = new Set(blocks.map((b) => `${b.get("physical id")}/${b.get("core id")}`)).size;
    physicalCoresSource = "cpuinfo-topology";
  } else if (blocks.length > 0 && blocks.every((b) => b.has("physical id") && b.has("cpu cores"))) {
    const perPackage = new Map<string, number>();
    for (const b of blocks) perPackage.set(b.get("physical id") ?? "", Number(b.get("cpu cores")));
    const sum = [...perPackage.values()].reduce((a, n) => a + n, 0);
    if (Number.isInteger(sum) && sum > 0) {
      physicalCores = sum;
      physicalCoresSource = "cpuinfo-cpu-cores";
    }
  }
  return { logicalCores: blocks.length, physicalCores, physicalCoresSource, modelName, flags };
}

export interface MemlockLimits {
  /** Soft limit in bytes; null = unlimited. */
  softBytes: number | null;
  /** Hard limit in bytes; null = unlimited. */
  hardBytes: number | null;
}

/** The "Max locked memory" row of /proc/self/limits; null when the row is missing or malformed. */
export function parseLimits(text: string): MemlockLimits | null {
  const match = /^Max locked memory\s+(\S+)\s+(\S+)/m.exec(text);
  if (match?.[1] === undefined || match[2] === undefined) return null;
  const value = (field: string): number | null | undefined =>
    field === "unlimited" ? null : /^\d+$/.test(field) ? Number(field) : undefined;
  const softBytes = value(match[1]);
  const hardBytes = value(match[2]);
  if (softBytes === undefined || hardBytes === undefined) return null;
  return { softBytes, hardBytes };
}

const CAP_IPC_LOCK = 14n;

/** Whether CapEff in /proc/self/status holds CAP_IPC_LOCK (bit 14); null when the line is missing. */
export function parseCapEff(text: string): boolean | null {
  const match = /^CapEff:\s*([0-9a-fA-F]+)\s*$/m.exec(text);
  if (match?.[1] === undefined) return null;
  return ((BigInt(`0x${match[1]}`) >> CAP_IPC_LOCK) & 1n) === 1n;
}

/**
 * Whether /proc/self/uid_map is the initial user namespace's identity map (`0 0 4294967295`).
 * mlock checks CAP_IPC_LOCK against the initial namespace, so the capability shown in CapEff
 * inside a container's own user namespace (rootless podman, userns-remap) does not lift the limit.
 */
export function isInitialUserNamespace(uidMap: string): boolean {
  const rows = uidMap
    .trim()
    .split("\n")
    .map((row) => row.trim().split(/\s+/).join(" "))
    .filter((row) => row !== "");
  return rows.length === 1 && rows[0] === "0 0 4294967295";
}

/** PRETTY_NAME from /etc/os-release, unquoted; null when absent. */
export function parseOsRelease(text: string): string | null {
  const match = /^PRETTY_NAME=(.*)$/m.exec(text);
  if (match?.[1] === undefined) return null;
  const raw = match[1].trim();
  const unquoted = /^(["'])(.*)\1$/.exec(raw)?.[2] ?? raw;
  return unquoted === "" ? null : unquoted;
}

/** The parts of `os` and `process` the probe reads; a test can hand in another host's. */
export interface SystemInfo {
  platform: NodeJS.Platform;
  arch: string;
  totalmem(): number;
  freemem(): number;
  cpus(): Array<{ model: string }>;
  release(): string;
  version(): string;
  loadavg(): number[];
  /** glibc version of the running process, or null. */
  glibcVersion(): string | null;
}

export interface ProbeHostOptions {
  /** Reads a text file. Defaults to `fs.readFile(path, "utf8")`. */
  readText?: (path: string) => Promise<string>;
  /** The os and process facts. Defaults to this process's `os` module and `process`. */
  system?: SystemInfo;
}

export const nodeSystemInfo: SystemInfo = {
  platform: process.platform,
  arch: process.arch,
  totalmem: () => os.totalmem(),
  freemem: () => os.freemem(),
  cpus: () => os.cpus(),
  release: () => os.release(),
  version: () => os.version(),
  loadavg: () => os.loadavg(),
  glibcVersion: glibcVersionOfThisProcess,
};

const readUtf8 = (path: string): Promise<string> => readFile(path, "utf8");

/** Reads every source at once; a failed read becomes null plus a line in `unreadable`. */
async function readAll(
  paths: readonly string[],
  readText: (path: string) => Promise<string>,
  unreadable: string[],
): Promise<Map<string, string | null>> {
  const results = await Promise.allSettled(paths.map((p) => readText(p)));
  const texts = new Map<string, string | null>();
  results.forEach((result, i) => {
    const p = paths[i] ?? "";
    if (result.status === "fulfilled") {
      texts.set(p, result.value);
      return;
    }
    const reason = result.reason as { code?: unknown; message?: unknown } | undefined;
    const why = typeof reason?.code === "string" ? reason.code : String(reason?.message ?? reason);
    unreadable.push(`${p}: ${why}`);
    texts.set(p, null);
  });
  return texts;
}

function safe<T>(read: () => T, fallback: T, label: string, unreadable: string[]): T {
  try {
    return read();
  } catch (error) {
    unreadable.push(`${label}: ${(error as Error).message}`);
    return fallback;
  }
}

/** Facts every platform offers through the os module; the Linux path refines them. */
function baseFacts(system: SystemInfo, unreadable: string[]): HostFacts {
  const cpus = safe(() => system.cpus(), [], "os.cpus()", unreadable);
  const logical = Math.max(1, cpus.length);
  const isWindows = system.platform === "win32";
  const release = safe(() => system.release(), "", "os.release()", unreadable);
  const free = safe(() => system.freemem(), 0, "os.freemem()", unreadable);
  const load = safe(() => system.loadavg(), [], "os.loadavg()", unreadable);
  return {
    platform: system.platform,
    arch: system.arch,
    osRelease: release,
    kernel: safe(() => system.version(), "", "os.version()", unreadable),
    distro: null,
    glibcVersion: isWindows ? null : system.glibcVersion(),
    windowsVersion: isWindows ? release : null,
    totalMemBytes: safe(() => system.totalmem(), 0, "os.totalmem()", unreadable),
    freeMemBytes: free,
    availableMemBytes: free,
    swapTotalBytes: null,
    swapFreeBytes: null,
    physicalCores: logical,
    physicalCoresSource: "logical-count",
    logicalCores: logical,
    cpuModel: cpus[0]?.model.trim() || "unknown",
    cpuFlags: null,
    memlockLimitBytes: null,
    memlockLimitSource: isWindows ? "not-applicable" : "unknown",
    hasCapIpcLock: null,
    loadAverage: isWindows || load.length < 3 ? null : [load[0] ?? 0, load[1] ?? 0, load[2] ?? 0],
    unreadable,
    notes: [],
  };
}

function applyMeminfo(facts: HostFacts, text: string | null): void {
  if (text === null) {
    facts.notes.push("available memory is os.freemem() because /proc/meminfo could not be read");
    return;
  }
  const mem = parseMeminfo(text);
  if (mem.totalBytes !== null) facts.totalMemBytes = mem.totalBytes;
  if (mem.freeBytes !== null) facts.freeMemBytes = mem.freeBytes;
  facts.swapTotalBytes = mem.swapTotalBytes;
  facts.swapFreeBytes = mem.swapFreeBytes;
  if (mem.availableBytes !== null) {
    facts.availableMemBytes = mem.availableBytes;
  } else if (mem.reclaimableEstimateBytes !== null) {
    facts.availableMemBytes = Math.min(mem.reclaimableEstimateBytes, facts.totalMemBytes);
    facts.notes.push("this kernel has no MemAvailable: available memory is estimated as MemFree + Buffers + Cached");
  }
}

function applyCpuinfo(facts: HostFacts, text: string | null): void {
  if (text === null) {
    facts.notes.push(`physical cores unknown (no /proc/cpuinfo): assumed equal to the ${facts.logicalCores} logical CPUs`);
    return;
  }
  const cpu = parseCpuinfo(text);
  if (cpu.logicalCores > 0) facts.logicalCores = cpu.logicalCores;
  if (cpu.modelName !== null) facts.cpuModel = cpu.modelName;
  facts.cpuFlags = cpu.flags;
  if (cpu.flags === null) facts.notes.push("/proc/cpuinfo has no flags line: CPU features unknown");
  if (cpu.physicalCores !== null && cpu.physicalCoresSource !== null) {
    facts.physicalCores = Math.min(cpu.physicalCores, facts.logicalCores);
    facts.physicalCoresSource = cpu.physicalCoresSource;
  } else {
    facts.physicalCores = facts.logicalCores;
    facts.notes.push(
      `/proc/cpuinfo has no physical id/core id fields (usual in some VMs): physical cores assumed equal to the ${facts.logicalCores} logical CPUs`,
    );
  }
}

function applyLimits(facts: HostFacts, text: string | null): void {
  const limits = text === null ? null : parseLimits(text);
  if (limits === null) {
    if (text !== null) facts.notes.push("/proc/self/limits has no readable 'Max locked memory' row: memlock limit unknown");
    return;
  }
  facts.memlockLimitBytes = limits.softBytes;
  facts.memlockLimitSource = "rlimit";
}

async function probeLinux(facts: HostFacts, readText: (path: string) => Promise<string>): Promise<void> {
  const paths = ["/proc/meminfo", "/proc/cpuinfo", "/proc/self/limits", "/proc/self/status", "/etc/os-release"];
  const texts = await readAll(paths, readText, facts.unreadable);
  applyMeminfo(facts, texts.get("/proc/meminfo") ?? null);
  applyCpuinfo(facts, texts.get("/proc/cpuinfo") ?? null);
  applyLimits(facts, texts.get("/proc/self/limits") ?? null);
  const status = texts.get("/proc/self/status") ?? null;
  facts.hasCapIpcLock = status === null ? null : parseCapEff(status);
  if (facts.hasCapIpcLock === true) {
    // No uid_map (a kernel without user namespaces) means the initial namespace.
    const uidMap = await readText("/proc/self/uid_map").catch(() => null);
    if (uidMap !== null && !isInitialUserNamespace(uidMap)) {
      facts.hasCapIpcLock = false;
      facts.notes.push(
        "CAP_IPC_LOCK is held only inside a user namespace (/proc/self/uid_map is not the host's identity map), where it does not lift the memlock limit: counted as absent",
      );
    }
  }
  const osRelease = texts.get("/etc/os-release") ?? null;
  facts.distro = osRelease === null ? null : parseOsRelease(osRelease);
}

function probeWindows(facts: HostFacts): void {
  facts.notes.push(
    `Windows: physical cores cannot be read without wmic or PowerShell, so they are assumed equal to the ${facts.logicalCores} logical CPUs`,
    "Windows: CPU feature flags are not read (node-llama-cpp still picks its CPU variant at load time)",
    "Windows: available memory is os.freemem(); there is no memlock limit (llama.cpp uses VirtualLock and raises the working set)",
  );
}

/** Facts about this host. Never throws: what could not be read is listed in `unreadable`. */
export async function probeHost(options: ProbeHostOptions = {}): Promise<HostFacts> {
  const system = options.system ?? nodeSystemInfo;
  const facts = baseFacts(system, []);
  if (system.platform === "linux") {
    await probeLinux(facts, options.readText ?? readUtf8);
  } else if (system.platform === "win32") {
    probeWindows(facts);
  } else {
    facts.notes.push(`${system.platform}: only the os module is read; physical cores, CPU flags and memlock limit are unknown`);
  }
  return facts;
}
