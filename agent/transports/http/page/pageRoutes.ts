import { createHash } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { InstrumentBridge } from "../../../../firmware-bridge/instrumentBridge.js";
import { pageAssets } from "./pageAssets.js";
import { readInstrumentData } from "./instrumentReading.js";

/** A plain Node handler, as the HTTP server mounts it. */
export type PageHandler = (req: IncomingMessage, res: ServerResponse) => Promise<void>;

/** What `GET /api/instrument` needs of the loaded agent: its firmware bridge, if any. */
export interface InstrumentHolder {
  readonly instrument?: InstrumentBridge | undefined;
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json; charset=utf-8",
    "content-length": Buffer.byteLength(text),
    "cache-control": "no-store",
    ...headers,
  });
  res.end(text);
}

function methodNotAllowed(req: IncomingMessage, res: ServerResponse): boolean {
  if (req.method === "GET" || req.method === "HEAD") return false;
  const error = { message: `${req.method} ${req.url}: only GET is served here`, type: "invalid_request_error", code: "IA_ERR_BAD_REQUEST" };
  sendJson(res, 405, { error }, { allow: "GET, HEAD" });
  return true;
}

const sha256 = (text: string) => createHash("sha256").update(text, "utf8").digest("base64");

let page: Promise<{ body: Buffer; policy: string }> | undefined;

/** One document: the stylesheet and the script inline, allowed by their hashes and nothing else from anywhere. */
async function buildPage(): Promise<{ body: Buffer; policy: string }> {
  const { html, css, js } = await pageAssets();
  // The hashes are of each element's whole text, so the placeholders' white space goes too.
  const body = html
    .replace(/<style>\s*\/\*PAGE_CSS\*\/\s*<\/style>/, () => `<style>${css}</style>`)
    .replace(/<script>\s*\/\*PAGE_JS\*\/\s*<\/script>/, () => `<script>${js}</script>`);
  if (body.includes("/*PAGE_")) throw new Error("page.html lost a /*PAGE_CSS*/ or /*PAGE_JS*/ placeholder");
  const policy = [
    "default-src 'none'",
    `style-src 'sha256-${sha256(css)}'`,
    `script-src 'sha256-${sha256(js)}'`,
    "connect-src 'self'",
    "img-src 'self' data:",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join("; ");
  return { body: Buffer.from(body, "utf8"), policy };
}

/** `GET /`: the web page (README, "Web page"). It holds no secret: the key is typed into it. */
export const servePage: PageHandler = async (req, res) => {
  if (methodNotAllowed(req, res)) return;
  page ??= buildPage();
  let built: { body: Buffer; policy: string };
  try {
    built = await page;
  } catch (error) {
    res.writeHead(500, { "content-type": "text/plain; charset=utf-8" });
    res.end(`the web page cannot be built: ${(error as Error).message}\n`);
    return;
  }
  const { body, policy } = built;
  res.writeHead(200, {
    "content-type": "text/html; charset=utf-8",
    "content-length": body.length,
    "content-security-policy": policy,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",
  });
  res.end(req.method === "HEAD" ? undefined : body);
};

/**
 * `GET /api/instrument`: the live settings and the trace for the page, read through the
 * bridge. `agent` may be a getter that gives undefined while the model loads (503). Without an
 * instrument: `{"settings":null,"trace":null}`. Never throws.
 */
export function instrumentData(agent: InstrumentHolder | (() => InstrumentHolder | undefined)): PageHandler {
  return async (req, res) => {
    if (methodNotAllowed(req, res)) return;
    const holder = typeof agent === "function" ? agent() : agent;
    if (!holder) {
      sendJson(res, 503, { status: "loading" });
      return;
    }
    if (!holder.instrument) {
      sendJson(res, 200, { settings: null, trace: null });
      return;
    }
    sendJson(res, 200, await readInstrumentData(holder.instrument));
  };
}
