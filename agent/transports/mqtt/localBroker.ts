import { spawn, spawnSync } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { pbkdf2Sync, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createConnection, createServer } from "node:net";
import path from "node:path";
import { AgentError } from "../../../common/errors.js";
import type { Logger } from "../../../common/logger.js";
import { bindError, isLoopback } from "./embeddedBroker.js";

/**
 * `--mqtt embedded`: the broker on this host that the agent serves through, chosen so that a
 * newcomer gets MQTT 5 with no extra step:
 * 1. a broker already listening on the default 127.0.0.1:1883 (a mosquitto service is common
 *    on lab PCs) is used as it is;
 * 2. else the system's mosquitto is started as a child of the agent, with a generated
 *    configuration (this bind only, persistence in --state-dir) and stopped with it;
 * 3. else aedes runs in this process: MQTT 3.1.1 only, so no request/response with
 *    correlation data (mosquitto_rr) and no `$share` fleets.
 */

export interface LocalBrokerOptions {
  host: string;
  port: number;
  /** True when the bind is the default: a broker already there is used instead of failing. */
  reuseExisting: boolean;
  username?: string | undefined;
  password?: string | undefined;
  /** Where mosquitto keeps its persistence file and generated configuration. */
  stateDir: string;
  logger: Logger;
}

export interface LocalBroker {
  kind: "existing" | "mosquitto" | "aedes";
  url: string;
  /** What clients of this broker may speak: 5 (existing may turn out 3.1.1 once connected). */
  protocolVersion: 4 | 5;
  /** One line for the banner and the log, e.g. "mosquitto 2.0.11 (MQTT 5) at mqtt://127.0.0.1:1883, started by the agent". */
  description: string;
  /** The agent has begun to stop: the broker's ending from now on is expected, not a crash to repair. */
  stopping?(): void;
  close(): Promise<void>;
}

const MOSQUITTO_PLACES =
  process.platform === "win32"
    ? ["C:\\Program Files\\mosquitto\\mosquitto.exe", "C:\\Program Files (x86)\\mosquitto\\mosquitto.exe"]
    : [
        "/usr/sbin/mosquitto",
        "/usr/local/sbin/mosquitto",
        "/usr/bin/mosquitto",
        "/usr/local/bin/mosquitto",
        "/opt/homebrew/sbin/mosquitto",
      ];

/** The mosquitto binary and its version, or undefined when there is none. */
export function findMosquitto(explicit = process.env.INSTRUMENT_AGENT_MOSQUITTO): { file: string; version: string } | undefined {
  // INSTRUMENT_AGENT_MOSQUITTO: a mosquitto binary in an odd place, or `none` for aedes (tests).
  if (explicit === "none") return undefined;
  const onPath = (process.env.PATH ?? "")
    .split(path.delimiter)
    .filter(Boolean)
    .map((dir) => path.join(dir, process.platform === "win32" ? "mosquitto.exe" : "mosquitto"));
  for (const file of explicit ? [explicit] : [...onPath, ...MOSQUITTO_PLACES]) {
    if (!existsSync(file)) continue;
    // `mosquitto -h` prints "mosquitto version 2.0.11" and exits 3.
    const help = spawnSync(file, ["-h"], { encoding: "utf8", timeout: 3000, windowsHide: true });
    const match = /mosquitto version (\S+)/.exec(`${help.stdout ?? ""}${help.stderr ?? ""}`);
    if (match) return { file, version: match[1]! };
  }
  return undefined;
}

/** Whether something accepts TCP connections at host:port (within `ms`). */
export function isListening(host: string, port: number, ms = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host, port });
    const done = (up: boolean) => {
      socket.destroy();
      resolve(up);
    };
    socket.setTimeout(ms, () => done(false));
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}

/** Fails with IA_ERR_MQTT_BIND, as the aedes broker would, when host:port cannot be listened on. */
async function checkBindable(host: string, port: number): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const server = createServer();
    server.once("error", (error: NodeJS.ErrnoException) => reject(bindError(error, host, port)));
    server.listen(port, host, () => server.close(() => resolve()));
  });
}

/** A mosquitto 2 password file line: PBKDF2-SHA512, 101 iterations, as `mosquitto_passwd` writes it (`$7$`). */
export function mosquittoPasswordLine(username: string, password: string): string {
  const salt = randomBytes(12);
  const hash = pbkdf2Sync(password, salt, 101, 64, "sha512");
  return `${username}:$7$101$${salt.toString("base64")}$${hash.toString("base64")}`;
}

/** The generated mosquitto.conf: one listener on the bind, persistence in the state dir. */
export function mosquittoConfig(options: {
  host: string;
  port: number;
  dataDir: string;
  passwordFile?: string | undefined;
  runAsRoot: boolean;
}): string {
  const lines = [
    "# Written by instrument-agent at each start; edits are lost. Use --mqtt mqtt://... for a broker of your own.",
    "per_listener_settings false",
    `listener ${options.port} ${options.host}`,
    options.passwordFile ? `password_file ${options.passwordFile}` : "allow_anonymous true",
    "persistence true",
    // mosquitto wants the trailing separator on the location.
    `persistence_location ${options.dataDir}${path.sep}`,
    "autosave_interval 30",
    // Nagle's algorithm otherwise holds a small packet until the delayed ACK of the one before:
    // every question after the first on a connection reached its first chunk 45 ms late
    // (paho, which also set TCP_NODELAY on its own socket: 44.7 ms without this, 2.3 with it).
    "set_tcp_nodelay true",
    "log_dest stderr",
    "log_type error",
    "log_type warning",
    "log_type notice",
    "log_timestamp false",
  ];
  // Started as root, mosquitto drops to the `mosquitto` user unless told otherwise, and then
  // cannot write the persistence file in a root-owned state dir.
  if (options.runAsRoot) lines.push("user root");
  return `${lines.join("\n")}\n`;
}

const READY_TIMEOUT_MS = 5000;

async function startMosquitto(options: LocalBrokerOptions, binary: { file: string; version: string }, url: string): Promise<LocalBroker> {
  const log = options.logger.child({ component: "broker" });
  const dataDir = path.resolve(options.stateDir, "mosquitto");
  mkdirSync(dataDir, { recursive: true });
  let passwordFile: string | undefined;
  if (options.username !== undefined) {
    passwordFile = path.join(dataDir, "passwd");
    writeFileSync(passwordFile, `${mosquittoPasswordLine(options.username, options.password ?? "")}\n`, { mode: 0o600 });
  }
  const configFile = path.join(dataDir, "mosquitto.conf");
  const runAsRoot = typeof process.getuid === "function" && process.getuid() === 0;
  writeFileSync(configFile, mosquittoConfig({ host: options.host, port: options.port, dataDir, passwordFile, runAsRoot }));

  const pidFile = path.join(dataDir, "mosquitto.pid");
  let child: ChildProcess | undefined;
  let stopping = false;
  let lastLines: string[] = [];
  const launch = (): ChildProcess => {
    // Its own process group: a terminal's Ctrl-C, `kill %1` or a signal to the agent's group
    // must not end the broker before the agent has said goodbye through it (the finals of
    // cancelled answers, the retained offline status). The agent stops it last, in close().
    const started = spawn(binary.file, ["-c", configFile], {
      stdio: ["ignore", "ignore", "pipe"],
      windowsHide: true,
      detached: process.platform !== "win32",
    });
    started.stderr?.setEncoding("utf8");
    started.stderr?.on("data", (text: string) => {
      for (const line of text.split(/\r?\n/).filter(Boolean)) {
        lastLines = [...lastLines.slice(-4), line];
        log.debug({ pid: started.pid }, line);
      }
    });
    started.on("error", (error) => log.error({ err: error }, "mosquitto could not start"));
    started.on("exit", (code, signal) => {
      if (stopping || child !== started) return;
      // A broker that dies under a running agent comes back; the agent's client reconnects.
      // Judged 2 s later: a service manager that signals the whole cgroup (systemd's default
      // KillMode) ends mosquitto and the agent together, and the agent's stop is no crash.
      log.debug({ code, signal }, "mosquitto ended");
      setTimeout(() => {
        if (stopping) return;
        log.error({ code, signal, last: lastLines.join(" | ") }, "mosquitto ended; starting it again");
        launch();
      }, 2000).unref();
    });
    child = started;
    // The next start finds a broker left by a killed agent through this file (leftoverMosquitto).
    if (started.pid !== undefined) writeFileSync(pidFile, `${started.pid}\n`);
    return started;
  };
  const first = launch();

  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (!(await isListening(options.host, options.port, 200))) {
    if (first.exitCode !== null || first.signalCode !== null || Date.now() > deadline) {
      stopping = true;
      first.kill("SIGKILL");
      throw new AgentError(
        "IA_ERR_MQTT_BIND",
        `embedded MQTT broker: mosquitto (${binary.file}) did not start listening on ${options.host}:${options.port}: ${lastLines.join(" | ") || "no output"}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const description = `mosquitto ${binary.version} (MQTT 5) at ${url}, started by the agent`;
  log.info({ pid: first.pid, config: configFile, persistence: dataDir }, description);
  let closing: Promise<void> | undefined;
  return {
    kind: "mosquitto",
    url,
    protocolVersion: 5,
    description,
    stopping() {
      stopping = true;
    },
    close() {
      stopping = true;
      closing ??= new Promise<void>((resolve) => {
        const current = child;
        if (!current || current.exitCode !== null || current.signalCode !== null) return resolve();
        const kill = setTimeout(() => current.kill("SIGKILL"), 3000);
        current.once("exit", () => {
          clearTimeout(kill);
          rmSync(pidFile, { force: true });
          resolve();
        });
        // SIGTERM: mosquitto saves its persistence file and exits.
        current.kill("SIGTERM");
      });
      return closing;
    },
  };
}

/**
 * The mosquitto that an earlier run of the agent started and left behind when it was killed
 * (kill -9 does not reach the child): its pid file in the state dir names a live process
 * that runs our configuration. Linux only (/proc); elsewhere it is used as any existing broker.
 */
function leftoverMosquitto(stateDir: string): number | undefined {
  const dataDir = path.resolve(stateDir, "mosquitto");
  try {
    const pid = Number(readFileSync(path.join(dataDir, "mosquitto.pid"), "utf8").trim());
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8");
    return cmdline.includes(path.join(dataDir, "mosquitto.conf")) ? pid : undefined;
  } catch {
    return undefined;
  }
}

export async function startLocalBroker(options: LocalBrokerOptions): Promise<LocalBroker> {
  const host = options.host.replace(/^\[(.*)\]$/, "$1");
  const url = `mqtt://${host.includes(":") ? `[${host}]` : host}:${options.port}`;
  const log = options.logger.child({ component: "broker" });
  const leftover = leftoverMosquitto(options.stateDir);
  if (leftover !== undefined && (await isListening(host, options.port))) {
    // Adopted: its sessions and queued questions are still in it; it stops with this agent.
    const description = `mosquitto (MQTT 5) at ${url}, left running by an earlier run of the agent (pid ${leftover}) and taken over`;
    log.warn(description);
    return {
      kind: "mosquitto",
      url,
      protocolVersion: 5,
      description,
      async close() {
        try {
          process.kill(leftover, "SIGTERM");
        } catch {
          // Already gone.
        }
      },
    };
  }
  if (options.reuseExisting && (await isListening(host, options.port))) {
    const description = `the broker already listening at ${url}`;
    log.info(`using ${description} (not starting one)`);
    return { kind: "existing", url, protocolVersion: 5, description, close: async () => undefined };
  }
  await checkBindable(host, options.port);
  const mosquitto = findMosquitto();
  if (mosquitto) return startMosquitto({ ...options, host }, mosquitto, url);
  const { startEmbeddedBroker } = await import("./embeddedBroker.js");
  const aedes = await startEmbeddedBroker({
    host: options.host,
    port: options.port,
    username: options.username,
    password: options.password,
    logger: options.logger,
  });
  const description = `aedes (MQTT 3.1.1 only) at ${aedes.url}, in the agent`;
  log.warn(
    { loopback: isLoopback(host) },
    `no mosquitto found: serving MQTT through ${description}. MQTT 5 clients (mosquitto_rr, paho with MQTTv5), response topics with correlation data and --fleet shared subscriptions need mosquitto: install it (apt-get install mosquitto) and start the agent again`,
  );
  return { kind: "aedes", url: aedes.url, protocolVersion: 4, description, close: () => aedes.close() };
}
