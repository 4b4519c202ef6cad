import { timingSafeEqual } from "node:crypto";
import { createServer } from "node:net";
import type { Server } from "node:net";
import { AgentError } from "../../../common/errors.js";
import type { Logger } from "../../../common/logger.js";

/**
 * The in-process broker of `--mqtt embedded`: aedes (MQTT 3.1.1 only) on one TCP port.
 * The one module that imports aedes. It is for a single lab bench; a fleet uses a real
 * broker (mosquitto, EMQX).
 */

export interface EmbeddedBrokerOptions {
  /** Address to listen on. */
  host: string;
  /** TCP port; 0 picks a free one. */
  port: number;
  /** The one user name accepted; with none, any client may connect. Defaults to none. */
  username?: string | undefined;
  /** Its password. Defaults to none. */
  password?: string | undefined;
  logger: Logger;
}

export interface EmbeddedBroker {
  readonly host: string;
  readonly port: number;
  /** `mqtt://host:port` for clients in this process. */
  readonly url: string;
  close(): Promise<void>;
}

/** Loopback addresses need no credentials; anything else does. */
export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || host === "[::1]" || /^127\.\d+\.\d+\.\d+$/.test(host);
}

function sameSecret(given: Buffer | undefined, expected: string): boolean {
  const want = Buffer.from(expected, "utf8");
  if (!given || given.length !== want.length) return false;
  return timingSafeEqual(given, want);
}

export async function startEmbeddedBroker(options: EmbeddedBrokerOptions): Promise<EmbeddedBroker> {
  const log = options.logger.child({ component: "broker" });
  const { Aedes } = await import("aedes");
  const { username, password } = options;
  const broker = await Aedes.createBroker({
    // Client ids such as `iagent-<host name>` are longer than 3.1.1's suggested 23 characters.
    maxClientsIdLength: 256,
    ...(username !== undefined
      ? {
          authenticate: (_client, user, pass, done) => {
            const ok = user === username && sameSecret(pass, password ?? "");
            if (ok) done(null, true);
            else done(Object.assign(new Error("bad user name or password"), { returnCode: 4 }), false);
          },
        }
      : {}),
  });
  broker.on("clientError", (client, error) => log.debug({ client: client.id, err: error }, "client error"));
  // Streamed answers are many small packets: with Nagle's algorithm one waits for the
  // peer's delayed ACK (up to 40 ms) whenever the previous one is unacknowledged.
  const server: Server = createServer({ noDelay: true }, broker.handle);
  const host = options.host.replace(/^\[(.*)\]$/, "$1");
  await new Promise<void>((resolve, reject) => {
    server.once("error", (error: NodeJS.ErrnoException) => {
      broker.close();
      reject(bindError(error, options.host, options.port));
    });
    server.listen(options.port, host, () => resolve());
  });
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : options.port;
  log.info({ host: options.host, port, auth: username !== undefined }, "embedded MQTT broker listening (MQTT 3.1.1)");
  let closing: Promise<void> | undefined;
  return {
    host: options.host,
    port,
    url: `mqtt://${host.includes(":") ? `[${host}]` : host}:${port}`,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        broker.close();
      });
      return closing;
    },
  };
}

/** IA_ERR_MQTT_BIND for an address the local broker cannot listen on, with the likely reason and the fix. */
export function bindError(error: NodeJS.ErrnoException, host: string, port: number): AgentError {
  const why =
    error.code === "EADDRINUSE"
      ? "the address is in use (another broker?)"
      : error.code === "EADDRNOTAVAIL"
        ? "the address is not on this host"
        : error.message;
  return new AgentError(
    "IA_ERR_MQTT_BIND",
    `embedded MQTT broker: cannot listen on ${host}:${port}: ${why}; set --mqtt-bind, or --mqtt <url> to use that broker`,
    { cause: error },
  );
}
