import { execFileSync } from "node:child_process";
import { rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { tempDir } from "./models.js";
import { requireTool } from "./packRelease.js";

export interface TmuxSessionOptions {
  /** Working directory of the command. */
  cwd: string;
  /** The command line run in the pane, through the shell as a person would type it. */
  command: string;
  /** Environment of the tmux server, and so of the command. Defaults to `process.env`. */
  env?: NodeJS.ProcessEnv;
  /** Terminal columns. Defaults to `120`. */
  width?: number;
  /** Terminal rows. Defaults to `40`. */
  height?: number;
}

/**
 * A real terminal: a tmux server on a socket of its own with one pane running a command. The
 * pane stays after the command ends, so its last screen and its exit status can be read.
 */
export class TmuxSession {
  readonly #tmux: string;
  readonly #socket: string;
  readonly #server: { pid: number; socketPath: string };
  #disposed = false;

  constructor(tmux: string, socket: string, server: { pid: number; socketPath: string }) {
    this.#tmux = tmux;
    this.#socket = socket;
    this.#server = server;
  }

  /** Everything the pane showed, scrollback included: wrapped lines joined, trailing spaces cut. */
  screen(): string {
    const text = this.#run(["capture-pane", "-p", "-J", "-S", "-", "-t", "main"]);
    return text
      .split("\n")
      .map((line) => line.trimEnd())
      .join("\n")
      .replace(/\n+$/, "");
  }

  /** Types `text` literally, as keystrokes. */
  type(text: string): void {
    this.#run(["send-keys", "-t", "main", "-l", text]);
  }

  /** Presses a named key, such as `Enter` or `C-c`. */
  press(key: string): void {
    this.#run(["send-keys", "-t", "main", key]);
  }

  /** The command's exit status once it has ended (128 + n for signal n, as a shell says it); `undefined` while it runs. */
  exitStatus(): number | undefined {
    // Debian's tmux links libutempter, whose own SIGCHLD handler can swallow the one for the
    // pane's command (tmux/tmux#311, #4559): the command stays a zombie and the pane looks
    // alive. One more SIGCHLD to this server makes it reap the command.
    process.kill(this.#server.pid, "SIGCHLD");
    // tmux marks the pane dead when the terminal closes, and learns the status a moment later.
    const [dead, status, signal] = this.#run([
      "display-message",
      "-p",
      "-t",
      "main",
      "#{pane_dead}:#{pane_dead_status}:#{pane_dead_signal}",
    ])
      .trim()
      .split(":");
    if (dead !== "1") return undefined;
    if (status) return Number(status);
    return signal ? 128 + Number(signal) : undefined;
  }

  /** Resolves with the exit status once the command ends; throws with the screen after `timeoutMs`. */
  async waitForExit(timeoutMs: number): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const status = this.exitStatus();
      if (status !== undefined) return status;
      if (Date.now() > deadline) throw new Error(`the command still runs after ${timeoutMs} ms; the screen:\n${this.screen()}`);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }

  /** Polls the screen until `check` holds and returns it; throws with the screen after `timeoutMs` or when the command ends first. */
  async waitFor(what: string, check: (screen: string) => boolean, timeoutMs: number): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const screen = this.screen();
      if (check(screen)) return screen;
      const status = this.exitStatus();
      if (status !== undefined) throw new Error(`${what}: the command ended first (exit status ${status}); the screen:\n${screen}`);
      if (Date.now() > deadline) throw new Error(`${what}: not on the screen after ${timeoutMs} ms; the screen:\n${screen}`);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }

  /** Kills the tmux server and everything in its pane, and removes its socket. Idempotent. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    try {
      this.#run(["kill-server"]);
    } catch {
      // The server is already gone.
    }
    rmSync(this.#server.socketPath, { force: true });
  }

  #run(args: string[]): string {
    return execFileSync(this.#tmux, ["-L", this.#socket, ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  }
}

/** Starts a tmux server with its own config (none of the user's) and the command in session `main`. */
export function startTmux(options: TmuxSessionOptions): TmuxSession {
  const tmux = requireTool("tmux", "apt-get install tmux");
  const config = path.join(tempDir("iagent-tmux-"), "tmux.conf");
  writeFileSync(
    config,
    ["set-option -g remain-on-exit on", "set-option -g history-limit 50000", "set-option -g status off", ""].join("\n"),
  );
  const socket = `iagent-${process.pid}-${Date.now()}`;
  const { cwd, command, env = process.env, width = 120, height = 40 } = options;
  execFileSync(
    tmux,
    ["-L", socket, "-f", config, "new-session", "-d", "-s", "main", "-x", String(width), "-y", String(height), "-c", cwd, command],
    { env, stdio: ["ignore", "pipe", "pipe"] },
  );
  const [pid, socketPath] = execFileSync(tmux, ["-L", socket, "display-message", "-p", "#{pid} #{socket_path}"], { encoding: "utf8" })
    .trim()
    .split(" ");
  return new TmuxSession(tmux, socket, { pid: Number(pid), socketPath: socketPath! });
}
