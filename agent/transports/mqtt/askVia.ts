import { randomUUID } from "node:crypto";
import type { AgentConfig } from "../../config/config.js";
import { AgentError, ERROR_CODES, EXIT_OK, EXIT_RUNTIME } from "../../../common/errors.js";
import type { ErrorCode } from "../../../common/errors.js";
import type { Logger } from "../../../common/logger.js";
import { connectBroker, displayUrl, refusedVersion } from "./brokerClient.js";
import type { BrokerConnection, MqttClient } from "./brokerClient.js";
import { agentIdFrom, brokerOptionsFrom } from "./mqttSettings.js";
import { agentTopics, clientReplyTopic, fleetTopics } from "./topics.js";
import { isFinal, readReply, readStatus } from "./wire.js";
import type { FinalReply } from "./wire.js";

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

function timeoutSeconds(value: unknown): number {
  if (value === undefined) return 120;
  const seconds = Number(value);
  if (!Number.isFinite(seconds) || seconds <= 0)
    throw new AgentError("IA_ERR_USAGE", `--timeout: expected a number of seconds > 0, got ${JSON.stringify(value)}`);
  return seconds;
}

async function connectEither(
  connection: BrokerConnection,
  clientId: string,
  onMessage: (topic: string, payload: Buffer) => void,
): Promise<{ client: MqttClient; version: 4 | 5 }> {
  const options = { ...connection, clientId, sessionExpirySeconds: 0, onMessage };
  if (connection.protocolVersion === 4) return { client: await connectBroker(options), version: 4 };
  try {
    return { client: await connectBroker(options), version: 5 };
  } catch (error) {
    // A 3.1.1-only broker (the embedded one) closes or refuses an MQTT 5 connection.
    if (!(error instanceof AgentError) || error.code !== "IA_ERR_MQTT_CONNECT" || !refusedVersion(error)) throw error;
    return { client: await connectBroker({ ...options, protocolVersion: 4 }), version: 4 };
  }
}

export async function askVia(options: AskViaOptions): Promise<number> {
  const { config, question } = options;
  const stdout = options.stdout ?? process.stdout;
  const stderr = options.stderr ?? process.stderr;
  const connection = brokerOptionsFrom(config, options.url, "--via");
  const url = connection.url;
  if (url === "embedded")
    throw new AgentError("IA_ERR_USAGE", "--via: expected the URL of the broker the agent serves, e.g. mqtt://127.0.0.1:1883");
  if (options.raw) throw new AgentError("IA_ERR_USAGE", "--raw: not available with --via (the MQTT API answers chat questions)");
  const waitMs = timeoutSeconds(options.timeout) * 1000;
  const agentId = agentIdFrom(config);
  const target = config.fleet !== undefined ? fleetTopics(config.mqttPrefix, config.fleet) : agentTopics(config.mqttPrefix, agentId);
  const statusTopic = config.fleet === undefined ? agentTopics(config.mqttPrefix, agentId).status : undefined;
  const who = config.fleet !== undefined ? `fleet ${config.fleet}` : `agent ${agentId}`;
  const clientId = `iagent-ask-${randomUUID().slice(0, 8)}`;
  const replyTopic = clientReplyTopic(config.mqttPrefix, clientId);
  const id = randomUUID();
  let status = "unknown (no retained status)";
  let onReply: (reply: NonNullable<ReturnType<typeof readReply>>) => void = () => undefined;

  const { client, version } = await connectEither(connection, clientId, (topic, payload) => {
    // Not ours to judge: a message we cannot read is ignored like any other topic's noise.
    if (topic === statusTopic) {
      status = readStatus(payload)?.state ?? status;
    } else if (topic === replyTopic) {
      const reply = readReply(payload);
      if (reply?.id === id) onReply(reply);
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
    client.publish(target.cancel, JSON.stringify({ id }), { qos: 1 });
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  try {
    await client.subscribeAsync({ [replyTopic]: { qos: 1 }, ...(statusTopic !== undefined ? { [statusTopic]: { qos: 1 } } : {}) });
    const final = await new Promise<FinalReply>((resolve, reject) => {
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
        if (isFinal(reply)) {
          clearTimeout(timer);
          if (!config.json && wrote && "text" in reply && !reply.text.endsWith("\n")) stdout.write("\n");
          resolve(reply);
        } else if (!config.json) {
          wrote = true;
          stdout.write(reply.delta);
        }
      };
      arm();
      client.publish(target.ask, JSON.stringify(request), {
        qos: 1,
        ...(version === 5 ? { properties: { responseTopic: replyTopic, correlationData: Buffer.from(id) } } : {}),
      });
    });
    if (config.json) stdout.write(`${JSON.stringify(final)}\n`);
    if ("error" in final) {
      const code = final.error.code in ERROR_CODES ? (final.error.code as ErrorCode) : "IA_ERR_INTERNAL";
      throw new AgentError(code, `${who} via ${displayUrl(url)}: ${final.error.message}`);
    }
    if ("finishReason" in final && final.finishReason === "cancelled") {
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
