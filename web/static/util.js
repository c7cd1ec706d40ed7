// Helpers shared by the dashboard's modules: DOM building (text only, never
// HTML), the admin API with the token, and formatting of times and
// durations. Times are shown with their date, in the browser's time zone.

export function el(tag, attrs = {}, ...children) {
  const n = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") n.className = v;
    else if (k.startsWith("on")) n.addEventListener(k.slice(2), v);
    else n.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    n.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return n;
}

export function table(headers, rows, attrs = {}) {
  return el("table", attrs, el("thead", {}, el("tr", {}, headers.map((h) => el("th", {}, h)))),
    el("tbody", {}, rows.length ? rows.map((r) => (r instanceof Node ? r : el("tr", {}, r.map((c) => el("td", {}, c)))))
      : [el("tr", {}, el("td", { colspan: String(headers.length), class: "muted" }, "nothing yet"))]));
}

export class Unauthorized extends Error {}

// api calls the admin API with the token kept in sessionStorage.
export async function api(path, opts = {}) {
  const token = sessionStorage.getItem("plexus-token");
  const headers = { Authorization: "Bearer " + token };
  if (opts.body !== undefined) headers["Content-Type"] = "application/json";
  const resp = await fetch(path, { method: opts.method || "GET", headers,
    body: opts.body === undefined ? undefined : JSON.stringify(opts.body) });
  if (resp.status === 401) throw new Unauthorized("The token was refused.");
  if (resp.status === 204) return null;
  const ct = resp.headers.get("Content-Type") || "";
  const data = ct.includes("json") ? await resp.json() : await resp.text();
  if (!resp.ok) throw new Error((data && data.detail) || resp.statusText);
  return data;
}

const pad = (n, w = 2) => String(n).padStart(w, "0");

// fmtDateTime shows a time with its date: "2025-01-02 15:04:05".
export function fmtDateTime(t) {
  if (!t) return "";
  const d = t instanceof Date ? t : new Date(t);
  if (Number.isNaN(d.getTime())) return "";
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

// fmtSpan shows a length of time in its two largest units: "2d 3h", "4m 5s".
export function fmtSpan(ms) {
  let s = Math.max(0, Math.round(Math.abs(ms) / 1000));
  const parts = [];
  for (const [unit, size] of [["d", 86400], ["h", 3600], ["m", 60], ["s", 1]]) {
    if (s >= size || (unit === "s" && parts.length === 0)) {
      parts.push(Math.floor(s / size) + unit);
      s %= size;
    }
  }
  return parts.slice(0, 2).join(" ");
}

// fmtRelative says how far t is from now: "in 23h 59m", "5m 2s ago".
export function fmtRelative(t, now = Date.now()) {
  const ms = new Date(t).getTime() - now;
  return ms >= 0 ? "in " + fmtSpan(ms) : fmtSpan(ms) + " ago";
}

// fmtWhen is a date-time followed by the relative time.
export function fmtWhen(t) {
  return t ? `${fmtDateTime(t)} (${fmtRelative(t)})` : "";
}

// fmtNs shows nanoseconds with a unit that keeps µs precision.
export function fmtNs(ns) {
  if (ns < 1e3) return ns.toFixed(0) + " ns";
  if (ns < 1e6) return (ns / 1e3).toFixed(ns < 1e4 ? 1 : 0) + " µs";
  if (ns < 1e9) return (ns / 1e6).toFixed(ns < 1e7 ? 3 : 2) + " ms";
  return (ns / 1e9).toFixed(3) + " s";
}

export const fmtMs = (ms) => fmtNs(ms * 1e6);

// nsOf turns an RFC 3339 time with up to nine fraction digits (what the API
// sends) into nanoseconds since the epoch, as a BigInt: Date.parse keeps
// only milliseconds, which misplaces spans a few microseconds apart.
export function nsOf(s) {
  const m = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$/.exec(s || "");
  if (!m) return BigInt(Date.parse(s) || 0) * 1000000n;
  const whole = Date.parse(m[1] + m[3]);
  const frac = (m[2] || "").padEnd(9, "0").slice(0, 9);
  return BigInt(whole) * 1000000n + BigInt(frac);
}

export const clip = (s, n) => (s && s.length > n ? s.slice(0, n) + "…" : s || "");

export function badge(s, text) {
  return el("span", { class: "badge " + s }, text || s);
}

// fmtNumber shows counts and rates compactly.
export function fmtNumber(v, digits = 1) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  if (Math.abs(v) >= 1e6) return (v / 1e6).toFixed(digits) + "M";
  if (Math.abs(v) >= 1e4) return (v / 1e3).toFixed(digits) + "k";
  return Number.isInteger(v) ? String(v) : v.toFixed(digits);
}
