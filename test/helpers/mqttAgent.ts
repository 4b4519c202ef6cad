import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import path from "node:path";
import mqtt from "mqtt";
import type { IClientOptions, MqttClient } from "mqtt";
import { BUNDLE, ROOT, requireBundle } from "./bundle.js";

/** An agent (`run`) in a child process, as a service manager would start it. */
export interface AgentProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  output(): string;
  /** SIGTERM, then the exit. */
  stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** `run` from the bundle, or from source (`node --import tsx agent/main.ts`, as `npm start` runs it) with `fromSource`. */
export function spawnAgent(args: string[], env: NodeJS.ProcessEnv = {}, options: { fromSource?: boolean } = {}): AgentProcess {
  if (!options.fromSource) requireBundle();
  const entry = options.fromSource ? ["--import", "tsx", path.join(ROOT, "agent", "main.ts")] : [BUNDLE];
  const child = spawn(process.execPath, [...entry, "run", ...args], {
    cwd: ROOT,
    env: { ...process.env, NO_COLOR: "1", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout!.setEncoding("utf8").on("data", (d: string) => (output += d));
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (output += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  return {
    child,
    exited,
    output: () => output,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      return exited;
    },
  };
}

/** A test-side client; connected, with every message kept per topic. */
export interface TestClient {
  readonly client: MqttClient;
  readonly messages: Map<string, Buffer[]>;
  /** Resolves with the first message on `topic` (already received or future) that `match` accepts. */
  next(topic: string, match?: (body: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  json(topic: string): Record<string, unknown>[];
  end(): Promise<void>;
}

export async function testClient(url: string, options: IClientOptions = {}): Promise<TestClient> {
  const client = mqtt.connect(url, {
    clientId: `test-${randomUUID().slice(0, 8)}`,
    reconnectPeriod: 200,
    connectTimeout: 5000,
    ...options,
  });
  const messages = new Map<string, Buffer[]>();
  const waiters = new Set<() => void>();
  client.on("message", (topic, payload) => {
    const list = messages.get(topic) ?? [];
    list.push(payload);
    messages.set(topic, list);
    for (const waiter of [...waiters]) waiter();
  });
  await new Promise<void>((resolve, reject) => {
    client.once("connect", () => resolve());
    client.once("error", reject);
  });
  const json = (topic: string) => (messages.get(topic) ?? []).map((b) => JSON.parse(b.toString("utf8")) as Record<string, unknown>);
  return {
    client,
    messages,
    json,
    next(topic, match = () => true, timeoutMs = 30_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const found = json(topic).find(match);
          if (!found) return;
          waiters.delete(check);
          clearTimeout(timer);
          resolve(found);
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no matching message on ${topic} within ${timeoutMs} ms; got ${JSON.stringify(json(topic)).slice(0, 500)}`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    end: () => client.endAsync(true).then(() => undefined),
  };
}

/** Waits for the agent's retained status to say `state`. */
export async function waitForStatus(
  url: string,
  base: string,
  state: "online" | "offline",
  agent?: AgentProcess,
  timeoutMs = 60_000,
  options: IClientOptions = {},
): Promise<Record<string, unknown>> {
  const watcher = await testClient(url, options);
  try {
    await watcher.client.subscribeAsync(`${base}/status`, { qos: 1 });
    return await watcher
      .next(`${base}/status`, (s) => s.state === state, timeoutMs)
      .catch((error: Error) => {
        throw new Error(`${error.message}\nagent output:\n${agent?.output() ?? ""}`);
      });
  } finally {
    await watcher.end();
  }
}
