import { AgentError } from "../../../common/errors.js";

export type ListenOutcome = { kind: "listening" } | { kind: "off"; message: string } | { kind: "error"; error: AgentError };

/**
 * What a failed listen means. On the default address a busy port is likely another agent or
 * a lab server: the agent warns and serves without HTTP, as `--mqtt embedded` does with a
 * broker already on 1883. An address the person chose (or a default that is not on this host)
 * must work, so it is an error naming host:port.
 */
export function listenOutcome(
  error: NodeJS.ErrnoException | undefined,
  where: { host: string; port: number; isDefaultAddress: boolean },
): ListenOutcome {
  if (!error) return { kind: "listening" };
  const address = `${where.host}:${where.port}`;
  if (where.isDefaultAddress && error.code === "EADDRINUSE")
    return {
      kind: "off",
      message: `HTTP API: ${address} is in use (another agent or server?): serving without HTTP; set --http <host:port> to serve there, or --http off`,
    };
  const why =
    error.code === "EADDRINUSE"
      ? "the address is in use"
      : error.code === "EADDRNOTAVAIL"
        ? "the address is not on this host"
        : error.code === "EACCES"
          ? "permission denied (ports below 1024 need privileges)"
          : error.message;
  return {
    kind: "error",
    error: new AgentError("IA_ERR_HTTP_LISTEN", `HTTP API: cannot listen on ${address}: ${why}; set --http <host:port>, or --http off`, {
      cause: error,
    }),
  };
}
