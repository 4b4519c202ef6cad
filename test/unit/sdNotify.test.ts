import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { createSdNotifier, watchdogInterval } from "../../agent/service/sdNotify.js";
import type { NotifySend } from "../../agent/service/sdNotify.js";

// The sd_notify timing and no-op rules, with fake timers and a recording sender in place of
// systemd-notify. test/integration/sdNotify.test.ts runs the real bundle against a real socket.
const logger = () => ({ warn: vi.fn(), debug: vi.fn() });

function recorder() {
  const sent: string[] = [];
  const send: NotifySend = (message) => {
    sent.push(message);
    return Promise.resolve();
  };
  return { sent, send };
}

/** Lets the notifier's promise chain run (fake timers do not drive microtasks by themselves). */
const settle = () => vi.advanceTimersByTimeAsync(0);

beforeEach(() => {
  vi.useFakeTimers();
});

afterEach(() => {
  vi.useRealTimers();
});

describe("watchdogInterval", () => {
  it("is half of WATCHDOG_USEC, in ms", () => {
    expect(watchdogInterval({ WATCHDOG_USEC: "2000000" }, 42)).toBe(1000);
    expect(watchdogInterval({ WATCHDOG_USEC: "30000000" }, 42)).toBe(15_000);
    expect(watchdogInterval({ WATCHDOG_USEC: "1000" }, 42)).toBe(1);
  });

  it("is undefined without WATCHDOG_USEC, with a value that is not a positive integer, or for another WATCHDOG_PID", () => {
    expect(watchdogInterval({}, 42)).toBeUndefined();
    expect(watchdogInterval({ WATCHDOG_USEC: "" }, 42)).toBeUndefined();
    expect(watchdogInterval({ WATCHDOG_USEC: "0" }, 42)).toBeUndefined();
    expect(watchdogInterval({ WATCHDOG_USEC: "-5" }, 42)).toBeUndefined();
    expect(watchdogInterval({ WATCHDOG_USEC: "2s" }, 42)).toBeUndefined();
    expect(watchdogInterval({ WATCHDOG_USEC: "2000000", WATCHDOG_PID: "41" }, 42)).toBeUndefined();
    expect(watchdogInterval({ WATCHDOG_USEC: "2000000", WATCHDOG_PID: "42" }, 42)).toBe(1000);
  });
});

describe("createSdNotifier", () => {
  it("does nothing without NOTIFY_SOCKET: no message, no timer", async () => {
    const { sent, send } = recorder();
    const notifier = createSdNotifier({ logger: logger(), env: { WATCHDOG_USEC: "2000000" }, platform: "linux", send });
    expect(notifier.enabled).toBe(false);
    notifier.ready();
    expect(vi.getTimerCount()).toBe(0);
    await vi.advanceTimersByTimeAsync(10_000);
    notifier.stopping();
    await settle();
    expect(sent).toEqual([]);
  });

  it("does nothing on Windows, even with NOTIFY_SOCKET set", async () => {
    const { sent, send } = recorder();
    const notifier = createSdNotifier({
      logger: logger(),
      env: { NOTIFY_SOCKET: "/run/x", WATCHDOG_USEC: "2000000" },
      platform: "win32",
      send,
    });
    expect(notifier.enabled).toBe(false);
    notifier.ready();
    await vi.advanceTimersByTimeAsync(10_000);
    notifier.stopping();
    await settle();
    expect(sent).toEqual([]);
  });

  it("sends READY=1, then WATCHDOG=1 every WATCHDOG_USEC/2, then STOPPING=1, and no ping after it", async () => {
    const { sent, send } = recorder();
    const env: NodeJS.ProcessEnv = { NOTIFY_SOCKET: "@sock", WATCHDOG_USEC: "2000000", OTHER: "kept" };
    const notifier = createSdNotifier({ logger: logger(), env, platform: "linux", pid: 7, send });
    expect(notifier.enabled).toBe(true);
    expect(notifier.watchdogMs).toBe(1000);
    await vi.advanceTimersByTimeAsync(5000);
    expect(sent).toEqual([]);
    notifier.ready();
    await settle();
    expect(sent).toEqual(["READY=1"]);
    await vi.advanceTimersByTimeAsync(999);
    expect(sent).toEqual(["READY=1"]);
    await vi.advanceTimersByTimeAsync(1);
    expect(sent).toEqual(["READY=1", "WATCHDOG=1"]);
    await vi.advanceTimersByTimeAsync(2000);
    expect(sent).toEqual(["READY=1", "WATCHDOG=1", "WATCHDOG=1", "WATCHDOG=1"]);
    notifier.stopping();
    await settle();
    expect(vi.getTimerCount()).toBe(0);
    await vi.advanceTimersByTimeAsync(5000);
    expect(sent).toEqual(["READY=1", "WATCHDOG=1", "WATCHDOG=1", "WATCHDOG=1", "STOPPING=1"]);
    notifier.ready();
    notifier.stopping();
    await settle();
    expect(sent).toHaveLength(5);
    // The variables are the agent's alone: children (mosquitto speaks sd_notify too) do not see them.
    expect(env).toEqual({ OTHER: "kept" });
  });

  it("unrefs the watchdog timer, so it never keeps the process alive", () => {
    const spy = vi.spyOn(globalThis, "setInterval");
    const notifier = createSdNotifier({
      logger: logger(),
      env: { NOTIFY_SOCKET: "/s", WATCHDOG_USEC: "2000000" },
      platform: "linux",
      send: recorder().send,
    });
    notifier.ready();
    const timer = spy.mock.results[0]?.value as NodeJS.Timeout;
    expect(spy).toHaveBeenCalledTimes(1);
    expect(timer.hasRef()).toBe(false);
    notifier.stopping();
    spy.mockRestore();
  });

  it("sends no ping without WATCHDOG_USEC, or when WATCHDOG_PID is another process", async () => {
    for (const env of [{ NOTIFY_SOCKET: "/s" }, { NOTIFY_SOCKET: "/s", WATCHDOG_USEC: "2000000", WATCHDOG_PID: "8" }]) {
      const { sent, send } = recorder();
      const notifier = createSdNotifier({ logger: logger(), env, platform: "linux", pid: 7, send });
      expect(notifier.watchdogMs).toBeUndefined();
      notifier.ready();
      expect(vi.getTimerCount()).toBe(0);
      await vi.advanceTimersByTimeAsync(10_000);
      notifier.stopping();
      await settle();
      expect(sent).toEqual(["READY=1", "STOPPING=1"]);
    }
  });

  it("sends one message at a time, in order, and drops a ping while one is still waiting", async () => {
    const sent: string[] = [];
    const pending: (() => void)[] = [];
    const send: NotifySend = (message) =>
      new Promise((resolve) => {
        sent.push(message);
        pending.push(resolve);
      });
    const notifier = createSdNotifier({
      logger: logger(),
      env: { NOTIFY_SOCKET: "/s", WATCHDOG_USEC: "2000000" },
      platform: "linux",
      send,
    });
    notifier.ready();
    await vi.advanceTimersByTimeAsync(3000);
    // READY=1 has not finished: the first ping waits behind it, the next two are dropped.
    expect(sent).toEqual(["READY=1"]);
    pending.shift()!();
    await settle();
    expect(sent).toEqual(["READY=1", "WATCHDOG=1"]);
    notifier.stopping();
    await settle();
    expect(sent).toEqual(["READY=1", "WATCHDOG=1"]);
    pending.shift()!();
    await settle();
    expect(sent).toEqual(["READY=1", "WATCHDOG=1", "STOPPING=1"]);
    pending.shift()!();
    await notifier.flushed();
  });

  it("keeps going when sending fails, with one warning in all", async () => {
    const log = logger();
    const sent: string[] = [];
    const send: NotifySend = (message) => {
      sent.push(message);
      return Promise.reject(new Error("systemd-notify: No such file or directory"));
    };
    const notifier = createSdNotifier({ logger: log, env: { NOTIFY_SOCKET: "/s", WATCHDOG_USEC: "2000000" }, platform: "linux", send });
    notifier.ready();
    await vi.advanceTimersByTimeAsync(3000);
    notifier.stopping();
    await notifier.flushed();
    expect(sent).toEqual(["READY=1", "WATCHDOG=1", "WATCHDOG=1", "WATCHDOG=1", "STOPPING=1"]);
    expect(log.warn).toHaveBeenCalledTimes(1);
    expect(log.warn.mock.calls[0]?.[0]).toEqual({ reason: "systemd-notify: No such file or directory" });
  });
});
