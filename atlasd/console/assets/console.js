// The atlasd console: polls this node's JSON API (/v1/status, /v1/tables) and draws it.
// Every text from the cluster goes in through textContent, never as HTML (table names are
// anybody's bytes). Rates and percentiles come from two successive samples of each node's
// cumulative counters, as a Prometheus rate() would.
"use strict";

const POLL_MS = 2000;
const HISTORY = 150;  // samples kept per node: 5 minutes at one per 2 s
const COLORS = ["#2f5d9b", "#c0392b", "#2e8b57", "#d08b00", "#8e44ad", "#16a085", "#7f8c8d",
                "#d35400", "#2c3e50", "#e84393"];

const state = {
  previous: new Map(),  // node id -> its last sample {t, load}
  history: new Map(),   // node id -> [{t, ops, errors, p99}]
  bounds: [],
  selected: null,       // the table whose detail is shown
  errors: 0,
};

// Page errors are counted where a test (or a curious operator) can read them.
function noteError(message) {
  state.errors += 1;
  document.body.dataset.errors = String(state.errors);
  const p = document.getElementById("problem");
  p.textContent = message;
  p.hidden = false;
}
window.addEventListener("error", (e) => noteError(String(e.message)));
document.addEventListener("securitypolicyviolation", (e) => noteError("blocked " + e.blockedURI));

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k === "style") {  // through the CSSOM: the page's policy refuses style attributes
      for (const [prop, value] of Object.entries(v)) node.style.setProperty(prop, value);
    }
    else if (k.startsWith("data-")) node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function replace(id, ...children) {
  const node = document.getElementById(id);
  node.replaceChildren(...children);
  return node;
}

function fmtMs(ms) {
  if (ms === null || ms === undefined || !isFinite(ms)) return "–";
  return ms < 10 ? ms.toFixed(2) : ms.toFixed(1);
}

function fmtAge(ms) {
  const s = Math.round(ms / 1000);
  if (s < 120) return s + " s";
  if (s < 7200) return Math.round(s / 60) + " min";
  if (s < 172800) return Math.round(s / 3600) + " h";
  return Math.round(s / 86400) + " days";
}

function colorOf(id) { return COLORS[(id - 1) % COLORS.length]; }

async function getJson(path) {
  const r = await fetch(path, { cache: "no-store" });
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || (path + ": HTTP " + r.status));
  return body;
}

// The q-quantile (0..1) of a histogram of counts per bucket, interpolated within its bucket.
function quantile(counts, bounds, q) {
  const total = counts.reduce((a, b) => a + b, 0);
  if (total === 0) return null;
  let seen = 0;
  for (let i = 0; i < counts.length; i++) {
    if (seen + counts[i] >= q * total && counts[i] > 0) {
      const lo = i === 0 ? 0 : bounds[i - 1];
      const hi = i < bounds.length ? bounds[i] : bounds[bounds.length - 1];
      return 1000 * (lo + (hi - lo) * ((q * total - seen) / counts[i]));
    }
    seen += counts[i];
  }
  return 1000 * bounds[bounds.length - 1];
}

// Turns each node's cumulative load into the rates of the interval between two of its reports
// (timed by the node itself: a peer's report is as recent as its last ping answer).
function sample(status) {
  for (const n of status.nodes) {
    if (!n.load) continue;
    const t = n.load.wall_ms;
    const prev = state.previous.get(n.id);
    if (prev && t === prev.t) continue;
    state.previous.set(n.id, { t, load: n.load });
    if (!prev || t < prev.t || n.load.commands < prev.load.commands) continue;
    const dt = (t - prev.t) / 1000;
    const delta = n.load.latency_buckets.map((c, i) => c - prev.load.latency_buckets[i]);
    const point = {
      t,
      ops: (n.load.commands - prev.load.commands) / dt,
      errors: (n.load.errors - prev.load.errors) / dt,
      p50: quantile(delta, state.bounds, 0.5),
      p99: quantile(delta, state.bounds, 0.99),
    };
    const h = state.history.get(n.id) || [];
    h.push(point);
    if (h.length > HISTORY) h.shift();
    state.history.set(n.id, h);
  }
}

function drawZones(status) {
  const q = status.quorum;
  const parts = ["Fn=" + q.fn, "Fz=" + q.fz];
  if (q.zones) {
    parts.push("phase 1 (steal): " + q.q1_zones + " of " + q.zones.length + " zones",
               "phase 2 (accept): " + q.q2_zones + " zone" + (q.q2_zones > 1 ? "s" : ""));
  }
  replace("quorum", parts.join(" · "));
  const byRegion = new Map();
  for (const n of status.nodes) {
    if (!byRegion.has(n.region)) byRegion.set(n.region, []);
    byRegion.get(n.region).push(n);
  }
  const cards = [];
  for (const [region, members] of byRegion) {
    const z = (q.zones || []).find((x) => x.region === region);
    const sizes = z ? "Q1 " + z.q1 + " · Q2 " + z.q2 + " of " + z.members : "";
    cards.push(el("div", { class: "zone", "data-region": region },
      el("h3", {}, region, " ", el("span", { class: "muted" }, sizes)),
      ...members.map((n) => el("div", { class: "member", "data-node": n.id },
        el("span", { class: "dot " + n.status, title: n.status }),
        el("strong", {}, "node " + n.id), n.self ? el("span", { class: "muted" }, "(this)") : null,
        el("span", { class: "muted" }, n.learner ? n.status + " · learner" : n.status),
        n.reported ? el("span", { class: "muted" }, n.owned_tables + " owned") : null))));
  }
  replace("zones", ...cards);
}

// Green under 1 ms, through yellow, to red at 250 ms and above (log scale).
function heat(ms) {
  const x = Math.max(0, Math.min(1, Math.log10(Math.max(ms, 0.1) / 0.1) / Math.log10(2500)));
  return "hsl(" + Math.round(120 * (1 - x)) + ", 65%, 50%, 0.35)";
}

function drawRtt(status) {
  const nodes = status.nodes.filter((n) => n.status !== "LEFT");
  const head = el("tr", {}, el("th", {}, "from \\ to"),
    ...nodes.map((n) => el("th", {}, n.id + " " + n.region)));
  const rows = nodes.map((from) => el("tr", { "data-from": from.id },
    el("th", {}, from.id + " " + from.region),
    ...nodes.map((to) => {
      if (from.id === to.id) return el("td", { class: "self", "data-to": to.id }, "·");
      const ms = from.rtts_ms ? from.rtts_ms[String(to.id)] : undefined;
      const cell = el("td", { "data-to": to.id }, ms === undefined ? "–" : fmtMs(ms));
      if (ms !== undefined) cell.style.background = heat(ms);
      return cell;
    })));
  replace("rtt", head, ...rows);
}

function drawNodes(status) {
  const head = el("tr", {}, ...["node", "region", "status", "version", "up", "owned",
    "cmd/s", "p50 ms", "p99 ms", "err/s", "clock", "cert expires"].map((h) => el("th", {}, h)));
  const rows = status.nodes.map((n) => {
    const h = state.history.get(n.id) || [];
    const last = h.length ? h[h.length - 1] : null;
    const certLeft = n.cert_expires_ms ? n.cert_expires_ms - status.time_ms : null;
    return el("tr", { "data-node": n.id },
      el("td", {}, el("span", { class: "dot", style: { background: colorOf(n.id) } }), " ", n.id,
         n.self ? " (this)" : ""),
      el("td", {}, n.region), el("td", {}, el("span", { class: "dot " + n.status }), " ", n.status,
         n.learner ? " (learner)" : ""),
      el("td", {}, n.version || "–"),
      el("td", {}, n.reported ? fmtAge(n.uptime_s * 1000) : "–"),
      el("td", { class: "num" }, n.reported ? n.owned_tables : "–"),
      el("td", { class: "num" }, last ? last.ops.toFixed(1) : "–"),
      el("td", { class: "num" }, last ? fmtMs(last.p50) : "–"),
      el("td", { class: "num" }, last ? fmtMs(last.p99) : "–"),
      el("td", { class: "num" }, last ? last.errors.toFixed(1) : "–"),
      el("td", {}, n.clock ? n.clock + " (" + fmtMs(n.clock_offset_ms) + " ms)" : "–"),
      el("td", { class: certLeft !== null && certLeft < 7 * 86400000 ? "problem" : "" },
         certLeft === null ? "–" : (certLeft < 0 ? "EXPIRED" : "in " + fmtAge(certLeft))));
  });
  replace("nodes", head, ...rows);
  replace("legend", ...status.nodes.map((n) =>
    el("span", { style: { "--c": colorOf(n.id) } }, "node " + n.id)));
}

// A line per node over the last HISTORY samples; the y axis from 0 to the largest value.
function drawChart(id, field) {
  const canvas = document.getElementById(id);
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, pad = 28;
  ctx.clearRect(0, 0, w, h);
  let max = 0, t0 = Infinity, t1 = -Infinity;
  for (const points of state.history.values()) {
    for (const p of points) {
      if (p[field] !== null) max = Math.max(max, p[field]);
      t0 = Math.min(t0, p.t);
      t1 = Math.max(t1, p.t);
    }
  }
  const style = getComputedStyle(document.body);
  ctx.fillStyle = style.color;
  ctx.font = "11px sans-serif";
  ctx.fillText(max ? (max < 10 ? max.toFixed(2) : max.toFixed(0)) : "0", 2, 12);
  ctx.fillText("0", 2, h - 4);
  if (!(t1 > t0)) return;
  const x = (t) => pad + (w - pad - 4) * (t - t0) / (t1 - t0);
  const y = (v) => h - 8 - (h - 20) * (max ? v / max : 0);
  for (const [node, points] of state.history) {
    ctx.strokeStyle = colorOf(node);
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    let started = false;
    for (const p of points) {
      if (p[field] === null) { started = false; continue; }
      if (started) ctx.lineTo(x(p.t), y(p[field])); else ctx.moveTo(x(p.t), y(p[field]));
      started = true;
    }
    ctx.stroke();
  }
}

function drawMoves(status) {
  const rows = status.moves.slice(0, 20).map((m) => el("tr", { "data-table": m.table },
    el("td", {}, new Date(m.wall_ms).toLocaleTimeString()), el("td", {}, m.table),
    el("td", {}, "node " + m.owner + " (" + m.region + ")"), el("td", {}, m.ballot)));
  replace("moves", el("tr", {}, ...["when", "table", "new owner", "ballot"].map(
    (h) => el("th", {}, h))), ...rows);
  // Bars: moves per 10 s over the last 5 minutes.
  const canvas = document.getElementById("chart-moves");
  const ctx = canvas.getContext("2d");
  const buckets = new Array(30).fill(0);
  for (const m of status.moves) {
    const age = status.time_ms - m.wall_ms;
    if (age >= 0 && age < 300000) buckets[29 - Math.floor(age / 10000)] += 1;
  }
  const max = Math.max(1, ...buckets), w = canvas.width / buckets.length, h = canvas.height;
  ctx.clearRect(0, 0, canvas.width, h);
  ctx.fillStyle = getComputedStyle(document.body).color;
  ctx.font = "11px sans-serif";
  ctx.fillText(String(max), 2, 12);
  ctx.fillStyle = "#2f5d9b";
  buckets.forEach((n, i) => {
    const bh = (h - 16) * n / max;
    ctx.fillRect(i * w + 2, h - bh, w - 4, bh);
  });
}

function drawTables(tables) {
  const regions = Object.entries(tables.by_region).map(([r, n]) => r + ": " + n).join(" · ");
  replace("table-counts", tables.tables + " tables; owners by region: " + (regions || "–"));
  const head = el("tr", {}, ...["table", "owner", "region", "ballot", "writes"].map(
    (h, i) => el("th", { class: i === 4 ? "num" : "" }, h)));
  const rows = tables.busiest.map((t) => {
    const row = el("tr", { class: "clickable", "data-table": t.table, "data-owner": t.owner },
      el("td", {}, t.table), el("td", {}, t.owner ? "node " + t.owner : "–"),
      el("td", {}, t.region || "–"), el("td", {}, t.ballot),
      el("td", { class: "num" }, t.commit_index));
    row.addEventListener("click", () => { state.selected = t.table; refreshDetail(); });
    return row;
  });
  replace("busiest", head, ...rows);
}

async function refreshDetail() {
  if (!state.selected) return;
  const box = document.getElementById("table-detail");
  box.hidden = false;
  try {
    const t = await getJson("/v1/tables/" + encodeURIComponent(state.selected));
    const item = (k, v) => [el("dt", {}, k), el("dd", {}, v)];
    const history = (t.moves || []).map((m) => new Date(m.wall_ms).toLocaleTimeString() +
      " node " + m.owner + " (" + m.region + ")").join(", ");
    box.replaceChildren(el("h3", {}, t.table), el("dl", { "data-table": t.table },
      ...item("owner", t.owner ? "node " + t.owner + " (" + t.region + ")" : "unknown"),
      ...item("ballot", t.ballot), ...item("revision", t.revision),
      ...item("rows", t.rows + (t.rows_more ? "+" : "")),
      ...item("log entries committed", t.commit_index),
      ...item("group", t.group), ...item("pinned to", t.pinned),
      ...item("Q1 (steal)", t.q1 ? t.q1.join(", ") : t.quorum_error || "–"),
      ...item("Q2 (accept)", t.q2 ? t.q2.join(", ") : "–"),
      ...item("owner history", history || "no move in the nodes' recent wins")));
  } catch (e) {
    box.replaceChildren(el("p", { class: "problem" }, state.selected + ": " + e.message));
  }
}

async function refresh() {
  try {
    const [status, tables] = await Promise.all([getJson("/v1/status"),
                                                getJson("/v1/tables?limit=15")]);
    state.bounds = status.latency_bounds_s;
    sample(status);
    replace("cluster", "cluster " + status.cluster_id + " · node " + status.node + " (" +
            status.region + ") · " + status.version);
    drawZones(status);
    drawRtt(status);
    drawNodes(status);
    drawChart("chart-ops", "ops");
    drawChart("chart-p99", "p99");
    drawChart("chart-errors", "errors");
    drawMoves(status);
    drawTables(tables);
    await refreshDetail();
    replace("updated", "updated " + new Date().toLocaleTimeString());
    document.body.dataset.polls = String(Number(document.body.dataset.polls || 0) + 1);
  } catch (e) {
    replace("updated", "not updated: " + e.message);
  }
}

document.getElementById("table-lookup").addEventListener("submit", (e) => {
  e.preventDefault();
  state.selected = document.getElementById("table-name").value.trim() || null;
  refreshDetail();
});
refresh();
setInterval(refresh, POLL_MS);
