import { fork } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath, pathToFileURL } from "node:url";
import { AgentError } from "../../../common/errors.js";
import { deserializeError } from "./engineProtocol.js";
import type { AgentToEngine, EngineLoadOptions, EngineToAgent, SerializedError } from "./engineProtocol.js";
import type { LlamaRuntimeOptions } from "../llamaRuntime.js";
import type { Logger } from "../../../common/logger.js";
import type {
  EngineRuntime,
  EngineStats,
  GenerateRequest,
  GenerateResult,
  RawEvaluationOptions,
  RawEvaluationResult,
  RuntimeInfo,
} from "../modelRuntime.js";

/**
 * llama.cpp in a child process of its own, behind the same `ModelRuntime` interface.
 *
 * Why: node-llama-cpp runs every decode and every sampling step on libuv's thread pool.
 * With the default four pool threads the decode hops between them, and the thread
 * llama.cpp starts for each decode often lands on the vCPU that is still busy, so the two
 * compute threads share one CPU. Measured here (2 vCPUs, Qwen2.5-0.5B Q8_0, 2 threads) a
 * 4-sequence batch took 190 ms with four pool threads and 105 ms with one, which is what
 * llama.cpp's own llama-batched-bench takes. One pool thread for the whole agent would make
 * file, DNS and serial-port work wait behind every decode; one pool thread in a process that
 * only runs llama.cpp costs nothing else. A native crash in llama.cpp now also ends only the
 * engine: the agent answers IA_ERR_ENGINE_EXITED and starts it again for the next question.
 */

/**
 * How the engine process starts: the same code as this process. From the bundle it forks the
 * bundle (main.ts then imports engineMain.ts); from a checkout (`npm start`, tests) it forks
 * engineMain.ts under tsx, so an edit is live in both processes without a build
 * (node-llama-cpp forks its own children with the parent's loader for the same reason,
 * `getForkExecArgv`).
 */
function engineEntry(): { script: string; execArgv: string[] } {
  const self = fileURLToPath(import.meta.url);
  if (self.endsWith(".mjs")) return { script: self, execArgv: [] };
  const script = path.join(path.dirname(self), "engineMain.ts");
  let tsx: string;
  try {
    // An absolute URL, so the child finds tsx whatever its working directory.
    tsx = pathToFileURL(createRequire(import.meta.url).resolve("tsx")).href;
  } catch (error) {
    throw new AgentError(
      "IA_ERR_ENGINE_EXITED",
      `the engine process runs ${script} under tsx, and tsx is not installed: run \`npm ci\` (or use --engine inline)`,
      { cause: error },
    );
  }
  return { script, execArgv: ["--import", tsx] };
}

const HIDE_WINDOW: { windowsHide: boolean } = { windowsHide: true };

/** How long an engine may take to leave after `dispose` before it is killed. */
const DISPOSE_GRACE_MS = 5000;

interface Pending {
  /** Takes the engine's answer, whose type the request's message decides (engineProtocol.ts). */
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
  onDelta?: ((text: string) => void) | undefined;
}

function levelMethod(logger: Logger, level: number): (obj: object, msg?: string) => void {
  if (level >= 50) return logger.error.bind(logger);
  if (level >= 40) return logger.warn.bind(logger);
  if (level >= 30) return logger.info.bind(logger);
  return logger.debug.bind(logger);
}

export class EngineProcess implements EngineRuntime {
  #info: RuntimeInfo | undefined;
  #slots = 0;
  #child: ChildProcess | undefined;
  /** The running start, shared by everyone who needs the engine while it loads. */
  #starting: Promise<void> | undefined;
  #pending = new Map<number, Pending>();
  #nextId = 0;
  #disposed = false;
  #restarts = 0;
  readonly #options: LlamaRuntimeOptions;
  readonly #log: Logger;

  private constructor(options: LlamaRuntimeOptions) {
    this.#options = options;
    this.#log = options.logger.child({ component: "engine" });
  }

  /** Starts the engine process and loads the model in it. */
  static async load(options: LlamaRuntimeOptions): Promise<EngineProcess> {
    const engine = new EngineProcess(options);
    await engine.#ensureRunning();
    return engine;
  }

  get info(): RuntimeInfo {
    if (!this.#info) throw new AgentError("IA_ERR_INTERNAL", "the engine has not loaded yet");
    return this.#info;
  }

  get slots(): number {
    return this.#slots;
  }

  get disposed(): boolean {
    return this.#disposed;
  }

  /** Engine processes started again after one ended (a crash, a kill): the next question starts a new one. */
  get restarts(): number {
    return this.#restarts;
  }

  /** The engine's process id while it runs. */
  get pid(): number | undefined {
    return this.#child?.pid;
  }

  async generate(slot: number, request: GenerateRequest): Promise<GenerateResult> {
    const { signal, onDelta, ...rest } = request;
    if (signal?.aborted) throw new AgentError("IA_ERR_CANCELLED", "cancelled before it started");
    await this.#ensureRunning();
    const id = ++this.#nextId;
    const onAbort = () => this.#send({ type: "abort", id });
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      return await this.#request<GenerateResult>(id, { type: "generate", id, slot, request: rest, stream: onDelta !== undefined }, onDelta);
    } finally {
      signal?.removeEventListener("abort", onAbort);
    }
  }

  countTokens(text: string): Promise<number> {
    return this.#call<number>((id) => ({ type: "countTokens", id, text }));
  }

  /** The plain node-llama-cpp loop inside the engine (`bench`'s baseline). */
  rawEvaluationBaseline(slot: number, options: RawEvaluationOptions): Promise<RawEvaluationResult> {
    return this.#call<RawEvaluationResult>((id) => ({ type: "raw", id, slot, options }));
  }

  stats(): Promise<EngineStats> {
    return this.#call<EngineStats>((id) => ({ type: "stats", id }));
  }

  async dispose(): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    const child = this.#child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    this.#send({ type: "dispose" });
    const timer = setTimeout(() => child.kill("SIGKILL"), DISPOSE_GRACE_MS);
    await exited;
    clearTimeout(timer);
  }

  /** A request that needs the running engine and nothing but its answer. */
  async #call<T>(message: (id: number) => AgentToEngine): Promise<T> {
    await this.#ensureRunning();
    const id = ++this.#nextId;
    return this.#request<T>(id, message(id));
  }

  #request<T>(id: number, message: AgentToEngine, onDelta?: (text: string) => void): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#pending.set(id, { resolve: (value) => resolve(value as T), reject, onDelta });
      this.#send(message);
    });
  }

  #send(message: AgentToEngine): void {
    const child = this.#child;
    if (child?.connected) child.send(message);
  }

  #ensureRunning(): Promise<void> {
    if (this.#disposed) return Promise.reject(new AgentError("IA_ERR_DISPOSED", "the model runtime is shutting down"));
    if (this.#child && this.#info && !this.#starting) return Promise.resolve();
    this.#starting ??= this.#start().finally(() => (this.#starting = undefined));
    return this.#starting;
  }

  #start(): Promise<void> {
    const options = this.#options;
    const restart = this.#info !== undefined;
    if (restart) {
      this.#restarts += 1;
      this.#log.warn({ model: options.modelLabel }, "starting the engine process again and reloading the model");
    }
    const entry = engineEntry();
    const child = fork(entry.script, [], {
      // On Windows the engine gets no console window of its own (a service or a console on the
      // instrument's desktop would flash one per start). fork passes this on to spawn, but
      // @types/node's ForkOptions leaves it out, hence the spread.
      ...HIDE_WINDOW,
      // Only the engine's libuv pool shrinks to one thread; this process keeps its four.
      env: { ...process.env, UV_THREADPOOL_SIZE: "1", INSTRUMENT_AGENT_ENGINE_CHILD: "1" },
      execArgv: entry.execArgv,
      // stdout belongs to the agent's answers (--json): anything native code prints goes to stderr.
      stdio: ["ignore", 2, 2, "ipc"],
    });
    this.#child = child;
    const { logger, onLoadProgress, ...plain } = options;
    const load: EngineLoadOptions = { ...plain, logLevel: logger.level, reportProgress: onLoadProgress !== undefined };
    return new Promise<void>((resolve, reject) => {
      let loaded = false;
      child.on("message", (message: EngineToAgent) => {
        switch (message.type) {
          case "loaded":
            loaded = true;
            this.#info = { ...message.info, engine: "process" };
            this.#slots = message.slots;
            resolve();
            break;
          case "loadFailed":
            reject(deserializeError(message.error));
            child.kill("SIGKILL");
            break;
          case "progress":
            options.onLoadProgress?.(message.fraction);
            break;
          case "log":
            this.#relayLog(message.line);
            break;
          case "delta":
            this.#pending.get(message.id)?.onDelta?.(message.text);
            break;
          case "done":
            this.#settle(message.id, undefined, message.result);
            break;
          case "failed":
            this.#settle(message.id, message.error);
            break;
        }
      });
      child.on("error", (error) => {
        if (!loaded)
          reject(
            new AgentError(
              "IA_ERR_ENGINE_EXITED",
              `the engine process could not start (${error.message}): ${process.execPath} ${[...entry.execArgv, entry.script].join(" ")}`,
              { cause: error },
            ),
          );
      });
      child.on("exit", (code, signal) => {
        if (this.#child === child) this.#child = undefined;
        const how = signal ? `by signal ${signal}${signal === "SIGKILL" ? " (out of memory?)" : ""}` : `with exit code ${code}`;
        const error = new AgentError("IA_ERR_ENGINE_EXITED", `the engine process (llama.cpp, pid ${child.pid}) ended ${how}`);
        if (!loaded) reject(error);
        for (const [id, pending] of this.#pending) {
          this.#pending.delete(id);
          pending.reject(error);
        }
        if (loaded && !this.#disposed) this.#log.error({ code, signal }, `${error.message}; the next question starts it again`);
      });
      child.send({ type: "load", options: load } satisfies AgentToEngine);
    });
  }

  #settle(id: number, error: SerializedError | undefined, result?: unknown): void {
    const pending = this.#pending.get(id);
    if (!pending) return;
    this.#pending.delete(id);
    if (error) pending.reject(deserializeError(error));
    else pending.resolve(result);
  }

  /** The engine's pino line, written again by the agent's logger at the same level (its `component` kept). */
  #relayLog(line: string): void {
    try {
      const { level, msg, time: _time, ...fields } = JSON.parse(line) as { level: number; msg?: string; time?: number };
      levelMethod(this.#options.logger, level)(fields, msg);
    } catch {
      this.#log.warn({ line }, "unreadable log line from the engine process");
    }
  }
}

/** The model runtime for `--engine`: an engine process (the default) or llama.cpp inside this process. */
export async function startEngine(options: LlamaRuntimeOptions, mode: "process" | "inline"): Promise<EngineRuntime> {
  if (mode === "inline") return (await import("../llamaRuntime.js")).LlamaRuntime.load(options);
  return EngineProcess.load(options);
}
