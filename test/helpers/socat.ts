import { spawn, spawnSync } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { SerialPortLink } from "../../common/serial/serialPortLink.js";

/** socat is a test dependency: missing, it fails the suite with how to install it (never a skip). */
export function requireSocat(): void {
  const found = spawnSync("socat", ["-V"], { stdio: "ignore" });
  if (found.error || found.status !== 0) {
    throw new Error("socat is not installed; the serial tests need it for pty pairs: `sudo apt-get install socat` (.ci/run installs it)");
  }
}

/**
 * A socat pty pair standing in for a serial cable: the agent opens `a`, the test's
 * terminal opens `b`. `kill()` removes both ptys (a USB-serial adapter unplugged);
 * `start()` again recreates them under the same link names.
 */
export class PtyPair {
  readonly a: string;
  readonly b: string;
  #child: ChildProcess | undefined;

  constructor(dir: string, name = "tty") {
    this.a = path.join(dir, `${name}-agent`);
    this.b = path.join(dir, `${name}-terminal`);
  }

  async start(): Promise<void> {
    requireSocat();
    const child = spawn("socat", ["-d", "-d", `pty,raw,echo=0,link=${this.a}`, `pty,raw,echo=0,link=${this.b}`], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    this.#child = child;
    let stderr = "";
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`socat did not create the pty pair in 5 s: ${stderr}`)), 5000);
      child.stderr!.setEncoding("utf8").on("data", (chunk: string) => {
        stderr += chunk;
        if (stderr.includes("starting data transfer loop") && existsSync(this.a) && existsSync(this.b)) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.on("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`socat exited with ${code}: ${stderr}`));
      });
    });
    child.removeAllListeners("exit");
  }

  /** Kills this pair's socat (only the one this helper started) and waits until the links are gone. */
  async kill(): Promise<void> {
    const child = this.#child;
    this.#child = undefined;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGTERM");
    await exited;
  }
}

/** The far end of the line, driven as a person at a terminal would: type bytes, read what comes back. */
export class PtyTerminal {
  readonly link: SerialPortLink;
  #received = Buffer.alloc(0);
  #waiters = new Set<() => void>();
  closed = false;

  constructor(devicePath: string, baudRate = 9600) {
    this.link = new SerialPortLink({ path: devicePath, baudRate });
  }

  async open(): Promise<void> {
    this.closed = false;
    await this.link.open({
      onData: (bytes) => {
        this.#received = Buffer.concat([this.#received, bytes]);
        for (const wake of this.#waiters) wake();
      },
      onClose: () => {
        this.closed = true;
      },
    });
  }

  /** Everything received so far, decoded as UTF-8. */
  get text(): string {
    return this.#received.toString("utf8");
  }

  /** Everything received so far, as bytes. */
  get bytes(): Buffer {
    return this.#received;
  }

  /** Sends bytes as typed (or pasted) on the terminal. */
  async type(bytes: string | Buffer): Promise<void> {
    await this.link.write(bytes);
  }

  /** Waits until `pattern` appears in what was received after `from` (a character offset); returns the index after it. */
  async waitFor(pattern: string | RegExp, options: { from?: number; timeoutMs?: number } = {}): Promise<number> {
    const from = options.from ?? 0;
    const timeoutMs = options.timeoutMs ?? 20_000;
    const find = (): number => {
      const rest = this.text.slice(from);
      if (typeof pattern === "string") {
        const at = rest.indexOf(pattern);
        return at < 0 ? -1 : from + at + pattern.length;
      }
      const match = pattern.exec(rest);
      return match ? from + match.index + match[0].length : -1;
    };
    const found = find();
    if (found >= 0) return found;
    return new Promise<number>((resolve, reject) => {
      const wake = () => {
        const at = find();
        if (at < 0) return;
        cleanup();
        resolve(at);
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(
          new Error(
            `timed out after ${timeoutMs} ms waiting for ${JSON.stringify(String(pattern))}; received after offset ${from}:\n${JSON.stringify(this.text.slice(from).slice(-2000))}`,
          ),
        );
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        this.#waiters.delete(wake);
      };
      this.#waiters.add(wake);
    });
  }

  /** Waits until nothing has arrived for `quietMs`; returns the text length then. */
  async settle(quietMs = 1000, timeoutMs = 30_000): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    let length = this.#received.length;
    for (;;) {
      await new Promise((resolve) => setTimeout(resolve, quietMs));
      if (this.#received.length === length) return this.text.length;
      length = this.#received.length;
      if (Date.now() > deadline) throw new Error(`the line did not go quiet in ${timeoutMs} ms`);
    }
  }

  async close(): Promise<void> {
    await this.link.close();
  }
}
