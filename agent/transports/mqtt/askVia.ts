import { randomUUID } from "node:crypto";
import type { AgentConfig } from "../../config/config.js";
import { AgentError, ERROR_CODES, EXIT_OK, EXIT_RUNTIME } from "../../../common/errors.js";
import type { ErrorCode } from "../../../common/errors.js";
import type { Logger } from "../../../common/logger.js";
import { agentIdFrom, checkBrokerUrl } from "./mqttSettings.js";
import { connectBroker, displayUrl } from "./mqttTransport.js";
import type { MqttClient } from "./mqttTransport.js";

/**
 * `ask --via <url>`: one question to a remote agent through a broker, the answer streamed
 * to stdout as it arrives. No model is loaded here.
 */

export interface AskViaOptions {
  url: string;
  question: string;
  raw: boolean;
  /** `--timeout` as given: seconds the answer may take to start or go on. Defaults to 120. */
  timeout: unknown;
  /** Raw flags, to send only the sampling the person set. */
  flags: Record<string, unknown>;
  config: AgentConfig;
  logger: Logger;
  stdout?: NodeJS.WritableStream;
  stderr?: NodeJS.WritableStream;
}

const PARAM_KEYS = ["temperature", "topK", "topP", "repeatPenalty", "maxTokens", "seed"] as const;

interface Reply {
  id?: string;
  seq?: number;
  delta?: string;
  done?: boolean;
  text?: string;
  finishReason?: string;
  error?: { code?: string; message?: string };
}

function timeoutSeconds(value: unknown): number {
  if (value === undefined) return 120;
  const seconds = Number(value);
  if (!Number.isFinite(seconds) || seconds <= 0)
    throw new AgentError("IA_ERR_USAGE", `--timeout: expected a number of seconds > 0, got ${JSON.stringify(value)}`);
  return seconds;
}

async function connectEither(
  url: string,
  config: AgentConfig,
  clientId: string,
  onMessage: (topic: string, payload: Buffer) => void,
): Promise<{ client: MqttClient; version: 4 | 5 }> {
  const base = {
    url,
    clientId,
    username: config.mqttUsername,
    password: config.mqttPassword,
    ca: config.mqttCa,
    cert: config.mqttCert,
    key: config.mqttKey,
    sessionExpirySeconds: 0,
    onMessage,
  };
  if (config.mqttVersion === "3.1.1") return { client: await connectBroker({ ...base, protocolVersion: 4 }), version: 4 };
  try {
    return { client: await connectBroker({ ...base, protocolVersion: 5 }), version: 5 };
  } catch (error) {
    // A 3.1.1-only broker (the embedded one) closes or refuses an MQTT 5 connection.
    if (!(error instanceof AgentError) || error.code !== "IA_ERR_MQTT_CONNECT" || !/MQTT 5|3\.1\.1/.test(error.message)) throw error;
    return { client: await connectBroker({ ...base, protocolVersion: 4 }), version: 4 };
  }
}

export async function askVia(options: AskViaOptions): Promise<number> {
  const { config, question } = options;
  const stdout = options.stdout ?? process.stdout;
  const stderr = options.stderr ?? process.stderr;
  const url = checkBrokerUrl(options.url, "--via");
  if (url === "embedded")
    throw new AgentError("IA_ERR_USAGE", "--via: expected the URL of the broker the agent serves, e.g. mqtt://127.0.0.1:1883");
  if (options.raw) throw new AgentError("IA_ERR_USAGE", "--raw: not available with --via (the MQTT API answers chat questions)");
  const waitMs = timeoutSeconds(options.timeout) * 1000;
  const agentId = agentIdFrom(config);
  const target = config.fleet !== undefined ? `${config.mqttPrefix}/fleet/${config.fleet}` : `${config.mqttPrefix}/${agentId}`;
  const who = config.fleet !== undefined ? `fleet ${config.fleet}` : `agent ${agentId}`;
  const clientId = `iagent-ask-${randomUUID().slice(0, 8)}`;
  const replyTopic = `${config.mqttPrefix}/client/${clientId}/reply`;
  const id = randomUUID();
  let status = "unknown (no retained status)";
  let onReply: (reply: Reply) => void = () => undefined;

  const { client, version } = await connectEither(url, config, clientId, (topic, payload) => {
    try {
      const body = JSON.parse(payload.toString("utf8")) as Reply & { state?: string };
      if (topic === `${target}/status`) status = String(body.state);
      else if (topic === replyTopic && body.id === id) onReply(body);
    } catch {
      // not ours to judge: a reply we cannot read is ignored like any other topic's noise
    }
  });

  const params = Object.fromEntries(
    PARAM_KEYS.filter((key) => options.flags[key] !== undefined && config[key] !== undefined).map((key) => [key, config[key]]),
  );
  const request = {
    id,
    prompt: question,
    stream: true,
    ...(Object.keys(params).length > 0 ? { params } : {}),
    ...(version === 4 ? { replyTo: replyTopic } : {}),
  };
  const onSignal = () => {
    client.publish(`${target}/cancel`, JSON.stringify({ id }), { qos: 1 });
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  try {
    await client.subscribeAsync({ [replyTopic]: { qos: 1 }, ...(config.fleet === undefined ? { [`${target}/status`]: { qos: 1 } } : {}) });
    const final = await new Promise<Reply>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const arm = () => {
        clearTimeout(timer);
        timer = setTimeout(
          () =>
            reject(
              new AgentError(
                "IA_ERR_MQTT_TIMEOUT",
                `no answer from ${who} via ${displayUrl(url)} within ${waitMs / 1000} s (its status: ${status})`,
              ),
            ),
          waitMs,
        );
      };
      let wrote = false;
      onReply = (reply) => {
        arm();
        if (reply.done) {
          clearTimeout(timer);
          if (!config.json && wrote && reply.text !== undefined && !reply.text.endsWith("\n")) stdout.write("\n");
          resolve(reply);
        } else if (typeof reply.delta === "string" && !config.json) {
          wrote = true;
          stdout.write(reply.delta);
        }
      };
      arm();
      client.publish(`${target}/ask`, JSON.stringify(request), {
        qos: 1,
        ...(version === 5 ? { properties: { responseTopic: replyTopic, correlationData: Buffer.from(id) } } : {}),
      });
    });
    if (config.json) stdout.write(`${JSON.stringify(final)}\n`);
    if (final.error) {
      const code = (final.error.code ?? "") in ERROR_CODES ? (final.error.code as ErrorCode) : "IA_ERR_INTERNAL";
      throw new AgentError(code, `${who} via ${displayUrl(url)}: ${final.error.message ?? "failed"}`);
    }
    if (final.finishReason === "cancelled") {
      stderr.write("(answer cancelled)\n");
      return EXIT_RUNTIME;
    }
    return EXIT_OK;
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    await client.endAsync().catch(() => undefined);
  }
}
