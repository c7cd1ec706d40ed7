// The trace waterfall: spans nested under their parents, placed with the
// API's nanosecond start times (µs-accurate), errors marked, and a detail
// panel with attributes, events, links, resource and scope on click.

import { el, table, fmtNs, fmtDateTime, nsOf, badge } from "./util.js";

// layout orders a trace's spans depth-first, children by start time, and
// gives each its offset from the trace's first start (ns) and its depth.
// Spans whose parent is not in the trace are roots.
export function layout(spans) {
  const rows = spans.map((s) => ({ s, startNs: nsOf(s.start), durNs: Math.round(s.durationMs * 1e6) }));
  if (!rows.length) return { rows: [], totalNs: 0, t0: 0n };
  const t0 = rows.reduce((m, r) => (r.startNs < m ? r.startNs : m), rows[0].startNs);
  const byId = new Map(rows.map((r) => [r.s.spanId, r]));
  const kids = new Map();
  const roots = [];
  for (const r of rows) {
    r.offNs = Number(r.startNs - t0);
    const p = r.s.parentSpanId && byId.get(r.s.parentSpanId);
    if (p && p !== r) {
      if (!kids.has(p.s.spanId)) kids.set(p.s.spanId, []);
      kids.get(p.s.spanId).push(r);
    } else roots.push(r);
  }
  const order = (a, b) => a.offNs - b.offNs || a.s.name.localeCompare(b.s.name);
  const out = [];
  const seen = new Set();
  const visit = (r, depth) => {
    if (seen.has(r)) return; // a cycle in bad data
    seen.add(r);
    r.depth = depth;
    out.push(r);
    for (const c of (kids.get(r.s.spanId) || []).sort(order)) visit(c, depth + 1);
  };
  roots.sort(order).forEach((r) => visit(r, 0));
  const totalNs = Math.max(...out.map((r) => r.offNs + r.durNs), 1);
  return { rows: out, totalNs, t0 };
}

function attrTable(attrs) {
  const keys = Object.keys(attrs || {}).sort();
  return table(["key", "value"], keys.map((k) => [el("span", { class: "mono" }, k),
    el("span", { class: "mono" }, typeof attrs[k] === "string" ? attrs[k] : JSON.stringify(attrs[k]))]), { class: "attrs" });
}

function details(r) {
  const s = r.s;
  const box = el("div", { class: "span-details", "data-span-id": s.spanId },
    el("h3", {}, s.name, " ", s.status === "error" ? badge("error", "error") : null),
    el("dl", {},
      el("dt", {}, "service"), el("dd", {}, s.service),
      el("dt", {}, "kind"), el("dd", {}, s.kind || "internal"),
      el("dt", {}, "status"), el("dd", {}, s.status + (s.statusMessage ? ": " + s.statusMessage : "")),
      el("dt", {}, "start"), el("dd", {}, `${fmtDateTime(s.start)} (+${fmtNs(r.offNs)} into the trace)`),
      el("dt", {}, "duration"), el("dd", {}, fmtNs(r.durNs)),
      el("dt", {}, "span id"), el("dd", { class: "mono" }, s.spanId),
      el("dt", {}, "parent"), el("dd", { class: "mono" }, s.parentSpanId || "(root)"),
      s.scope ? [el("dt", {}, "scope"), el("dd", { class: "mono" }, s.scope.name + (s.scope.version ? " " + s.scope.version : ""))] : null));
  box.append(el("h4", {}, "Attributes"), attrTable(s.attributes));
  if (s.events && s.events.length) {
    box.append(el("h4", {}, "Events"), table(["at", "name", "attributes"], s.events.map((e) => [
      "+" + fmtNs(Number(nsOf(e.time) - r.startNs)), e.name,
      el("span", { class: "mono" }, Object.entries(e.attributes || {}).map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`).join("  "))])));
  }
  if (s.links && s.links.length) {
    box.append(el("h4", {}, "Links"), table(["trace", "span"], s.links.map((l) => [
      el("a", { href: "#tab=traces&trace=" + l.traceId, class: "mono" }, l.traceId), el("span", { class: "mono" }, l.spanId)])));
  }
  if (s.resource) box.append(el("h4", {}, "Resource"), attrTable(s.resource));
  return box;
}

// renderWaterfall returns the trace view.
// back is the link to the trace list the user came from.
export function renderWaterfall(tr, back = "#tab=traces") {
  const { rows, totalNs } = layout(tr.spans || []);
  const sum = tr.summary || {};
  const detailBox = el("div", { class: "detail-slot" }, el("p", { class: "muted" }, "Click a span for its attributes and events."));
  const ticks = el("div", { class: "wf-axis" }, [0, 0.25, 0.5, 0.75, 1].map((f) => {
    const t = el("span", {}, fmtNs(totalNs * f));
    t.style.left = f * 100 + "%";
    return t;
  }));
  const list = el("div", { class: "waterfall" }, el("div", { class: "wf-row wf-head" }, el("div", { class: "wf-name" }, "span"), ticks));
  for (const r of rows) {
    const s = r.s;
    const bar = el("span", { class: "wf-bar " + (s.kind || "internal") + (s.status === "error" ? " err" : "") });
    bar.style.left = (r.offNs / totalNs) * 100 + "%";
    bar.style.width = Math.max((r.durNs / totalNs) * 100, 0.15) + "%";
    const label = el("span", { class: "wf-dur" }, fmtNs(r.durNs));
    label.style.left = Math.min(((r.offNs + r.durNs) / totalNs) * 100, 100) + "%";
    const name = el("div", { class: "wf-name", title: s.name },
      el("span", { class: "wf-indent" }, "\u00a0".repeat(r.depth * 3)),
      s.status === "error" ? el("span", { class: "wf-err", title: s.statusMessage || "error" }, "⚠ ") : null,
      el("span", { class: "wf-svc" }, s.service), " ", s.name);
    const row = el("div", {
      class: "wf-row" + (s.status === "error" ? " error" : ""), "data-span-id": s.spanId, "data-depth": String(r.depth),
      "data-offset-ns": String(r.offNs), "data-duration-ns": String(r.durNs), tabindex: "0",
      onclick: () => {
        for (const x of list.querySelectorAll(".wf-row.selected")) x.classList.remove("selected");
        row.classList.add("selected");
        detailBox.replaceChildren(details(r));
      },
    }, name, el("div", { class: "wf-track" }, bar, label));
    list.append(row);
  }
  return el("div", { class: "trace-view" },
    el("div", { class: "trace-head" },
      el("a", { href: back, class: "act" }, "← traces"),
      el("h2", {}, `${sum.rootService || ""} ${sum.rootOperation || ""}`),
      el("span", { class: "mono muted" }, tr.traceId)),
    el("p", { class: "muted" }, `${fmtDateTime(sum.start)} · ${fmtNs(totalNs)} · ${rows.length} spans · `,
      `${(sum.services || []).join(", ")}`, sum.errors ? [" · ", badge("error", `${sum.errors} error${sum.errors > 1 ? "s" : ""}`)] : null),
    list, detailBox);
}
