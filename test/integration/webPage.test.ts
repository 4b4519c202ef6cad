import { copyFileSync, existsSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { chromium } from "playwright-core";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SNAPSHOT_QUERIES } from "../../firmware-bridge/instrumentContext.js";
import { modelArgs, tempDir } from "../helpers/models.js";
import { freePort } from "../helpers/mosquitto.js";
import { spawnAgent } from "../helpers/mqttAgent.js";
import type { AgentProcess } from "../helpers/mqttAgent.js";
import { scriptedModel } from "../helpers/thirdParty.js";
import { waitUntil } from "../helpers/wait.js";

// The web page (README, "Web page") in Debian's chromium, driven by playwright-core, against
// the real bundle's `run --http ... --instrument sim` with a scripted model: the page asks,
// streams the answer, shows the simulator's settings and draws its trace with the 1 GHz tone
// marked. The agent has an API key, so the page works only once the key is typed in.
// WEB_PAGE_SCREENSHOT=docs/web-page.png copies the screenshot there (the README's picture).

const CHROMIUM = "/usr/bin/chromium";
const REPLY = "The strongest tone sits at one gigahertz, twenty dB below a milliwatt";
const KEY = "web-page-test-key";
const dir = tempDir("iagent-web-page-");
const screenshot = path.join(dir, "web-page.png");
const audit = path.join(dir, "scpi-audit.jsonl");

/** The audit log's lines as `<origin> <line>`. */
function auditOrigins(): string[] {
  const lines = readFileSync(audit, "utf8")
    .split("\n")
    .filter((line) => line !== "");
  return lines.map((line) => JSON.parse(line) as { origin: string; line: string }).map((entry) => `${entry.origin} ${entry.line}`);
}

let agent: AgentProcess;
let base: string;
let browser: Browser;

async function healthy(): Promise<boolean> {
  try {
    return (await fetch(`${base}/health`)).status === 200;
  } catch {
    return false;
  }
}

async function waitForHealth(): Promise<void> {
  const deadline = Date.now() + 120_000;
  while (!(await healthy())) {
    if (agent.child.exitCode !== null) throw new Error(`run exited ${agent.child.exitCode}:\n${agent.output()}`);
    if (Date.now() > deadline) throw new Error(`/health did not say 200 within 120 s:\n${agent.output()}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** A page at 1024x768 that records every URL it asks for. */
async function openPage(): Promise<{ page: Page; requested: string[] }> {
  const page = await browser.newPage({ viewport: { width: 1024, height: 768 } });
  const requested: string[] = [];
  page.on("request", (request) => requested.push(request.url()));
  await page.goto(`${base}/`);
  return { page, requested };
}

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install chromium (.ci/run installs it)`);
  const model = await scriptedModel(path.join(dir, "web.gguf"), REPLY);
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  const args = [
    "--http",
    `127.0.0.1:${port}`,
    "--mqtt",
    "off",
    "--instrument",
    "sim",
    "--state-dir",
    path.join(dir, "state"),
    "--scpi-audit",
    audit,
  ];
  agent = spawnAgent([...args, ...modelArgs(model)], { IAGENT_HTTP_API_KEY: KEY });
  await waitForHealth();
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
}, 180_000);

afterAll(async () => {
  await browser?.close();
  if (agent) expect((await agent.stop()).code).toBe(0);
});

describe("GET /api/instrument", () => {
  it("needs the key and gives the simulator's settings and trace", async () => {
    expect((await fetch(`${base}/api/instrument`)).status).toBe(401);
    const response = await fetch(`${base}/api/instrument`, { headers: { authorization: `Bearer ${KEY}` } });
    expect(response.status).toBe(200);
    const data = (await response.json()) as {
      settings: { model: string; centerHz: number; spanHz: number; text: string };
      trace: { startHz: number; stopHz: number; points: number[]; peaks: { frequencyHz: number; levelDbm: number }[] };
      error?: string;
    };
    expect(data.error).toBeUndefined();
    expect(data.settings).toMatchObject({ model: "N9020A", centerHz: 1e9, spanHz: 100e6 });
    expect(data.settings.text).toContain("peak 1.0000 GHz -20.0 dBm");
    expect(data.trace).toMatchObject({ startHz: 950e6, stopHz: 1050e6 });
    expect(data.trace.points).toHaveLength(1001);
    expect(data.trace.peaks[0]).toEqual({ frequencyHz: 1e9, levelDbm: -20 });
    // Before any question, every read is the page's, audited as origin web.
    expect(auditOrigins()).toEqual(Object.values(SNAPSHOT_QUERIES).map((query) => `web ${query}`));
  });
});

describe("the page at /", () => {
  it("says the key was refused until it is typed in", async () => {
    const { page } = await openPage();
    await page.locator("#notice").waitFor();
    expect(await page.locator("#notice").innerText()).toContain("401: the agent refused the API key");
    await page.close();
  });

  it("streams the answer, shows the settings and marks the 1 GHz tone on the plot, all from the agent itself", async () => {
    const { page, requested } = await openPage();
    await page.fill("#key", KEY);
    await page.click("#key-form button");
    await page.locator("#settings").waitFor();
    const settings = await page.locator("#settings").innerText();
    expect(settings).toContain("N9020A");
    expect(settings).toMatch(/Center\s+1 GHz/);

    const peak = page.locator("#plot svg .peak").first();
    await peak.waitFor();
    expect(await peak.locator("text").textContent()).toBe("-20.0 dBm");
    expect(await peak.locator("title").textContent()).toBe("1 GHz: -20.0 dBm");
    const axis = await page.locator("#plot svg .axis-label text").allTextContents();
    expect(axis).toEqual(expect.arrayContaining(["950 MHz", "1 GHz", "1.05 GHz", "Frequency", "Level (dBm)", "0", "-100"]));
    expect((await page.locator("#plot svg polyline").getAttribute("points"))!.split(" ").length).toBeGreaterThan(300);

    const stream = page.waitForResponse((response) => response.url() === `${base}/v1/chat/completions`);
    await page.fill("#question", "Where is the strongest tone?");
    await page.click("#send");
    const response = await stream;
    expect(response.status()).toBe(200);
    expect(response.headers()["content-type"]).toContain("text/event-stream");
    const answer = page.locator("#messages li.assistant[data-done=true]");
    await answer.waitFor();
    expect(await answer.innerText()).toBe(REPLY);
    const events = (await response.text()).split("\n").filter((line) => line.startsWith("data: "));
    expect(events.length).toBeGreaterThan(2);
    expect(events.at(-1)).toBe("data: [DONE]");

    // Offline: nothing but the agent's own origin was asked for.
    await waitUntil(() => requested.length >= 4, { what: "the page's requests" });
    expect(requested.filter((url) => !url.startsWith(`${base}/`))).toEqual([]);

    await page.screenshot({ path: screenshot });
    const png = readFileSync(screenshot);
    expect(png.subarray(1, 4).toString("latin1")).toBe("PNG");
    expect(statSync(screenshot).size).toBeLessThan(150 * 1024);
    if (process.env.WEB_PAGE_SCREENSHOT) copyFileSync(screenshot, process.env.WEB_PAGE_SCREENSHOT);
    await page.close();
  });
});
