// Plexus dashboard: plain JS modules, no build step. Everything shown comes
// from the admin API with the token the user entered; all text is inserted
// as text, never as HTML. What is on screen is named by the address's
// fragment (#tab=queues&dead=jobs, #tab=traces&trace=…), so links work,
// the back button works, and the periodic refresh redraws the same view.

import { el, table, api, Unauthorized, fmtDateTime, fmtWhen, fmtRelative, fmtSpan, fmtMs, clip, badge, fmtNumber } from "./util.js";
import { timeChart, breakerTimeline, fmtRate, fmtCount, fmtSeconds, dropCharts, colorOf } from "./charts.js";
import { renderWaterfall } from "./waterfall.js";

const REFRESH_MS = 3000;
const tabs = ["services", "breakers", "queues", "events", "traces"];
const state = { params: new URLSearchParams(), timer: null, busy: false, hist: null, started: null };

const param = (k) => state.params.get(k) || "";

// link builds a fragment for the current tab with changed parameters.
function link(changes, keep = false) {
  const p = keep ? new URLSearchParams(state.params) : new URLSearchParams({ tab: param("tab") || "services" });
  for (const [k, v] of Object.entries(changes)) {
    if (v === null || v === undefined || v === "" || v === false) p.delete(k);
    else p.set(k, v);
  }
  return "#" + p.toString();
}

function go(changes, keep = false) {
  location.hash = link(changes, keep);
}

async function loadHistory() {
  try { state.hist = await api("/v1/metrics/history"); } catch (e) { if (e instanceof Unauthorized) throw e; }
  return state.hist || { times: [], services: {}, queues: {}, events: {} };
}

function latest(values) {
  for (let i = (values || []).length - 1; i >= 0; i--) if (values[i] !== null) return values[i];
  return null;
}

// ---- services

async function renderServices(root) {
  const [services, hist] = await Promise.all([api("/v1/services"), loadHistory()]);
  const details = await Promise.all((services || []).map((s) => api("/v1/services/" + encodeURIComponent(s.name))));
  const names = Object.keys(hist.services).sort();
  const series = (field, dash) => names.map((n) => ({ label: n, values: hist.services[n][field], dash }));
  const charts = el("div", { class: "charts" },
    timeChart("svc-rate", "Requests per second", hist.times, series("requestsPerSecond"), fmtRate, 3),
    timeChart("svc-err", "Errors (5xx) per second", hist.times, series("errorsPerSecond"), fmtRate, 3),
    timeChart("svc-lat", "Latency p50 (solid) and p99 (dashed)", hist.times,
      [...series("p50Seconds").map((s, i) => ({ ...s, label: s.label + " p50", color: colorOf(i) })),
        ...series("p99Seconds", [6, 4]).map((s, i) => ({ ...s, label: s.label + " p99", color: colorOf(i) }))], fmtSeconds, 3));
  const rows = (services || []).map((s) => {
    const h = hist.services[s.name] || {};
    const rate = latest(h.requestsPerSecond), errs = latest(h.errorsPerSecond);
    return [el("a", { href: "#svc-" + s.name, class: "svc-link" }, s.name), s.instances,
      el("span", { class: s.healthy === s.instances ? "healthy" : s.healthy ? "draining" : "unhealthy" }, `${s.healthy} / ${s.instances}`),
      fmtRate(rate), errs ? el("span", { class: "unhealthy" }, fmtRate(errs)) : fmtRate(errs),
      fmtSeconds(latest(h.p50Seconds)), fmtSeconds(latest(h.p99Seconds)), h.breaker ? breakerBadge(latest(h.breaker)) : ""];
  });
  root.replaceChildren(charts, el("h2", {}, "Services"),
    table(["service", "instances", "healthy", "requests/s", "errors/s", "p50", "p99", "breaker"], rows));
  for (const d of details) {
    root.append(el("h2", { id: "svc-" + d.name }, d.name), table(["id", "url", "status", "weight", "version", "zone", "last check", "output", "lease expires"],
      d.instances.map((i) => [el("span", { class: "mono" }, i.id), i.url, badge(i.status), i.weight, i.version || "",
        i.zone || "", fmtDateTime(i.lastCheck), clip(i.checkOutput, 80), fmtWhen(i.expiresAt)])));
  }
}

// ---- breakers

function breakerBadge(st) {
  return st ? badge(st) : "";
}

// breakerState explains a breaker: an open breaker whose reset timeout has
// passed lets the next request through as a probe.
function breakerState(b) {
  if (b.state === "open" && !b.retryAfter) {
    return el("span", {}, badge("open"), el("span", { class: "hint" }, " reset timeout passed: the next request probes (half-open)"));
  }
  if (b.state === "open") return el("span", {}, badge("open"), el("span", { class: "hint" }, ` probe allowed in ${fmtSpan(parseGoDuration(b.retryAfter))}`));
  if (b.state === "half-open") return el("span", {}, badge("half-open"), el("span", { class: "hint" }, " probing"));
  return badge(b.state);
}

async function renderBreakers(root) {
  const [list, hist] = await Promise.all([api("/v1/breakers"), loadHistory()]);
  root.replaceChildren(breakerTimeline(hist.times, hist.services), el("h2", {}, "Circuit breakers"),
    table(["service", "instance", "state", "failures", "opened", "retry after"],
      (list || []).map((b) => [b.service, b.instance || "(service)", breakerState(b), b.failures,
        b.openedAt ? fmtWhen(b.openedAt) : "", b.retryAfter ? fmtSpan(parseGoDuration(b.retryAfter)) : (b.state === "open" ? "now" : "")])));
}

// ---- queues

async function renderQueues(root) {
  const [queues, hist] = await Promise.all([api("/v1/queues"), loadHistory()]);
  const names = Object.keys(hist.queues).filter((q) => !q.endsWith(".dlq")).sort().slice(0, 6);
  const depth = [];
  for (const q of names) {
    depth.push({ label: q + " ready", values: hist.queues[q].ready });
    depth.push({ label: q + " in flight", values: hist.queues[q].inFlight, dash: [6, 4] });
  }
  const dead = names.map((q) => ({ label: q, values: hist.queues[q].deadLetters }));
  const charts = el("div", { class: "charts" },
    timeChart("q-depth", "Queue depth: ready (solid) and in flight (dashed)", hist.times, depth, fmtCount),
    timeChart("q-dead", "Dead letters", hist.times, dead, fmtCount));
  const open = param("dead");
  const rows = (queues || []).map((q) => {
    const ready = Math.max((q.queueSize || 0) - (q.inFlight || 0), 0);
    const isOpen = open === q.name;
    return el("tr", { class: isOpen ? "selected" : "" }, [q.name, ready, q.inFlight, q.delayed, q.deadLetterQueueSize,
      q.publishedMessages ?? "", q.processedMessages, q.errorMessages, q.activeConsumers,
      q.config && q.config.deadLetterOf ? el("span", { class: "muted" }, "dead letters of " + q.config.deadLetterOf)
        : el("a", { class: "act", href: link({ dead: isOpen ? null : q.name }) }, isOpen ? "hide dead letters" : "dead letters")]
      .map((c) => el("td", {}, c)));
  });
  root.replaceChildren(charts, el("h2", {}, "Queues"), table(
    ["queue", "ready", "in flight", "delayed", "dead", "published", "processed", "errors", "consumers", ""], rows, { class: "queue-list" }),
  el("p", { class: "muted" }, "ready: deliverable now; in flight: received and not acknowledged; delayed: not before their time."));
  if (open) root.append(await deadLetters(open));
}

async function deadLetters(name) {
  const q = encodeURIComponent(name);
  const dl = await api("/v1/queues/" + q + "/dead-letters");
  const redrive = el("button", { class: "act", onclick: async () => {
    const r = await api("/v1/queues/" + q + "/dead-letters/redrive", { method: "POST", body: {} });
    setStatus(`redrove ${r.redriven} message(s) of ${name}`);
    render();
  } }, "redrive all");
  return el("section", { class: "dead-letters", "data-queue": name },
    el("h2", {}, `Dead letters of ${name} `, redrive, " ", el("a", { class: "act", href: link({ dead: null }) }, "close")),
    table(["id", "reason", "attempts", "last error", "dead-lettered", "payload"],
      (dl.messages || []).map((m) => [el("span", { class: "mono" }, m.id), m.deadLetterReason, m.attempts, m.lastError || "",
        fmtWhen(m.deadLetterTimestamp), el("span", { class: "mono" }, clip(JSON.stringify(m.payload), 120))])));
}

// ---- events

async function renderEvents(root) {
  const [health, hist, subs] = await Promise.all([fetchHealth(), loadHistory(), api("/v1/subscriptions").catch(() => ({ groups: [] }))]);
  const last = (health.events && health.events.lastPosition) || 0;
  // Positions have gaps between appends: read the newest 50 backwards.
  const page = last ? await api("/v1/events?limit=50&direction=backward") : { events: [] };
  const events = page.events || [];
  const ev = hist.events || {};
  const lag = Object.keys(ev.subscriptionLag || {}).sort().map((g) => ({ label: g, values: ev.subscriptionLag[g] }));
  root.replaceChildren(
    el("div", { class: "charts" },
      timeChart("ev-rate", "Events appended per second", hist.times, [{ label: "appended", values: ev.appendedPerSecond || [] }], fmtRate),
      timeChart("ev-lag", "Subscription lag (appends)", hist.times, lag, fmtCount)),
    el("h2", {}, "Subscriber groups"),
    table(["group", "checkpoint", "pending", "in flight", "lag"], (subs.groups || []).map((g) =>
      [g.group, g.checkpoint, g.pending, g.inFlight, el("span", { class: g.pending + g.inFlight > 0 ? "draining" : "healthy" }, fmtNumber(g.pending + g.inFlight, 0))])),
    el("h2", {}, `Latest events (last position ${last})`),
    table(["position", "stream", "version", "type", "time", "data"],
      events.map((e) => [e.position, e.stream, e.version, e.type, fmtDateTime(e.timestamp),
        el("span", { class: "mono" }, clip(JSON.stringify(e.data), 120))])));
}

// ---- traces

const lookbacks = [["15m", "last 15 minutes"], ["1h", "last hour"], ["6h", "last 6 hours"], ["24h", "last day"], ["", "all kept"]];

function searchForm(services) {
  const svc = param("service"), op = param("operation");
  const opsOf = (s) => (services.find((x) => x.service === s) || { operations: [] }).operations;
  const allOps = [...new Set(services.flatMap((s) => s.operations))].sort();
  const opSelect = el("select", { name: "operation", id: "f-operation" });
  const fillOps = (s) => {
    opSelect.replaceChildren(el("option", { value: "" }, "all operations"),
      ...(s ? opsOf(s) : allOps).map((o) => el("option", { value: o, selected: o === op }, o)));
  };
  fillOps(svc);
  const svcSelect = el("select", { name: "service", id: "f-service", onchange: () => fillOps(svcSelect.value) },
    el("option", { value: "" }, "all services"), ...services.map((s) => el("option", { value: s.service, selected: s.service === svc }, s.service)));
  const form = el("form", { class: "search", id: "trace-search" },
    el("label", {}, "Service ", svcSelect),
    el("label", {}, "Operation ", opSelect),
    el("label", {}, "Min duration ", el("input", { name: "minDuration", id: "f-min", placeholder: "e.g. 5ms", value: param("minDuration"), size: "8" })),
    el("label", {}, "Time ", el("select", { name: "lookback", id: "f-lookback" },
      lookbacks.map(([v, t]) => el("option", { value: v, selected: v === param("lookback") }, t)))),
    el("label", { class: "check" }, el("input", { type: "checkbox", name: "errors", id: "f-errors", checked: param("errors") === "true" }), " errors only"),
    el("button", { type: "submit", class: "act" }, "Search"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const f = new FormData(form);
    go({ service: f.get("service"), operation: f.get("operation"), minDuration: f.get("minDuration").trim(),
      lookback: f.get("lookback"), errors: f.get("errors") ? "true" : null });
  });
  return form;
}

async function renderTraces(root) {
  if (param("trace")) {
    const tr = await api("/v1/traces/" + encodeURIComponent(param("trace")));
    root.replaceChildren(renderWaterfall(tr, link({ trace: null }, true)));
    return false; // a trace does not change: no refresh
  }
  const q = new URLSearchParams({ limit: "50" });
  for (const k of ["service", "operation", "minDuration", "lookback", "errors"]) if (param(k)) q.set(k, param(k));
  const [list, svcs] = await Promise.all([api("/v1/traces?" + q), api("/v1/traces/services")]);
  let form = root.querySelector("#trace-search");
  if (!form || form.dataset.for !== state.params.toString()) {
    form = searchForm(svcs.services || []);
    form.dataset.for = state.params.toString();
  }
  const traces = list || [];
  const maxMs = Math.max(...traces.map((t) => t.durationMs), 0.001);
  root.replaceChildren(form, el("h2", {}, `Traces (${traces.length}${traces.length === 50 ? "+" : ""}, newest first)`),
    table(["trace", "root", "start", "duration", "", "spans", "errors", "services"], traces.map((t) => {
      const bar = el("span", { class: t.errors ? "err" : "" });
      bar.style.width = Math.max((t.durationMs / maxMs) * 100, 1) + "%";
      return [el("a", { href: link({ trace: t.traceId }, true), class: "mono trace-link" }, t.traceId.slice(0, 16) + "…"),
        `${t.rootService} · ${t.rootOperation}`, fmtDateTime(t.start), fmtMs(t.durationMs), el("div", { class: "dur" }, bar),
        t.spans, t.errors ? badge("error", String(t.errors)) : "0", (t.services || []).join(", ")];
    }), { class: "trace-list" }));
  return true;
}

// ---- frame

const renderers = { services: renderServices, breakers: renderBreakers, queues: renderQueues, events: renderEvents, traces: renderTraces };

function setStatus(msg, isError) {
  const s = document.getElementById("status");
  s.textContent = msg;
  s.className = isError ? "error" : "muted";
}

async function fetchHealth() {
  return (await fetch("/health")).json();
}

async function header() {
  const h = await fetchHealth();
  // The uptime ticks between refreshes from the start time it implies.
  state.started = Date.now() - parseGoDuration(h.uptime);
  state.nodeLine = `${h.version} · ${(h.roles || []).join(", ")}`;
  tickHeader();
}

function tickHeader() {
  if (state.started === null) return;
  document.getElementById("node").textContent = `${state.nodeLine} · up ${fmtSpan(Date.now() - state.started)}`;
}

// parseGoDuration reads a Go duration string such as "1h2m3s" (ms).
function parseGoDuration(s) {
  let ms = 0;
  for (const [, n, u] of (s || "").matchAll(/([\d.]+)(h|ms|m|s|µs|us|ns)/g)) {
    ms += Number(n) * { h: 3600e3, m: 60e3, s: 1e3, ms: 1, "µs": 1e-3, us: 1e-3, ns: 1e-6 }[u];
  }
  return ms;
}

async function render() {
  if (state.busy) return;
  state.busy = true;
  const tab = param("tab") || "services";
  const root = document.getElementById(tab);
  try {
    const again = await renderers[tab](root);
    header().catch(() => {});
    setStatus("updated " + fmtDateTime(new Date()) + (again === false ? " · trace views do not refresh" : ""));
    if (again === false) stopTimer(); else startTimer();
  } catch (e) {
    if (e instanceof Unauthorized) showLogin(e.message);
    else setStatus(e.message, true);
  } finally {
    state.busy = false;
  }
  if (tab !== "services") dropCharts("svc-", new Set());
}

function stopTimer() { clearInterval(state.timer); state.timer = null; }
function startTimer() {
  if (state.timer) return;
  state.timer = setInterval(render, REFRESH_MS);
}

function showLogin(msg) {
  stopTimer();
  document.getElementById("main").hidden = true;
  document.getElementById("login").hidden = false;
  document.getElementById("login-error").textContent = msg || "";
}

function selectTab(tab) {
  for (const b of document.querySelectorAll("#tabs a")) b.classList.toggle("active", b.dataset.tab === tab);
  for (const name of tabs) document.getElementById(name).hidden = name !== tab;
}

// route reads the fragment: a token signs in (and is removed from the
// address bar at once); the rest names the view.
function route() {
  const p = new URLSearchParams(location.hash.slice(1));
  const token = p.get("token");
  if (token) {
    sessionStorage.setItem("plexus-token", token);
    p.delete("token");
    history.replaceState(null, "", location.pathname + (p.toString() ? "#" + p : ""));
  }
  if (!tabs.includes(p.get("tab") || "")) p.set("tab", "services");
  state.params = p;
  selectTab(p.get("tab"));
  if (!sessionStorage.getItem("plexus-token")) {
    showLogin();
    return;
  }
  document.getElementById("login").hidden = true;
  document.getElementById("main").hidden = false;
  stopTimer();
  render();
}

document.getElementById("login").addEventListener("submit", (ev) => {
  ev.preventDefault();
  sessionStorage.setItem("plexus-token", document.getElementById("token").value.trim());
  route();
});

window.addEventListener("hashchange", route);
setInterval(tickHeader, 1000); // the uptime counts seconds between refreshes
route();
