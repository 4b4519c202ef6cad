import { execFileSync, spawn, spawnSync } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { createConnection, createServer } from "node:net";
import path from "node:path";
import { tempDir } from "./models.js";

/** A real mosquitto on a free loopback port with its own temp config, started and stopped by one test file. */
export interface Mosquitto {
  readonly port: number;
  readonly url: string;
  readonly dir: string;
  /** Stops it (SIGTERM; persistence, if on, is saved) and starts it again on the same port. */
  restart(): Promise<void>;
  stop(): Promise<void>;
  /** Its log so far, for failure messages. */
  log(): string;
}

export interface MosquittoOptions {
  /** Users and passwords; with any, anonymous clients are refused. Defaults to anonymous access. */
  users?: Record<string, string>;
  /** Keep sessions and retained messages across `restart()`. Defaults to false. */
  persistence?: boolean;
  /** Listen on this port (e.g. one an agent already tries). Defaults to a free one. */
  port?: number;
  /** Serve MQTT over TLS with this server certificate (see `makeTestCa`); the URL is then `mqtts://`. Defaults to plain TCP. */
  tls?: { cert: string; key: string } | undefined;
}

/** A CA and a server certificate it signed for 127.0.0.1 (PEM files), as a lab with a private CA has. */
export interface TestCa {
  ca: string;
  serverCert: string;
  serverKey: string;
}

/** Makes a fresh CA and a server certificate for IP 127.0.0.1 with openssl, in a new temp directory. */
export function makeTestCa(): TestCa {
  const openssl = findBinary("openssl");
  const dir = tempDir("iagent-test-ca-");
  const file = (name: string) => path.join(dir, name);
  const run = (...args: string[]) => execFileSync(openssl, args, { stdio: ["ignore", "ignore", "pipe"] });
  run(
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-days",
    "2",
    "-subj",
    "/CN=instrument-agent test CA",
    "-keyout",
    file("ca.key"),
    "-out",
    file("ca.pem"),
  );
  run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", file("server.key"), "-out", file("server.csr"));
  writeFileSync(file("server.ext"), "subjectAltName=IP:127.0.0.1\n");
  run(
    "x509",
    "-req",
    "-in",
    file("server.csr"),
    "-CA",
    file("ca.pem"),
    "-CAkey",
    file("ca.key"),
    "-CAcreateserial",
    "-days",
    "2",
    "-extfile",
    file("server.ext"),
    "-out",
    file("server.pem"),
  );
  return { ca: file("ca.pem"), serverCert: file("server.pem"), serverKey: file("server.key") };
}

function findBinary(name: string): string {
  for (const dir of (process.env.PATH ?? "").split(path.delimiter).concat(["/usr/sbin", "/usr/local/sbin", "/sbin"])) {
    const candidate = path.join(dir, name);
    if (existsSync(candidate)) return candidate;
  }
  throw new Error(
    `${name} is not installed: apt-get install mosquitto mosquitto-clients (the MQTT tests need a real broker; .ci/run installs it)`,
  );
}

export function requireMosquittoClients(): { pub: string; sub: string } {
  return { pub: findBinary("mosquitto_pub"), sub: findBinary("mosquitto_sub") };
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Resolves once something accepts TCP connections on the port. */
export async function waitForPort(port: number, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = createConnection({ port, host: "127.0.0.1" });
      socket.once("connect", () => {
        socket.destroy();
        resolve(true);
      });
      socket.once("error", () => resolve(false));
    });
    if (open) return;
    if (Date.now() > until) throw new Error(`nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function startMosquitto(options: MosquittoOptions = {}): Promise<Mosquitto> {
  const binary = findBinary("mosquitto");
  const dir = tempDir("iagent-mosquitto-");
  const conf = path.join(dir, "mosquitto.conf");
  const writeConfig = (port: number) => {
    const lines = [`listener ${port} 127.0.0.1`, "log_dest stderr", "log_type error", "log_type warning", "log_type notice"];
    if (options.tls) lines.push(`certfile ${options.tls.cert}`, `keyfile ${options.tls.key}`);
    // Run as root, mosquitto drops to user `mosquitto` and then cannot read root's 0600 files.
    if (process.getuid?.() === 0) lines.push("user root");
    if (options.users) {
      const passwd = path.join(dir, "passwd");
      writeFileSync(passwd, "");
      for (const [user, password] of Object.entries(options.users))
        execFileSync(findBinary("mosquitto_passwd"), ["-b", passwd, user, password]);
      lines.push("allow_anonymous false", `password_file ${passwd}`);
    } else {
      lines.push("allow_anonymous true");
    }
    if (options.persistence) lines.push("persistence true", `persistence_location ${dir}/`, "autosave_interval 1");
    writeFileSync(conf, `${lines.join("\n")}\n`);
  };

  let port = options.port ?? (await freePort());
  let child: ChildProcess | undefined;
  let log = "";
  /** Starts mosquitto; resolves false when it could not bind the port (taken since freePort saw it free). */
  const launch = async (): Promise<boolean> => {
    const started = spawn(binary, ["-c", conf], { stdio: ["ignore", "pipe", "pipe"] });
    started.stdout!.setEncoding("utf8").on("data", (d: string) => (log += d));
    started.stderr!.setEncoding("utf8").on("data", (d: string) => (log += d));
    child = started;
    const exited = new Promise<"exited">((resolve) => started.once("exit", () => resolve("exited")));
    const listening = waitForPort(port).then(
      () => "listening" as const,
      (error: Error) => error,
    );
    const outcome = await Promise.race([listening, exited]);
    if (outcome === "listening" && started.exitCode === null) return true;
    if (/Address already in use/.test(log)) return false;
    throw new Error(
      `mosquitto did not start on 127.0.0.1:${port} (${outcome === "exited" ? "it exited" : String(outcome)}): ${log.trim()}`,
    );
  };
  writeConfig(port);
  // freePort's port can be taken by another process before mosquitto binds it: try another.
  for (let attempt = 1; !(await launch()); attempt++) {
    if (options.port !== undefined || attempt >= 5) throw new Error(`mosquitto cannot listen on 127.0.0.1:${port}: ${portHolder(port)}`);
    port = await freePort();
    log = "";
    writeConfig(port);
  }
  const halt = async () => {
    const running = child;
    if (!running || running.exitCode !== null || running.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => running.once("exit", () => resolve()));
    running.kill("SIGTERM");
    await exited;
  };
  return {
    port,
    url: `${options.tls ? "mqtts" : "mqtt"}://127.0.0.1:${port}`,
    dir,
    async restart() {
      await halt();
      if (!(await launch())) throw new Error(`mosquitto cannot listen on 127.0.0.1:${port} again: ${portHolder(port)}`);
    },
    stop: halt,
    log: () => log,
  };
}

/** Who listens on a local TCP port, as `ss` names it, for messages when a port is taken. */
export function portHolder(port: number): string {
  const ss = spawnSync("ss", ["-ltnpH", `sport = :${port}`], { encoding: "utf8" });
  return ss.status === 0 && ss.stdout.trim() !== "" ? ss.stdout.trim().replace(/\s+/g, " ") : "ss could not name the process";
}
