// The web page's script (README, "Web page"): plain JavaScript, no framework, nothing fetched
// but this agent's own API, with the key typed in (kept in sessionStorage, sent as Bearer).
"use strict";
(() => {
  const KEY_STORAGE = "instrument-agent.apiKey";
  const REFRESH_MS = 5000;
  const SVG_NS = "http://www.w3.org/2000/svg";
  const $ = (id) => document.getElementById(id);
  const conversation = [];
  let modelId;
  let asking = false;

  function headers(extra) {
    const key = sessionStorage.getItem(KEY_STORAGE);
    return Object.assign(key ? { authorization: `Bearer ${key}` } : {}, extra);
  }

  function notice(text) {
    $("notice").textContent = text || "";
    $("notice").hidden = !text;
  }

  const KEY_REFUSED =
    "401: the agent refused the API key. Enter the key it was started with (--http-api-key or IAGENT_HTTP_API_KEY) above and press Use key.";

  /** The error an API reply carries, in OpenAI's shape {error: {message, code}}, as one line. */
  async function failure(response) {
    if (response.status === 401) return KEY_REFUSED;
    let detail = "";
    try {
      const body = await response.json();
      detail = body.error ? `${body.error.message}${body.error.code ? ` (${body.error.code})` : ""}` : JSON.stringify(body);
    } catch {
      detail = response.statusText;
    }
    return `${response.status}: ${detail}`;
  }

  // ---- numbers ----
  const SI = [
    [1e9, "G"],
    [1e6, "M"],
    [1e3, "k"],
    [1, ""],
    [1e-3, "m"],
    [1e-6, "µ"],
  ];
  function si(value, unit) {
    if (value === undefined || value === null) return "";
    if (value === 0) return `0 ${unit}`;
    const [scale, prefix] = SI.find(([s]) => Math.abs(value) >= s) || SI[SI.length - 1];
    return `${Number((value / scale).toPrecision(6))} ${prefix}${unit}`;
  }
  const db = (value) => `${value.toFixed(1)} dBm`;

  // ---- settings ----
  function row(body, name, value) {
    if (value === undefined || value === "") return;
    const tr = body.insertRow();
    const th = document.createElement("th");
    th.textContent = name;
    tr.appendChild(th);
    tr.insertCell().textContent = value;
  }

  function showSettings(settings) {
    const table = $("settings");
    const body = table.tBodies[0];
    body.replaceChildren();
    table.hidden = !settings;
    if (!settings) return;
    $("instrument-where").textContent = settings.instrument ? `(${settings.instrument})` : "";
    row(body, "Instrument", [settings.maker, settings.model].filter(Boolean).join(" "));
    row(body, "Serial, firmware", [settings.serial, settings.firmware].filter(Boolean).join(", "));
    row(body, "Center", si(settings.centerHz, "Hz"));
    row(body, "Span", si(settings.spanHz, "Hz"));
    row(body, "RBW", si(settings.rbwHz, "Hz"));
    row(body, "VBW", si(settings.vbwHz, "Hz"));
    row(body, "Sweep time", si(settings.sweepTimeS, "s"));
    row(body, "Sweep points", settings.sweepPoints === undefined ? "" : String(settings.sweepPoints));
    row(body, "Reference level", settings.referenceLevelDbm === undefined ? "" : `${settings.referenceLevelDbm} dBm`);
    if (settings.markerHz !== undefined && settings.markerDbm !== undefined)
      row(body, "Marker 1", `${si(settings.markerHz, "Hz")}: ${db(settings.markerDbm)}`);
  }

  // ---- plot ----
  function svg(name, attributes, text) {
    const element = document.createElementNS(SVG_NS, name);
    for (const [key, value] of Object.entries(attributes || {})) element.setAttribute(key, String(value));
    if (text !== undefined) element.textContent = text;
    return element;
  }

  /** At most one point per pixel column, keeping each column's highest level so no peak vanishes. */
  function columns(points, width) {
    if (points.length <= width) return points.map((level, index) => [index, level]);
    const out = [];
    for (let c = 0; c < width; c++) {
      const from = Math.floor((c * points.length) / width);
      const to = Math.max(from + 1, Math.floor(((c + 1) * points.length) / width));
      let best = from;
      for (let i = from; i < to; i++) if (points[i] > points[best]) best = i;
      out.push([best, points[best]]);
    }
    return out;
  }

  function drawTrace(trace) {
    const W = 460;
    const H = 270;
    const left = 44;
    const right = 12;
    const top = 14;
    const bottom = 40;
    const plotW = W - left - right;
    const plotH = H - top - bottom;
    const n = trace.points.length;
    const max = Math.max(...trace.points);
    const min = Math.min(...trace.points);
    // 10 dB per division from the reference level down, as on the analyzer's screen.
    const yTop = trace.referenceLevelDbm !== null ? Math.max(trace.referenceLevelDbm, Math.ceil(max / 10) * 10) : Math.ceil(max / 10) * 10;
    const yBottom = Math.min(yTop - 100, Math.floor(min / 10) * 10);
    const span = trace.stopHz - trace.startHz;
    const x = (index) => left + (n === 1 ? plotW / 2 : (index * plotW) / (n - 1));
    const xHz = (hz) => left + (span === 0 ? plotW / 2 : ((hz - trace.startHz) * plotW) / span);
    const y = (dbm) => top + ((yTop - Math.min(yTop, Math.max(yBottom, dbm))) * plotH) / (yTop - yBottom);

    const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "Trace: level in dBm over frequency" });
    const grid = svg("g", { class: "grid" });
    const labels = svg("g", { class: "axis-label" });
    const yStep = (yTop - yBottom) / 10 >= 10 ? 20 : 10;
    for (let level = yTop; level >= yBottom; level -= yStep) {
      grid.appendChild(svg("line", { x1: left, x2: left + plotW, y1: y(level), y2: y(level) }));
      labels.appendChild(svg("text", { x: left - 4, y: y(level) + 3, "text-anchor": "end" }, String(level)));
    }
    for (let i = 0; i <= 4; i++) {
      const hz = trace.startHz + (i * span) / 4;
      const anchor = i === 0 ? "start" : i === 4 ? "end" : "middle";
      grid.appendChild(svg("line", { x1: xHz(hz), x2: xHz(hz), y1: top, y2: top + plotH }));
      labels.appendChild(svg("text", { x: xHz(hz), y: top + plotH + 13, "text-anchor": anchor }, si(hz, "Hz")));
    }
    labels.appendChild(svg("text", { x: left + plotW / 2, y: H - 6, "text-anchor": "middle" }, "Frequency"));
    labels.appendChild(
      svg("text", { x: 11, y: top + plotH / 2, "text-anchor": "middle", transform: `rotate(-90 11 ${top + plotH / 2})` }, "Level (dBm)"),
    );
    root.append(grid, labels);
    root.appendChild(svg("rect", { x: left, y: top, width: plotW, height: plotH, fill: "none", stroke: "#9ca3af" }));
    root.appendChild(
      svg("line", { class: "floor-line", x1: left, x2: left + plotW, y1: y(trace.floorDbm), y2: y(trace.floorDbm) }, undefined),
    );
    const line = columns(trace.points, plotW)
      .map(([index, level]) => `${x(index).toFixed(1)},${y(level).toFixed(1)}`)
      .join(" ");
    root.appendChild(svg("polyline", { class: "trace-line", points: line }));
    for (const peak of trace.peaks) {
      const group = svg("g", { class: "peak" });
      const px = xHz(peak.frequencyHz);
      const py = y(peak.levelDbm);
      const anchor = px > left + plotW - 60 ? "end" : px < left + 60 ? "start" : "middle";
      group.append(
        svg("circle", { cx: px, cy: py, r: 3 }),
        svg("text", { x: px, y: Math.max(top + 9, py - 6), "text-anchor": anchor }, db(peak.levelDbm)),
        svg("title", {}, `${si(peak.frequencyHz, "Hz")}: ${db(peak.levelDbm)}`),
      );
      root.appendChild(group);
    }
    $("plot").replaceChildren(root);
    const strongest = trace.peaks[0];
    $("trace-status").textContent =
      `${n} points, floor ${trace.floorDbm.toFixed(0)} dBm (median)` +
      (strongest ? `; strongest peak ${db(strongest.levelDbm)} at ${si(strongest.frequencyHz, "Hz")}` : "; no peak above the floor");
  }

  // ---- instrument ----
  let reading = false;
  async function refreshInstrument() {
    if (reading || document.hidden) return;
    reading = true;
    try {
      const response = await fetch("/api/instrument", { headers: headers(), cache: "no-store" });
      if (!response.ok) {
        const why = await failure(response);
        if (response.status === 401) notice(KEY_REFUSED);
        $("instrument-status").textContent = `The instrument cannot be shown: ${why}`;
        return;
      }
      const data = await response.json();
      if (!data.settings && !data.trace && !data.error) {
        showSettings(null);
        $("plot").replaceChildren();
        $("instrument-status").textContent = "No instrument is configured: start the agent with --instrument <uri> (or sim).";
        $("trace-status").textContent = "";
        return;
      }
      showSettings(data.settings);
      $("instrument-status").textContent = data.error ? data.error : `Read ${new Date().toLocaleTimeString()}.`;
      $("instrument-status").hidden = false;
      if (data.trace) drawTrace(data.trace);
      else {
        $("plot").replaceChildren();
        $("trace-status").textContent = "No trace could be read.";
      }
    } catch (error) {
      $("instrument-status").textContent = `The agent cannot be reached: ${error.message}`;
    } finally {
      reading = false;
    }
  }

  // ---- chat ----
  function bubble(role, text) {
    const item = document.createElement("li");
    item.className = role;
    item.textContent = text;
    $("messages").appendChild(item);
    item.scrollIntoView({ block: "end" });
    return item;
  }

  async function loadModel() {
    try {
      const response = await fetch("/v1/models", { headers: headers() });
      if (response.status === 401) return notice(KEY_REFUSED);
      if (!response.ok) return;
      const body = await response.json();
      modelId = body.data && body.data[0] ? body.data[0].id : undefined;
      $("model").textContent = modelId ? `model ${modelId}` : "";
    } catch {
      // The chat still works without the model's name.
    }
  }

  /** Reads the server-sent events of a streamed completion, appending each delta to `into`. */
  async function readStream(response, into) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffered = "";
    let text = "";
    for (;;) {
      const { value, done } = await reader.read();
      buffered += decoder.decode(value || new Uint8Array(), { stream: !done });
      let end;
      while ((end = buffered.indexOf("\n")) >= 0) {
        const line = buffered.slice(0, end).replace(/\r$/, "");
        buffered = buffered.slice(end + 1);
        if (!line.startsWith("data:")) continue;
        const data = line.slice(5).trim();
        if (data === "[DONE]") return text;
        const chunk = JSON.parse(data);
        if (chunk.error) throw new Error(`${chunk.error.message}${chunk.error.code ? ` (${chunk.error.code})` : ""}`);
        const delta = chunk.choices && chunk.choices[0] && chunk.choices[0].delta;
        if (delta && typeof delta.content === "string") {
          text += delta.content;
          into.textContent = text;
          into.scrollIntoView({ block: "end" });
        }
      }
      if (done) throw new Error("the stream ended before data: [DONE]");
    }
  }

  async function ask(question) {
    asking = true;
    $("send").disabled = true;
    bubble("user", question);
    conversation.push({ role: "user", content: question });
    const answer = bubble("assistant", "...");
    try {
      const response = await fetch("/v1/chat/completions", {
        method: "POST",
        headers: headers({ "content-type": "application/json" }),
        body: JSON.stringify(Object.assign(modelId ? { model: modelId } : {}, { messages: conversation, stream: true })),
      });
      if (!response.ok) throw new Error(await failure(response));
      notice("");
      const text = await readStream(response, answer);
      answer.dataset.done = "true";
      conversation.push({ role: "assistant", content: text });
    } catch (error) {
      conversation.pop();
      answer.className = "assistant error";
      answer.textContent = error.message;
      if (error.message === KEY_REFUSED) notice(KEY_REFUSED);
    } finally {
      asking = false;
      $("send").disabled = false;
      $("question").focus();
      refreshInstrument();
    }
  }

  $("ask").addEventListener("submit", (event) => {
    event.preventDefault();
    const question = $("question").value.trim();
    if (!question || asking) return;
    $("question").value = "";
    ask(question);
  });
  $("question").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      $("ask").requestSubmit();
    }
  });
  $("key").value = sessionStorage.getItem(KEY_STORAGE) || "";
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("key").value.trim();
    if (key) sessionStorage.setItem(KEY_STORAGE, key);
    else sessionStorage.removeItem(KEY_STORAGE);
    notice("");
    loadModel();
    refreshInstrument();
  });

  loadModel();
  refreshInstrument();
  setInterval(refreshInstrument, REFRESH_MS);
})();
