import { z } from "zod";
import { setting } from "./settingDefinition.js";
import { wholeNumber } from "./settingValues.js";

/** The HTTP API's settings: where it listens, its key, body cap and rate limit (README, HTTP API). */
export const HTTP_SETTINGS = {
  http: setting({
    group: "http",
    arg: "<host:port|off>",
    schema: z.string().regex(/^(off|(\[[0-9a-fA-F:]+\]|[^\s:[\]]+):\d{1,5})$/, "host:port, e.g. 127.0.0.1:8080, or off"),
    default: "127.0.0.1:8080",
    help: "where the HTTP API (OpenAI-compatible, /health) listens; beyond loopback it needs --http-api-key",
  }),
  httpApiKey: setting({
    group: "http",
    arg: "<key>",
    schema: z.string().min(8, "a key of at least 8 characters").optional(),
    defaultText: "none",
    help: "the key HTTP clients send as `Authorization: Bearer <key>`, never logged; prefer IAGENT_HTTP_API_KEY, a flag shows in `ps`",
  }),
  httpBodyLimit: setting({
    group: "http",
    arg: "<bytes>",
    schema: wholeNumber(1024, 64 * 1024 * 1024),
    default: 1_048_576,
    help: "largest HTTP request body read (HTTP 413 beyond)",
  }),
  httpRateLimit: setting({
    group: "http",
    arg: "<n>",
    schema: wholeNumber(0, 1_000_000),
    default: 60,
    help: "questions a minute per requester (API key, else remote address), 0 = no limit",
  }),
};
