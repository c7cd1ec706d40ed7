// Plexus dashboard: plain JS module, no build step. Everything shown comes
// from the admin API with the token the user entered; all text is inserted
// with textContent, never as HTML.

const state = { tab: "services", timer: null, rates: { last: null, at: 0, perService: {} } };

function el(tag, attrs = {}, ...children) {
  const n = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") n.className = v;
    else if (k.startsWith("on")) n.addEventListener(k.slice(2), v);
    else n.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    n.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return n;
}

function table(headers, rows) {
  return el("table", {}, el("thead", {}, el("tr", {}, headers.map((h) => el("th", {}, h)))),
    el("tbody", {}, rows.length ? rows.map((r) => el("tr", {}, r.map((c) => el("td", {}, c))))
      : [el("tr", {}, el("td", { colspan: String(headers.length), class: "muted" }, "nothing yet"))]));
}

async function api(path, opts = {}) {
  const token = sessionStorage.getItem("plexus-token");
  const headers = { Authorization: "Bearer " + token };
  if (opts.body !== undefined) headers["Content-Type"] = "application/json";
  const resp = await fetch(path, { method: opts.method || "GET", headers,
    body: opts.body === undefined ? undefined : JSON.stringify(opts.body) });
  if (resp.status === 401) { showLogin("The token was refused."); throw new Error("unauthorized"); }
  if (resp.status === 204) return null;
  const ct = resp.headers.get("Content-Type") || "";
  const data = ct.includes("json") ? await resp.json() : await resp.text();
  if (!resp.ok) throw new Error((data && data.detail) || resp.statusText);
  return data;
}

const fmtTime = (t) => (t ? new Date(t).toLocaleTimeString() : "");
// Durations come as durationMs (a number) beside the Go duration string.
const fmtDur = (ms) => (ms >= 1 ? ms.toFixed(1) + " ms" : (ms * 1e3).toFixed(0) + " µs");
const clip = (s, n) => (s && s.length > n ? s.slice(0, n) + "…" : s || "");
const badge = (s) => el("span", { class: s }, s);

// Gateway request rates per service, from the public /metrics counters.
async function sampleRates() {
  const text = await (await fetch("/metrics")).text();
  const totals = {};
  for (const line of text.split("\n")) {
    if (!line.startsWith("plexus_gateway_requests_total{")) continue;
    const m = line.match(/service="([^"]*)"[^}]*}\s+([0-9.e+]+)/);
    if (m) totals[m[1]] = (totals[m[1]] || 0) + Number(m[2]);
  }
  const now = performance.now(), r = state.rates;
  if (r.last) {
    const secs = (now - r.at) / 1000;
    for (const [svc, v] of Object.entries(totals)) r.perService[svc] = Math.max(0, (v - (r.last[svc] || 0)) / secs);
  }
  r.last = totals; r.at = now;
}

async function renderServices(root) {
  const [services] = await Promise.all([api("/v1/services"), sampleRates().catch(() => {})]);
  const details = await Promise.all((services || []).map((s) => api("/v1/services/" + encodeURIComponent(s.name))));
  root.replaceChildren(el("h2", {}, "Services"),
    table(["service", "instances", "healthy", "requests/s"], (services || []).map((s) => [
      s.name, s.instances, s.healthy, (state.rates.perService[s.name] || 0).toFixed(1)])));
  for (const d of details) {
    root.append(el("h2", {}, d.name), table(["id", "url", "status", "weight", "version", "zone", "last check", "output", "expires"],
      d.instances.map((i) => [el("span", { class: "mono" }, i.id), i.url, badge(i.status), i.weight, i.version || "",
        i.zone || "", fmtTime(i.lastCheck), clip(i.checkOutput, 80), fmtTime(i.expiresAt)])));
  }
}

async function renderBreakers(root) {
  const list = await api("/v1/breakers");
  root.replaceChildren(el("h2", {}, "Circuit breakers"), table(["service", "instance", "state", "failures", "opened", "retry after"],
    (list || []).map((b) => [b.service, b.instance || "(service)", badge(b.state), b.failures, fmtTime(b.openedAt), b.retryAfter || ""])));
}

async function renderQueues(root) {
  const queues = await api("/v1/queues");
  root.replaceChildren(el("h2", {}, "Queues"), table(
    ["queue", "ready", "delayed", "in flight", "dead", "processed", "errors", "consumers", ""],
    (queues || []).map((q) => [q.name, q.queueSize, q.delayed, q.inFlight, q.deadLetterQueueSize, q.processedMessages,
      q.errorMessages, q.activeConsumers,
      el("button", { class: "act", onclick: () => showDead(root, q.name) }, "dead letters")])));
}

async function showDead(root, name) {
  const dl = await api("/v1/queues/" + encodeURIComponent(name) + "/dead-letters");
  const redrive = el("button", { class: "act", onclick: async () => {
    const r = await api("/v1/queues/" + encodeURIComponent(name) + "/dead-letters/redrive", { method: "POST", body: {} });
    setStatus(`redrove ${r.redriven} message(s) of ${name}`); render();
  } }, "redrive all");
  root.append(el("h2", {}, `Dead letters of ${name} `, redrive), table(["id", "reason", "attempts", "last error", "time", "payload"],
    (dl.messages || []).map((m) => [el("span", { class: "mono" }, m.id), m.deadLetterReason, m.attempts, m.lastError || "",
      fmtTime(m.deadLetterTimestamp), el("span", { class: "mono" }, JSON.stringify(m.payload).slice(0, 120))])));
}

async function renderEvents(root) {
  // The node's /health names the last position; read the 50 events before it.
  const h = await (await fetch("/health")).json();
  const last = (h.events && h.events.lastPosition) || 0;
  const page = await api(`/v1/events?limit=50&fromPosition=${Math.max(1, last - 49)}`);
  const events = (page.events || []).slice(-50).reverse();
  root.replaceChildren(el("h2", {}, "Latest events"), table(["position", "stream", "version", "type", "time", "data"],
    events.map((e) => [e.position, e.stream, e.version, e.type, fmtTime(e.timestamp),
      el("span", { class: "mono" }, JSON.stringify(e.data).slice(0, 120))])));
}

async function renderTraces(root) {
  const traces = await api("/v1/traces?limit=30");
  root.replaceChildren(el("h2", {}, "Recent traces"), table(["trace", "root", "start", "duration", "spans", "errors"],
    (traces || []).map((t) => [el("a", { href: "#", onclick: (ev) => { ev.preventDefault(); showTrace(root, t.traceId); } },
      t.traceId.slice(0, 16) + "…"), `${t.rootService} ${t.rootOperation}`, fmtTime(t.start), fmtDur(t.durationMs), t.spans, t.errors])));
}

async function showTrace(root, id) {
  stopTimer();
  const tr = await api("/v1/traces/" + encodeURIComponent(id));
  const spans = tr.spans || [];
  const t0 = Math.min(...spans.map((s) => Date.parse(s.start)));
  const end = Math.max(...spans.map((s) => Date.parse(s.start) + s.durationMs));
  const total = Math.max(end - t0, 0.001);
  const depth = {}, byId = Object.fromEntries(spans.map((s) => [s.spanId, s]));
  const d = (s) => (depth[s.spanId] ??= s.parentSpanId && byId[s.parentSpanId] ? d(byId[s.parentSpanId]) + 1 : 0);
  spans.sort((a, b) => Date.parse(a.start) - Date.parse(b.start));
  root.replaceChildren(el("h2", {}, "Trace ", el("span", { class: "mono" }, tr.traceId)),
    el("button", { class: "act", onclick: () => { render(); startTimer(); } }, "back"),
    table(["span", "service", "duration", "timeline"], spans.map((s) => {
      const left = ((Date.parse(s.start) - t0) / total) * 100, width = (s.durationMs / total) * 100;
      const bar = el("span", { class: s.status === "error" ? "err" : "" });
      bar.style.left = left + "%"; bar.style.width = width + "%";
      return [el("span", {}, "\u00a0".repeat(d(s) * 3) + s.name), s.service, fmtDur(s.durationMs), el("div", { class: "bar" }, bar)];
    })));
}

const renderers = { services: renderServices, breakers: renderBreakers, queues: renderQueues, events: renderEvents, traces: renderTraces };

function setStatus(msg, isError) {
  const s = document.getElementById("status");
  s.textContent = msg; s.className = isError ? "error" : "muted";
}

async function render() {
  const root = document.getElementById(state.tab);
  try { await renderers[state.tab](root); setStatus("updated " + new Date().toLocaleTimeString()); }
  catch (e) { if (e.message !== "unauthorized") setStatus(e.message, true); }
}

function stopTimer() { clearInterval(state.timer); state.timer = null; }
function startTimer() { stopTimer(); state.timer = setInterval(render, 3000); }

function showLogin(msg) {
  stopTimer();
  document.getElementById("main").hidden = true;
  document.getElementById("login").hidden = false;
  document.getElementById("login-error").textContent = msg || "";
}

async function showMain() {
  document.getElementById("login").hidden = true;
  document.getElementById("main").hidden = false;
  try {
    const h = await (await fetch("/health")).json();
    document.getElementById("node").textContent = `${h.version} · ${(h.roles || []).join(", ")} · up ${h.uptime}`;
  } catch { /* the header line is optional */ }
  await render();
  startTimer();
}

function selectTab(tab) {
  for (const b of document.querySelectorAll("#tabs button")) b.classList.toggle("active", b.dataset.tab === tab);
  for (const name of Object.keys(renderers)) document.getElementById(name).hidden = name !== tab;
  state.tab = tab;
}

document.getElementById("tabs").addEventListener("click", (ev) => {
  const tab = ev.target.dataset.tab;
  if (!tab) return;
  selectTab(tab);
  render();
});

document.getElementById("login").addEventListener("submit", (ev) => {
  ev.preventDefault();
  sessionStorage.setItem("plexus-token", document.getElementById("token").value.trim());
  showMain();
});

// A link of the form /ui/#token=… signs in directly; the fragment never
// reaches the server and is removed from the address bar at once.
const link = new URLSearchParams(location.hash.slice(1));
const fromLink = link.get("token");
if (Object.hasOwn(renderers, link.get("tab") || "")) selectTab(link.get("tab"));
if (fromLink) {
  sessionStorage.setItem("plexus-token", fromLink);
  history.replaceState(null, "", location.pathname);
}
if (sessionStorage.getItem("plexus-token")) showMain(); else showLogin();
