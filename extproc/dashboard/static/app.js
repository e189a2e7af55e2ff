// RouteIQ admin dashboard: read-only views of the admin port's JSON and SSE endpoints.
// No framework, no external asset; every value from the server is set with textContent.
// Credentials: when the admin port wants its token, the browser asked for it (HTTP Basic,
// token as password) before this page loaded, and sends it with every request below.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const COLORS = ["#2f6fb0", "#e08a2c", "#3c9a5f", "#b4464b", "#7a5aa6", "#8c6d46"];
const LIVE_ROWS = 60;
const REFRESH_MS = 3000;
const state = {rows: new Map()};

function $(id) { return document.getElementById(id); }

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

function svgEl(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = String(text);
  return node;
}

function usd(v) {
  if (v === null || v === undefined) return "-";
  return "$" + (Math.abs(v) < 1 ? v.toFixed(6) : v.toFixed(2));
}

function count(v) { return v === null || v === undefined ? "-" : Number(v).toLocaleString("en"); }

class AuthNeeded extends Error {}

async function api(path, options) {
  // location.origin, not a relative URL: a page opened as http://user:token@host/ would
  // resolve one to a URL with credentials, which fetch refuses; the browser's auth cache
  // supplies them instead.
  const url = window.location.origin + path;
  const response = await fetch(url, Object.assign({credentials: "same-origin"}, options || {}));
  if (response.status === 401) throw new AuthNeeded("token required: reload the page to sign in");
  return response;
}

function setStatus(text) { $("status").textContent = text; }

// -- charts ------------------------------------------------------------------------------

function hbars(target, items, fmt, series) {
  // items: [[label, value]] or, with series names, [[label, [v1, v2]]]
  target.replaceChildren();
  if (!items.length) { target.append(el("p", "(nothing yet)", "empty")); return; }
  const names = series || [null];
  const values = items.map(([, v]) => (Array.isArray(v) ? v : [v]));
  const top = Math.max(1e-12, ...values.flat());
  const row = 14 * names.length + 8, labelW = 150, width = 420, span = width - labelW - 90;
  const height = items.length * row + (series ? 18 : 0);
  const svg = svgEl("svg", {width, height, viewBox: `0 0 ${width} ${height}`, role: "img"});
  items.forEach(([label], i) => {
    const y = i * row;
    svg.append(svgEl("text", {x: labelW - 6, y: y + 12, "text-anchor": "end"}, String(label).slice(0, 24)));
    values[i].forEach((v, s) => {
      const w = Math.max(0, v) / top * span;
      const rect = svgEl("rect", {x: labelW, y: y + 2 + s * 14, width: w.toFixed(1), height: 12,
        fill: COLORS[s % COLORS.length]});
      rect.append(svgEl("title", {}, `${label}${names[s] ? " " + names[s] : ""}: ${fmt(v)}`));
      svg.append(rect, svgEl("text", {x: (labelW + w + 4).toFixed(1), y: y + 12 + s * 14}, fmt(v)));
    });
  });
  if (series) {
    series.forEach((name, s) => {
      svg.append(svgEl("rect", {x: labelW + s * 140, y: height - 11, width: 9, height: 9, fill: COLORS[s]}),
        svgEl("text", {x: labelW + s * 140 + 13, y: height - 3}, name));
    });
  }
  target.append(svg);
}

function entries(obj, limit) {
  return Object.entries(obj || {}).sort((a, b) => b[1] - a[1]).slice(0, limit || 12);
}

// -- summary -----------------------------------------------------------------------------

function renderCards(s) {
  const d = s.decisions, c = s.cost;
  $("c-decisions").textContent = count(d.total);
  $("c-routed").textContent = count((d.by_outcome.routed || 0) + (d.by_outcome.failed_open || 0));
  $("c-cached").textContent = count(d.by_outcome.cached || 0);
  $("c-denied").textContent = count(d.by_outcome.denied || 0);
  $("c-cost").textContent = usd(c.cost_usd);
  $("c-counterfactual").textContent = usd(c.counterfactual_usd);
  $("c-saved").textContent = usd(c.saved_usd);
}

function renderBudgets(budgets) {
  const box = $("budgets");
  box.replaceChildren();
  if (!budgets || !budgets.length) {
    box.append(el("p", budgets ? "(no budget charged recently)" : "(per worker: not shown here)", "empty"));
    return;
  }
  const table = el("table");
  const head = el("tr");
  for (const h of ["bucket", "requests left", "tokens left", ""]) head.append(el("th", h));
  table.append(head);
  for (const b of budgets) {
    const tr = el("tr");
    const left = (rem, cap) => (cap === null ? "unlimited" : `${count(rem)} / ${count(cap)}`);
    tr.append(el("td", b.id), el("td", left(b.requests_remaining, b.requests)),
      el("td", left(b.tokens_remaining, b.tokens)));
    const fractions = [[b.requests_remaining, b.requests], [b.tokens_remaining, b.tokens]]
      .filter(([, cap]) => cap).map(([rem, cap]) => rem / cap);
    const meter = el("span", null, "meter"), bar = el("i");
    const level = fractions.length ? Math.min(...fractions) : 1;
    bar.style.width = `${Math.round(level * 100)}%`;
    if (level < 0.2) bar.style.background = "#b4464b";
    meter.append(bar);
    const td = el("td");
    td.append(meter);
    tr.append(td);
    table.append(tr);
  }
  box.append(table);
}

function renderReloads(s) {
  const box = $("reloads");
  box.replaceChildren();
  const versions = Object.entries(s.config_versions || {});
  box.append(el("p", "serving: " + (versions.map(([v, n]) => (n > 1 ? `${v} (${n} processes)` : v)).join(", ") || "-")));
  box.append(el("p", `reloads: ${count(s.reloads.success || 0)} applied, ${count(s.reloads.failure || 0)} rejected`));
  const history = s.reload_history;
  if (!history) { box.append(el("p", "history: per worker, not kept by the supervisor", "empty")); return; }
  const table = el("table");
  for (const h of history.slice().reverse()) {
    const tr = el("tr");
    tr.append(el("td", h.time), el("td", h.event), el("td", h.version || "-"));
    table.append(tr);
  }
  box.append(table);
}

function renderOverhead(buckets) {
  let prev = 0;
  const items = buckets.map((b) => {
    const label = b.le === null ? `> ${prev * 1000} ms` : `≤ ${+(b.le * 1000).toPrecision(3)} ms`;
    prev = b.le === null ? prev : b.le;
    return [label, b.count];
  });
  // Only the span of buckets that hold something (plus one either side), in order.
  const used = items.map(([, n], i) => (n > 0 ? i : -1)).filter((i) => i >= 0);
  const lo = used.length ? Math.max(0, used[0] - 1) : 0;
  const hi = used.length ? Math.min(items.length, used[used.length - 1] + 2) : 0;
  hbars($("overhead"), items.slice(lo, hi), count);
}

function renderSummary(s) {
  $("version").textContent = Object.keys(s.config_versions || {}).join(", ") || "-";
  $("workers").textContent = s.workers ? `${Object.values(s.workers).filter((u) => u).length}/${Object.keys(s.workers).length} workers up` : "";
  renderCards(s);
  hbars($("mix-backend"), entries(s.decisions.by_backend), count);
  hbars($("mix-category"), entries(s.categories), count);
  const byBackend = Object.entries(s.cost.by_backend).map(([k, v]) => [k, [v.cost_usd, v.counterfactual_usd]]);
  hbars($("spend-backend"), byBackend, usd, ["spent", "at the reference"]);
  hbars($("spend-team"), Object.entries(s.cost.by_team).map(([k, v]) => [k, v.cost_usd]).sort((a, b) => b[1] - a[1]).slice(0, 12), usd);
  hbars($("denials"), entries(s.denials.by_rule), count);
  renderBudgets(s.budgets);
  renderOverhead(s.overhead.buckets);
  renderReloads(s);
}

async function refresh() {
  try {
    const r = await api("/dashboard/api/summary");
    if (r.ok) renderSummary(await r.json());
  } catch (e) {
    setStatus(e instanceof AuthNeeded ? e.message : "summary unavailable: " + e.message);
  }
}

// -- live stream: server-sent events read with fetch (reconnects itself, parses events) ----

function addDecision(d) {
  const tbody = $("live").tBodies[0];
  const tr = el("tr", null, d.outcome);
  tr.dataset.id = d.id;
  const team = d.caller ? d.caller.team : null;
  const why = d.rule_ids && d.rule_ids.length ? d.rule_ids.join(", ") : d.error_code;
  const cells = [String(d.time).slice(11, 23), d.outcome, team || "-", d.requested_model,
    d.backend || "-", d.tier || "-", d.category || "-", why || "", d.latency_ms, ""];
  for (const c of cells) tr.append(el("td", c));
  tbody.prepend(tr);
  state.rows.set(d.id, tr);
  while (tbody.rows.length > LIVE_ROWS) {
    const last = tbody.rows[tbody.rows.length - 1];
    state.rows.delete(last.dataset.id);
    last.remove();
  }
}

function addUsage(u) {
  const tr = state.rows.get(u.id);
  if (!tr || u.cost_usd === null || u.cost_usd === undefined) return;
  tr.cells[9].textContent = usd(u.cost_usd) + (u.estimated ? " (est.)" : "");
}

function dispatch(event, data) {
  let doc;
  try { doc = JSON.parse(data); } catch (e) { return; }
  if (event === "decision") addDecision(doc);
  else if (event === "usage") addUsage(doc);
  else if (event === "info") $("live-note").textContent = doc.message || "";
}

async function stream() {
  for (;;) {
    try {
      const r = await api("/dashboard/api/stream", {headers: {Accept: "text/event-stream"}});
      if (!r.ok || !r.body) throw new Error(`stream answered ${r.status}`);
      setStatus("live");
      const reader = r.body.getReader();
      const decoder = new TextDecoder();
      let buf = "";
      for (;;) {
        const {value, done} = await reader.read();
        if (done) break;
        buf += decoder.decode(value, {stream: true});
        let cut;
        while ((cut = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, cut);
          buf = buf.slice(cut + 2);
          let event = "message";
          const data = [];
          for (const line of block.split("\n")) {
            if (line.startsWith("event:")) event = line.slice(6).trim();
            else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
          }
          if (data.length) dispatch(event, data.join("\n"));
        }
      }
      setStatus("stream closed; reconnecting");
    } catch (e) {
      setStatus(e instanceof AuthNeeded ? e.message : "stream error; reconnecting");
      if (e instanceof AuthNeeded) return;
    }
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}

// -- explain playground ------------------------------------------------------------------

async function explain(event) {
  event.preventDefault();
  const summary = $("ex-summary"), out = $("ex-json");
  let envelope;
  try {
    envelope = {path: $("ex-path").value, headers: JSON.parse($("ex-headers").value || "{}"),
      body: JSON.parse($("ex-body").value)};
  } catch (e) {
    summary.textContent = "Not valid JSON: " + e.message;
    return;
  }
  summary.textContent = "…";
  try {
    const r = await api("/dashboard/api/explain", {method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify(envelope)});
    const doc = await r.json();
    out.textContent = JSON.stringify(doc, null, 2);
    const d = doc.decision;
    if (d) {
      summary.dataset.outcome = d.outcome;
      summary.dataset.backend = d.backend || "";
      summary.textContent = `${d.outcome}` + (d.backend ? ` → ${d.backend} (${d.upstream_model}, tier ${d.tier})` : "") +
        (d.category ? `, category ${d.category}` : "") + (d.error ? `: ${d.error.status} ${d.error.code || d.error.type}` : "");
    } else {
      summary.dataset.outcome = "error";
      summary.textContent = doc.error ? `${r.status}: ${doc.error.message}` : `HTTP ${r.status}`;
    }
  } catch (e) {
    summary.textContent = e instanceof AuthNeeded ? e.message : "explain failed: " + e.message;
  }
}

function start() {
  $("explain-form").addEventListener("submit", explain);
  refresh();
  setInterval(refresh, REFRESH_MS);
  stream();
}

document.addEventListener("DOMContentLoaded", start);
