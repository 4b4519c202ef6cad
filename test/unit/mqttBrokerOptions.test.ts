import { writeFileSync } from "node:fs";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { MqttClient } from "mqtt";
import { loadConfig } from "../../agent/config/config.js";
import type { AgentConfig } from "../../agent/config/config.js";
import type { GenerateResult, ModelRuntime, RuntimeInfo } from "../../agent/engine/modelRuntime.js";
import { AnswerService } from "../../agent/service/answerService.js";
import { RequestQueue } from "../../agent/service/requestQueue.js";
import type { BrokerConnection, BrokerOptions } from "../../agent/transports/mqtt/brokerClient.js";
import { AgentError } from "../../common/errors.js";
import { createLogger } from "../../common/logger.js";
import { tempDir } from "../helpers/models.js";

// Every connection any command opens goes through connectBroker (or brokerRoundTrip for
// smoke): recorded here, so the test sees the options each one was given.
const calls = vi.hoisted(() => ({ connect: [] as BrokerOptions[], roundTrip: [] as BrokerConnection[], fail: true }));

vi.mock("../../agent/transports/mqtt/brokerClient.js", async (importOriginal) => {
  const real = await importOriginal<typeof import("../../agent/transports/mqtt/brokerClient.js")>();
  return {
    ...real,
    connectBroker: vi.fn(async (options: BrokerOptions) => {
      calls.connect.push(options);
      if (calls.fail) throw new AgentError("IA_ERR_MQTT_CONNECT", "test: no broker here");
      return fakeClient();
    }),
    brokerRoundTrip: vi.fn(async (connection: BrokerConnection) => {
      calls.roundTrip.push(connection);
      return 3;
    }),
  };
});

const { brokerOptionsFrom, mqttTransportFromConfig } = await import("../../agent/transports/mqtt/mqttSettings.js");
const { clientOptions } = await import("../../agent/transports/mqtt/brokerClient.js");
const { askVia } = await import("../../agent/transports/mqtt/askVia.js");
const { BenchMqtt } = await import("../../agent/diagnostics/bench/benchMqtt.js");
const { realSmokeProbes } = await import("../../agent/diagnostics/smoke.js");

/** The part of an mqtt.js client the transport and bench use, connected and silent. */
function fakeClient(): MqttClient {
  const client = {
    connected: true,
    on: () => client,
    off: () => client,
    subscribeAsync: async () => [],
    publish: (_topic: string, _payload: unknown, _options: unknown, callback?: (error?: Error) => void) => callback?.(),
    publishAsync: async () => undefined,
    endAsync: async () => undefined,
    end: () => client,
  };
  // Only the members above are ever called on a client in these paths.
  return client as unknown as MqttClient;
}

const info: RuntimeInfo = {
  modelPath: "/m/t.gguf",
  modelLabel: "t.gguf",
  isDemo: false,
  threads: 1,
  contextSize: 1024,
  parallelSequences: 1,
  mlock: { requested: false, locked: false, lockedBytes: null, detail: "off" },
  loadMs: 1,
  backend: "fake",
  engine: "inline",
  speculation: "off",
};

const runtime: ModelRuntime = {
  info,
  slots: 1,
  disposed: false,
  generate: (): Promise<GenerateResult> => Promise.reject(new Error("no question is asked in this test")),
  countTokens: async (text) => text.length,
  dispose: async () => undefined,
};

const logger = createLogger({ level: "silent" });
const dir = tempDir("iagent-mqtt-tls-unit-");
const pem = (name: string) => {
  const file = path.join(dir, name);
  writeFileSync(file, `-----BEGIN ${name}-----\n`);
  return file;
};
const tls = { mqttCa: pem("ca.pem"), mqttCert: pem("client.pem"), mqttKey: pem("client.key") };

function configWith(flags: Record<string, unknown>): AgentConfig {
  return loadConfig({ flags, env: {}, cwd: dir }).config;
}

const siteBroker = configWith({ mqtt: "mqtts://broker.lab:8883", mqttUsername: "lab", mqttPassword: "secret", ...tls });
const expected = {
  url: "mqtts://broker.lab:8883",
  protocolVersion: 5,
  username: "lab",
  password: "secret",
  ca: tls.mqttCa,
  cert: tls.mqttCert,
  key: tls.mqttKey,
};

beforeEach(() => {
  calls.connect.length = 0;
  calls.roundTrip.length = 0;
  calls.fail = true;
});

afterEach(() => vi.useRealTimers());

describe("brokerOptionsFrom: the one mapping from the config to a broker connection", () => {
  it("takes the URL, protocol, login and TLS files; --via names another URL and its own flag", () => {
    expect(brokerOptionsFrom(siteBroker)).toEqual(expected);
    expect(brokerOptionsFrom(configWith({ mqtt: "mqtt://h:1883", mqttVersion: "3.1.1" }))).toMatchObject({
      url: "mqtt://h:1883",
      protocolVersion: 4,
      ca: undefined,
    });
    expect(brokerOptionsFrom(siteBroker, "mqtts://other:8883", "--via")).toEqual({ ...expected, url: "mqtts://other:8883" });
    expect(() => brokerOptionsFrom(siteBroker, "http://x", "--via")).toThrow(/^--via: expected a URL starting with mqtt:\/\//);
  });

  it("reads the PEM files into mqtt.js's ca, cert and key; a missing file is IA_ERR_CONFIG naming the flag", () => {
    const options = clientOptions({ ...brokerOptionsFrom(siteBroker), clientId: "c", sessionExpirySeconds: 0 });
    expect(options.ca?.toString()).toBe("-----BEGIN ca.pem-----\n");
    expect(options.cert?.toString()).toBe("-----BEGIN client.pem-----\n");
    expect(options.key?.toString()).toBe("-----BEGIN client.key-----\n");
    expect(options).toMatchObject({ clientId: "c", username: "lab", password: "secret", protocolVersion: 5, clean: true });
    const missing = { ...brokerOptionsFrom(siteBroker), ca: path.join(dir, "nope.pem"), clientId: "c", sessionExpirySeconds: 0 };
    expect(() => clientOptions(missing)).toThrow(expect.objectContaining({ code: "IA_ERR_CONFIG" }));
    expect(() => clientOptions(missing)).toThrow(/^--mqtt-ca: cannot read .*nope\.pem/);
  });
});

describe("every command reaches the broker with the TLS files", () => {
  it("ask --via", async () => {
    const asked = askVia({
      url: "mqtts://broker.lab:8883",
      question: "hi",
      raw: false,
      timeout: undefined,
      flags: {},
      config: siteBroker,
      logger,
    });
    await expect(asked).rejects.toThrow("test: no broker here");
    expect(calls.connect).toHaveLength(1);
    expect(calls.connect[0]).toMatchObject({ ...expected, sessionExpirySeconds: 0 });
    expect(calls.connect[0]!.clientId).toMatch(/^iagent-ask-/);
  });

  it("bench: the agent's transport (id check and session) and the bench's own requester", async () => {
    calls.fail = false;
    vi.useFakeTimers();
    const service = new AnswerService(runtime, new RequestQueue({ slots: 1 }), { system: "", params: {} });
    const starting = BenchMqtt.start({ config: siteBroker, service, info, logger });
    // The same-id check waits 1.5 s for a retained status that the fake broker never sends.
    await vi.advanceTimersByTimeAsync(2000);
    const bench = await starting;
    await bench.close();
    expect(calls.connect.map((c) => c.clientId)).toEqual([
      expect.stringMatching(/^iagent-idcheck-bench-/),
      expect.stringMatching(/^iagent-bench-/),
      expect.stringMatching(/^bench-\d+-requester$/),
    ]);
    for (const call of calls.connect) expect(call).toMatchObject(expected);
    expect(bench.url).toBe("mqtts://broker.lab:8883");
  });

  it("run", async () => {
    const service = new AnswerService(runtime, new RequestQueue({ slots: 1 }), { system: "", params: {} });
    const transport = mqttTransportFromConfig({ runtime, service }, siteBroker, logger);
    await expect(transport.start()).rejects.toThrow("test: no broker here");
    expect(calls.connect[0]).toMatchObject(expected);
  });

  it("smoke", async () => {
    const detail = await realSmokeProbes().mqttRoundTrip(siteBroker.mqtt, siteBroker, 5000);
    expect(detail).toMatch(/^mqtts:\/\/broker\.lab:8883: published and received on instrument-agent\/.+\/smoke\/.+ in 3 ms$/);
    expect(calls.roundTrip).toEqual([expected]);
  });
});
