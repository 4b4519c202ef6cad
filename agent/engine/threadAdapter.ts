import { readFileSync } from "node:fs";

/**
 * `--threads auto` while answering: how many of the planned threads to use when other
 * processes (the instrument's own software, a compiler, a virus scan) want the cores too.
 *
 * llama.cpp's threads meet at a barrier after every operation, so one descheduled thread
 * stalls all of them: on this 2-core VM with a `nice 19` compiler on both cores, 2 threads
 * made 1.2 tokens/s and 1 thread 11.5 (README, Speed). Linux only: elsewhere the planned
 * count stays.
 */

export interface CpuSample {
  /** All CPUs' jiffies since boot (user..steal). */
  total: number;
  /** Jiffies in which the CPUs were idle (idle + iowait). */
  idle: number;
  /** This process's user + system ticks (the same USER_HZ unit). */
  self: number;
}

/** Parses the aggregate `cpu` line of /proc/stat and the times in /proc/self/stat. */
export function parseCpuSample(procStat: string, selfStat: string): CpuSample | null {
  const line = procStat.split("\n").find((l) => l.startsWith("cpu "));
  if (!line) return null;
  const fields = line.trim().split(/\s+/).slice(1, 9).map(Number);
  if (fields.length < 8 || fields.some((n) => !Number.isFinite(n))) return null;
  const [user, nice, system, idle, iowait, irq, softirq, steal] = fields as [
    number,
    number,
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  // The command name may hold spaces and parentheses: fields count from the last ')'.
  const rest = selfStat.slice(selfStat.lastIndexOf(")") + 2).split(" ");
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) return null;
  return { total: user + nice + system + idle + iowait + irq + softirq + steal, idle: idle + iowait, self: utime + stime };
}

export function readCpuSample(): CpuSample | null {
  if (process.platform !== "linux") return null;
  try {
    return parseCpuSample(readFileSync("/proc/stat", "utf8"), readFileSync("/proc/self/stat", "utf8"));
  } catch {
    return null;
  }
}

/** Cores' worth of CPU that everything but this process used between two samples (steal included). */
export function othersBusyCores(before: CpuSample, after: CpuSample, cores: number): number {
  const elapsedPerCore = (after.total - before.total) / cores;
  if (elapsedPerCore <= 0) return 0;
  const busy = after.total - before.total - (after.idle - before.idle);
  const self = after.self - before.self;
  return Math.max(0, (busy - self) / elapsedPerCore);
}

/**
 * The thread count for the CPU that others leave free, between 1 and the planned count. It
 * drops a thread when others take 0.6 of a core or more and takes it back only when they
 * use 0.3 or less, so a load near the line does not flip it every second.
 */
export function threadsForContention(options: { planned: number; cores: number; others: number; current: number }): number {
  const { planned, cores, others, current } = options;
  const free = cores - others;
  const clamp = (n: number) => Math.max(1, Math.min(planned, n));
  const down = clamp(Math.ceil(free - 0.4));
  const up = clamp(Math.floor(free + 0.3));
  if (down < current) return down;
  if (up > current) return up;
  return clamp(current);
}

export interface ThreadAdapterOptions {
  planned: number;
  cores: number;
  /** Applies a new count (node-llama-cpp's `llama.maxThreads`). */
  apply: (threads: number) => void;
  onChange?: ((threads: number, others: number) => void) | undefined;
  intervalMs?: number;
  /** Idle time after which the next answer starts again from the planned count. */
  forgetAfterMs?: number;
  sample?: () => CpuSample | null;
}

/**
 * Samples only while answering: between answers the cores may be busy with something that
 * will be over when the next question comes (in `bench`, llama-bench itself).
 */
export class ThreadAdapter {
  #current: number;
  #active = 0;
  #timer: NodeJS.Timeout | undefined;
  #last: CpuSample | null = null;
  #idleSince = 0;
  readonly #options: Required<Omit<ThreadAdapterOptions, "onChange">> & Pick<ThreadAdapterOptions, "onChange">;

  constructor(options: ThreadAdapterOptions) {
    this.#options = { intervalMs: 1000, forgetAfterMs: 5000, sample: readCpuSample, ...options };
    this.#current = options.planned;
  }

  get threads(): number {
    return this.#current;
  }

  /** An answer starts; the first one after a quiet spell goes back to the planned count. */
  begin(): void {
    this.#active += 1;
    if (this.#active > 1) return;
    if (this.#idleSince && Date.now() - this.#idleSince >= this.#options.forgetAfterMs) this.#set(this.#options.planned, 0);
    this.#last = this.#options.sample();
    if (!this.#last) return;
    this.#timer = setInterval(() => this.#tick(), this.#options.intervalMs);
    this.#timer.unref();
  }

  end(): void {
    this.#active = Math.max(0, this.#active - 1);
    if (this.#active > 0) return;
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#idleSince = Date.now();
  }

  #tick(): void {
    const now = this.#options.sample();
    if (!now || !this.#last) return;
    const others = othersBusyCores(this.#last, now, this.#options.cores);
    this.#last = now;
    this.#set(threadsForContention({ planned: this.#options.planned, cores: this.#options.cores, others, current: this.#current }), others);
  }

  #set(threads: number, others: number): void {
    if (threads === this.#current) return;
    this.#current = threads;
    this.#options.apply(threads);
    this.#options.onChange?.(threads, others);
  }
}
