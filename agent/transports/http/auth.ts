import { createHash, timingSafeEqual } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { AgentError } from "../../../common/errors.js";

/**
 * The API key check: `Authorization: Bearer <key>`, compared in constant time through
 * digests (so neither the length nor a prefix leaks). The key is never logged; requesters
 * are told apart by a short hash of it.
 */
export class ApiKeyCheck {
  readonly #digest: Buffer | undefined;

  constructor(key: string | undefined) {
    this.#digest = key === undefined ? undefined : digest(key);
  }

  get required(): boolean {
    return this.#digest !== undefined;
  }

  /** The requester's rate-limit key; throws IA_ERR_HTTP_UNAUTHORIZED when a key is required and the request lacks it. */
  check(req: IncomingMessage): string {
    const address = `addr:${req.socket.remoteAddress ?? "unknown"}`;
    if (!this.#digest) return address;
    const header = req.headers.authorization;
    if (header === undefined)
      throw new AgentError("IA_ERR_HTTP_UNAUTHORIZED", "this agent needs an API key: send the header `Authorization: Bearer <key>`");
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!match) throw new AgentError("IA_ERR_HTTP_UNAUTHORIZED", "the Authorization header is not `Bearer <key>`");
    const given = digest(match[1]!);
    if (!timingSafeEqual(given, this.#digest)) throw new AgentError("IA_ERR_HTTP_UNAUTHORIZED", "wrong API key");
    return `key:${given.toString("hex").slice(0, 12)}`;
  }
}

function digest(key: string): Buffer {
  return createHash("sha256").update(key, "utf8").digest();
}

/** Whether `host` is this machine only (127.0.0.0/8, ::1, localhost). */
export function isLoopbackHost(host: string): boolean {
  const bare = host.replace(/^\[(.*)\]$/, "$1");
  return bare === "localhost" || bare === "::1" || /^127\.\d+\.\d+\.\d+$/.test(bare);
}
