import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runAgent } from "../helpers/bundle.js";
import { modelArgs, synthModel, tempDir } from "../helpers/models.js";
import { makeTestCa, startMosquitto } from "../helpers/mosquitto.js";
import type { Mosquitto, TestCa } from "../helpers/mosquitto.js";
import { spawnAgent, waitForStatus } from "../helpers/mqttAgent.js";
import type { AgentProcess } from "../helpers/mqttAgent.js";

// A broker behind a private CA (mosquitto on a TLS listener, its certificate signed by a CA
// made here): run, ask --via, bench and smoke all reach it with --mqtt-ca, and without it
// fail to verify the broker. The real bundle, a tiny model.
const dir = tempDir("iagent-mqtt-tls-");
let ca: TestCa;
let broker: Mosquitto;
let agent: AgentProcess;
let model: string;
const base = "instrument-agent/tls-a";
const quiet = ["--log-level", "warn"];

beforeAll(async () => {
  model = await synthModel(dir);
  ca = makeTestCa();
  broker = await startMosquitto({ tls: { cert: ca.serverCert, key: ca.serverKey } });
  agent = spawnAgent([
    ...[...modelArgs(model), "--context", "2048", "--max-tokens", "8", "--agent-id", "tls-a"],
    ...["--mqtt", broker.url, "--mqtt-ca", ca.ca, ...quiet],
  ]);
  await waitForStatus(broker.url, base, "online", agent, 60_000, { ca: readFileSync(ca.ca) });
});

afterAll(async () => {
  await agent?.stop();
  await broker?.stop();
});

describe("MQTT over TLS with a private CA", () => {
  it("run serves on mqtts:// and ask --via reaches it with --mqtt-ca; without it the broker's certificate is refused", async () => {
    expect(broker.url).toMatch(/^mqtts:\/\/127\.0\.0\.1:\d+$/);
    const asked = await runAgent(["ask", "--via", broker.url, "--mqtt-ca", ca.ca, "--agent-id", "tls-a", "hello"], { timeoutMs: 30_000 });
    expect(asked.stderr).toBe("");
    expect(asked.code).toBe(0);
    expect(asked.stdout.trim().length).toBeGreaterThan(0);
    const refused = await runAgent(["ask", "--via", broker.url, "--agent-id", "tls-a", "hello"], { timeoutMs: 30_000 });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("IA_ERR_MQTT_CONNECT");
    expect(refused.stderr).toContain(broker.url);
    expect(refused.stderr).toMatch(/certificate/);
  });

  it("bench asks over mqtts:// with --mqtt-ca", async () => {
    const args = ["bench", "--model", model, "--threads", "1", "--mlock", "off", "--log-level", "error"];
    const bench = ["--bench-runs", "1", "--bench-prompt", "16", "--bench-tokens", "4", "--bench-concurrency", "1"];
    const result = await runAgent([...args, ...bench, "--mqtt", broker.url, "--mqtt-ca", ca.ca, "--json"], { timeoutMs: 120_000 });
    expect(result.code, result.stderr).toBe(0);
    const report = JSON.parse(result.stdout) as { mqtt: { broker: string; completionTokens: number } | null };
    expect(report.mqtt?.broker).toBe(broker.url);
    expect(report.mqtt?.completionTokens).toBeGreaterThan(0);
    const refused = await runAgent([...args, ...bench, "--mqtt", broker.url], { timeoutMs: 120_000 });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("IA_ERR_MQTT_CONNECT");
  });

  it("smoke's MQTT round trip passes with --mqtt-ca", async () => {
    const result = await runAgent(["smoke", "--model", model, "--mlock", "off", "--mqtt", broker.url, "--mqtt-ca", ca.ca, "--json"], {
      timeoutMs: 120_000,
    });
    const report = JSON.parse(result.stdout) as { checks: { name: string; ok: boolean; detail: string }[] };
    expect(report.checks.find((c) => c.name === "MQTT round trip")).toMatchObject({
      ok: true,
      detail: expect.stringContaining(`${broker.url}: published and received on`),
    });
  });
});
