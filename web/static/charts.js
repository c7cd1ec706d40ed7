// Charts drawn from the node's own short history (GET /v1/metrics/history)
// with the vendored uPlot (global uPlot, vendor/uplot). A chart is built
// once and fed new data on every refresh, so refreshing does not flicker.

import { el, fmtDateTime, fmtNumber, fmtNs } from "./util.js";

const palette = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#65a30d", "#475569", "#ea580c"];
export const colorOf = (i) => palette[i % palette.length];

const charts = new Map(); // key → {u, sig, box}

export const fmtRate = (v) => (v === null || v === undefined ? "–" : fmtNumber(v, v >= 10 ? 1 : 2) + "/s");
export const fmtCount = (v) => fmtNumber(v, 0);
export const fmtSeconds = (v, axis) => {
  if (v === null || v === undefined) return "–";
  if (!axis) return fmtNs(v * 1e9);
  if (v === 0) return "0";
  return v >= 1 ? +v.toFixed(2) + " s" : v >= 1e-3 ? +(v * 1e3).toFixed(2) + " ms" : +(v * 1e6).toFixed(1) + " µs";
};

// timeChart draws series (aligned with hist.times) as lines under title.
// series: [{label, values, color?, dash?}]; fmt formats values (axis, legend).
export function timeChart(key, title, times, series, fmt = fmtNumber, cols = 2) {
  const sig = series.map((s) => s.label).join("\u0000");
  const data = [times, ...series.map((s) => s.values)];
  const box = el("div", { class: "chart", "data-chart": key });
  let c = charts.get(key);
  if (c && c.sig === sig) {
    c.u.setData(data);
    return c.box;
  }
  if (c) c.u.destroy();
  const head = el("div", { class: "chart-title" }, title);
  box.append(head);
  if (!series.length || times.length === 0) {
    box.append(el("p", { class: "muted chart-empty" }, "no data yet: the node samples its metrics every few seconds"));
    charts.delete(key);
    return box;
  }
  const main = document.getElementById("main").clientWidth || 1200;
  const width = Math.max(320, Math.min(600, (main - 40 - 14 * cols) / cols - 20));
  const opts = {
    width, height: 180,
    scales: { x: { time: true } },
    legend: { show: true, live: false },
    cursor: { drag: { x: false, y: false } },
    axes: [
      { stroke: "#64748b", grid: { stroke: "#eef2f7" }, ticks: { stroke: "#e2e8f0" } },
      { stroke: "#64748b", grid: { stroke: "#eef2f7" }, ticks: { stroke: "#e2e8f0" }, size: 78,
        values: (u, vals) => vals.map((v) => fmt(v, true)) },
    ],
    series: [
      { value: (u, v) => (v === null ? "–" : fmtDateTime(new Date(v * 1000))) },
      ...series.map((s, i) => ({
        label: s.label, stroke: s.color || colorOf(i), width: 1.6, dash: s.dash, spanGaps: false,
        points: { show: times.length < 3, size: 5 },
        value: (u, v) => fmt(v),
      })),
    ],
  };
  // uPlot needs a laid-out parent: it is appended now and moved later.
  document.body.append(box);
  const u = new uPlot(opts, data, box);
  box.remove();
  charts.set(key, { u, sig, box });
  return box;
}

// dropCharts forgets charts not in keep (a tab re-rendered without them).
export function dropCharts(prefix, keep) {
  for (const [k, c] of charts) {
    if (k.startsWith(prefix) && !keep.has(k)) {
      c.u.destroy();
      charts.delete(k);
    }
  }
}

// breakerTimeline draws one row per service: contiguous runs of the same
// breaker state as coloured segments over the history's time span.
export function breakerTimeline(times, services) {
  // Services without a breaker (the "unknown" bucket) have no timeline.
  const names = Object.keys(services).filter((n) => (services[n].breaker || []).some((s) => s)).sort();
  const box = el("div", { class: "timeline", "data-chart": "breakers" },
    el("div", { class: "chart-title" }, "Circuit breaker state over time"));
  if (times.length < 1 || !names.length) {
    box.append(el("p", { class: "muted" }, "no data yet"));
    return box;
  }
  const t0 = times[0], t1 = times[times.length - 1];
  const span = Math.max(t1 - t0, 1e-9);
  for (const name of names) {
    const states = services[name].breaker || [];
    const bar = el("div", { class: "tl-bar" });
    let i = 0;
    while (i < times.length) {
      let j = i;
      while (j + 1 < times.length && states[j + 1] === states[i]) j++;
      const from = times[i], to = j + 1 < times.length ? times[j + 1] : t1;
      const st = states[i] || "unknown";
      const seg = el("span", { class: "tl-seg " + st, title: `${st} from ${fmtDateTime(new Date(from * 1000))}` });
      seg.style.left = ((from - t0) / span) * 100 + "%";
      seg.style.width = (times.length === 1 ? 100 : Math.max(((to - from) / span) * 100, 0.5)) + "%";
      bar.append(seg);
      i = j + 1;
    }
    const now = states[states.length - 1] || "unknown";
    box.append(el("div", { class: "tl-row", "data-service": name },
      el("span", { class: "tl-name" }, name), bar, el("span", { class: "tl-now " + now }, now)));
  }
  box.append(el("div", { class: "tl-axis" }, el("span", {}, fmtDateTime(new Date(t0 * 1000))),
    el("span", {}, fmtDateTime(new Date(t1 * 1000)))),
  el("div", { class: "tl-legend" }, ["closed", "half-open", "open"].map((s) => el("span", { class: "tl-key " + s }, s))));
  return box;
}
