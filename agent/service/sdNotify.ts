import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import type { Logger } from "../../common/logger.js";

/**
 * systemd's readiness protocol (sd_notify(3)) for `Type=notify` with `WatchdogSec=`: READY=1
 * once the agent serves, WATCHDOG=1 from the agent's own event loop every WATCHDOG_USEC/2, and
 * STOPPING=1 when the stop begins. Without NOTIFY_SOCKET (not under systemd, or `Type=simple`)
 * and on Windows every call is a no-op.
 *
 * How the datagram is sent: by running systemd's own `systemd-notify VAR=1` for each message.
 * NOTIFY_SOCKET is a unix *datagram* socket (a path, or `@name` in the abstract namespace), and
 * Node cannot send one: `dgram` is UDP only, `net` is stream only, libuv has no unix datagrams.
 * zigbee2mqtt's lib/util/sd-notify.ts uses the native `unix-dgram` module; this agent has no
 * native module of its own on Linux (the release pack carries only node-llama-cpp's and
 * serialport's prebuilds), so that is out. A long-lived python3 or socat helper would need a
 * package the target may lack, while `systemd-notify` is part of systemd itself, so it is on every
 * host where NOTIFY_SOCKET is set, and it understands both socket forms. The cost:
 * - the sender is a child, not the main PID, so the unit needs `NotifyAccess=all` (run as a
 *   non-root user, the kernel refuses to let the child claim the agent's PID in its credentials);
 * - systemd 246+ (Debian 12: 252, Ubuntu 22.04: 249) makes `systemd-notify` wait until systemd has
 *   processed the message (BARRIER=1), which is what lets systemd find the short-lived sender's
 *   unit; older systemd may drop a message from a process that already exited;
 * - one fork per message: every WatchdogSec/2 (15 s with the unit's 30 s), cheap next to the
 *   answers; the model lives in the engine child, so the agent that forks is small.
 * The spawn is started by a timer on the event loop, so a blocked loop really misses its pings.
 *
 * Messages go out one at a time, in order (two children at once could overtake each other);
 * a watchdog ping while one is still waiting is dropped, not queued. A failing notify never
 * stops the agent: one warning, then quiet (a later success is not logged either).
 */

/** Sends one notification (`READY=1`, ...); rejects when it could not. */
export type NotifySend = (message: string) => Promise<void>;

export interface SdNotifier {
  /** False when there is nothing to notify (no NOTIFY_SOCKET, or Windows). */
  readonly enabled: boolean;
  /** How often WATCHDOG=1 goes out after `ready()`, or undefined when systemd asked for no watchdog. */
  readonly watchdogMs: number | undefined;
  /** READY=1, then the watchdog pings. Once; later calls do nothing. */
  ready(): void;
  /** Stops the pings, then STOPPING=1. Once; later calls do nothing. */
  stopping(): void;
  /** Resolves when every notification asked for so far has been sent or has failed. */
  flushed(): Promise<void>;
}

export interface SdNotifyOptions {
  logger: Pick<Logger, "warn" | "debug">;
  /** Where NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID are read, and then removed from
   *  (so that children such as mosquitto, which speaks sd_notify too, do not report for the
   *  agent). Defaults to `process.env`. */
  env?: NodeJS.ProcessEnv;
  /** Defaults to `process.platform`. */
  platform?: NodeJS.Platform;
  /** Defaults to `process.pid`. */
  pid?: number;
  /** Defaults to running `systemd-notify`. */
  send?: NotifySend;
}

const NOTIFY_VARIABLES = ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"] as const;

/**
 * The watchdog interval in ms: half of WATCHDOG_USEC, as sd_watchdog_enabled(3) advises; undefined
 * when WATCHDOG_USEC is unset, not a positive integer, or WATCHDOG_PID names another process.
 */
export function watchdogInterval(env: NodeJS.ProcessEnv, pid: number): number | undefined {
  const usec = env.WATCHDOG_USEC?.trim();
  if (!usec || !/^\d+$/.test(usec) || Number(usec) <= 0) return undefined;
  const forPid = env.WATCHDOG_PID?.trim();
  if (forPid && Number(forPid) !== pid) return undefined;
  return Math.max(1, Math.floor(Number(usec) / 2000));
}

/** The notifier for this process; reads (and clears) the systemd variables now. */
export function createSdNotifier(options: SdNotifyOptions): SdNotifier {
  const env = options.env ?? process.env;
  const socket = env.NOTIFY_SOCKET;
  const pid = options.pid ?? process.pid;
  const watchdogMs = watchdogInterval(env, pid);
  const usecSet = env.WATCHDOG_USEC !== undefined;
  for (const name of NOTIFY_VARIABLES) delete env[name];
  const enabled = Boolean(socket) && (options.platform ?? process.platform) !== "win32";
  if (!enabled) return disabledNotifier;

  const send = options.send ?? systemdNotify(socket!);
  const { logger } = options;
  let warned = false;
  const warnOnce = (error: unknown) => {
    if (warned) return;
    warned = true;
    const reason = error instanceof Error ? error.message : String(error);
    logger.warn({ reason }, "could not notify systemd (the agent keeps serving; no further notify warnings)");
  };
  if (usecSet && watchdogMs === undefined) logger.debug("WATCHDOG_USEC is set but not for this process (or not valid): no watchdog pings");

  let chain: Promise<void> = Promise.resolve();
  const post = (message: string): Promise<void> => {
    chain = chain.then(() => send(message)).catch(warnOnce);
    return chain;
  };
  let pingWaiting = false;
  let timer: NodeJS.Timeout | undefined;
  let readySent = false;
  let stoppingSent = false;

  return {
    enabled,
    watchdogMs,
    ready() {
      if (readySent || stoppingSent) return;
      readySent = true;
      void post("READY=1");
      if (watchdogMs === undefined) return;
      logger.debug({ everyMs: watchdogMs }, "systemd watchdog: pinging from the event loop");
      timer = setInterval(() => {
        if (pingWaiting) return;
        pingWaiting = true;
        void post("WATCHDOG=1").then(() => (pingWaiting = false));
      }, watchdogMs);
      // A timer that is the last thing alive must not keep the process from exiting.
      timer.unref();
    },
    stopping() {
      if (stoppingSent) return;
      stoppingSent = true;
      if (timer) clearInterval(timer);
      timer = undefined;
      void post("STOPPING=1");
    },
    flushed: () => chain,
  };
}

const disabledNotifier: SdNotifier = {
  enabled: false,
  watchdogMs: undefined,
  ready: () => undefined,
  stopping: () => undefined,
  flushed: () => Promise.resolve(),
};

/** Runs `systemd-notify <message>` with only NOTIFY_SOCKET in its environment. */
function systemdNotify(socket: string): NotifySend {
  const binary = ["/usr/bin/systemd-notify", "/bin/systemd-notify"].find((file) => existsSync(file)) ?? "systemd-notify";
  return (message) =>
    new Promise((resolve, reject) => {
      execFile(binary, [message], { env: { NOTIFY_SOCKET: socket }, timeout: 10_000, windowsHide: true }, (error, _stdout, stderr) => {
        if (!error) return resolve();
        reject(new Error(`${binary} ${message}: ${String(stderr).trim() || error.message}`));
      });
    });
}
