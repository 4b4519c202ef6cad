/**
 * What the host probe found. Plain data: the resource policy is a pure function of it, so
 * tests build these by hand for hosts they do not run on.
 */

/** CPU features the policy and the llama.cpp CPU variant care about. */
export interface CpuFlags {
  /** SSE4.2 (`sse4_2`). */
  sse42: boolean;
  /** AVX (`avx`). Core 2 and older Pentium/Celeron lack it. */
  avx: boolean;
  /** AVX2 (`avx2`). Haswell (2013) and later; llama.cpp's fast integer kernels need it. */
  avx2: boolean;
  /** AVX-512 foundation (`avx512f`). */
  avx512: boolean;
  /** AVX-512 VNNI (`avx512_vnni`): int8 dot products, makes Q8_0 fast. */
  avx512Vnni: boolean;
  /** AVX-VNNI (`avx_vnni`, Alder Lake and later): the 256-bit form of the same. */
  avxVnni: boolean;
  /** AMX int8 tiles (`amx_int8` or `amx_tile`, Sapphire Rapids and later). */
  amx: boolean;
  /** F16C half-float conversion (`f16c`). */
  f16c: boolean;
  /** FMA3 (`fma`). */
  fma: boolean;
}

/**
 * Where the memlock figure came from: the RLIMIT_MEMLOCK soft limit, nothing to read because
 * the OS has no such limit (Windows: llama.cpp uses VirtualLock and raises the working set),
 * or a Linux limit that could not be read.
 */
export type MemlockLimitSource = "rlimit" | "not-applicable" | "unknown";

/** How the physical core count was found. `logical-count` means it was not: it is a copy of logicalCores. */
export type PhysicalCoresSource = "cpuinfo-topology" | "cpuinfo-cpu-cores" | "logical-count";

export interface HostFacts {
  /** `process.platform`: 'linux', 'win32', ... */
  platform: NodeJS.Platform;
  /** `process.arch`: 'x64', ... */
  arch: string;
  /** `os.release()`: the kernel release on Linux, e.g. 6.1.0-18-amd64; 10.0.19045 on Windows. */
  osRelease: string;
  /** `os.version()`: the kernel build string on Linux, the edition on Windows. */
  kernel: string;
  /** PRETTY_NAME from /etc/os-release, e.g. "Ubuntu 20.04.6 LTS"; null when unread or not Linux. */
  distro: string | null;
  /** glibc in use, e.g. "2.31"; null on Windows, musl, or when the report lacks it. */
  glibcVersion: string | null;
  /** `os.release()` on Windows, e.g. "10.0.19045"; null elsewhere. */
  windowsVersion: string | null;

  totalMemBytes: number;
  freeMemBytes: number;
  /** Linux MemAvailable (memory obtainable without swapping); os.freemem() on Windows. */
  availableMemBytes: number;
  /** null when unknown (Windows, or /proc/meminfo unread). */
  swapTotalBytes: number | null;
  swapFreeBytes: number | null;

  physicalCores: number;
  physicalCoresSource: PhysicalCoresSource;
  logicalCores: number;
  cpuModel: string;
  /** null when the flags could not be read (Windows without PowerShell or wmic, or no /proc/cpuinfo). */
  cpuFlags: CpuFlags | null;

  /** RLIMIT_MEMLOCK soft limit in bytes; null = unlimited, not applicable (Windows) or unknown: see memlockLimitSource. */
  memlockLimitBytes: number | null;
  memlockLimitSource: MemlockLimitSource;
  /** CAP_IPC_LOCK in the effective set (mlock beyond the limit); null when not Linux or unread. */
  hasCapIpcLock: boolean | null;

  /** 1, 5 and 15 minute load averages; null on Windows (always zeros there). */
  loadAverage: [number, number, number] | null;

  /** Sources that could not be read, with the reason, e.g. "/proc/cpuinfo: ENOENT". */
  unreadable: string[];
  /** Assumptions the probe made, in sentences, e.g. that physical cores equal logical ones. */
  notes: string[];
}
