// Overview: nodes, shards and replicas, journal partitions, replica lag, HLC, and the gateway's
// metrics (searches by consistency level with latency), from GET /v1/cluster/overview.

import { api } from "./api.js";
import { age, badge, bytes, clear, h, int, ms, notice, pct, section, table } from "./dom.js";

const REFRESH_MS = 3000;

function stat(label, value, kind = "") {
  return h("div", { class: `stat ${kind}` }, h("strong", {}, value), h("span", {}, label));
}

function stateBadge(state) {
  return badge(state, state === "up" ? "ok" : "bad");
}

function summary(o) {
  const c = o.cluster;
  const storage = o.nodes.filter((n) => n.role === "storage").length;
  // A storage node hosts several shard replicas: count the replicas the journal knows apart.
  const replicas = new Set(o.replicas.map((r) => r.replica_id)).size;
  const lagging = o.replicas.filter((r) => r.lagging || !r.live).length
    + o.query_caches.filter((q) => q.lag_ops > 0).length;
  return h("div", { class: "stats", "data-testid": "summary" },
    stat("nodes up", c.available ? `${c.nodes_up}` : "—", c.nodes_down ? "warn" : ""),
    stat("nodes down", c.available ? `${c.nodes_down}` : "—", c.nodes_down ? "bad" : ""),
    stat("shards", c.available ? `${o.shards.length}` : "—"),
    stat("storage nodes", c.available ? `${storage}` : "—"),
    stat("storage replicas", `${replicas}`),
    stat("journal partitions", `${o.partitions.length}`),
    stat("collections", `${o.collections.length}`),
    stat("replicas behind", c.available ? `${lagging}` : "—", lagging ? "warn" : ""),
    stat("back-pressure", c.back_pressure ? "on" : "off", c.back_pressure ? "bad" : ""));
}

function nodes(o) {
  return table([
    { label: "node", value: (n) => h("code", {}, n.node_id) },
    { label: "role", value: (n) => n.role },
    { label: "shards", value: (n) => (n.shards.length ? n.shards.join(", ") : "—") },
    { label: "replica", value: (n) => (n.replica === null ? "—" : n.replica) },
    { label: "state", value: (n) => stateBadge(n.state) },
    { label: "gRPC", value: (n) => h("code", {}, n.address) },
    { label: "HTTP", value: (n) => (n.http_address ? h("code", {}, n.http_address) : "—") },
    { label: "heartbeat", value: (n) => age(n.heartbeat_age_ms) },
  ], o.nodes, { empty: "no node registered with the meta manager", testid: "nodes" });
}

function progress(r) {
  return r.partitions.map((p) => `${p.partition} @${int(p.applied_offset)}/${int(p.head_offset)} · ${ms(p.staleness_ms)} stale`).join("; ");
}

function member(r) {
  const text = progress(r);
  return h("div", { class: "replica" }, h("code", {}, r.node_id), " ", stateBadge(r.state),
    r.ready === false ? badge("not ready", "warn") : null, r.error ? badge("unreachable", "bad") : null,
    text ? h("small", {}, text) : null);
}

function shards(o) {
  return table([
    { label: "shard", value: (s) => h("strong", {}, s.shard) },
    { label: "storage replicas (applied/head, staleness)", value: (s) => s.storage.map(member) },
    { label: "query processors (applied/head, staleness)", value: (s) => s.query.map(member) },
  ], o.shards, { empty: "no shard known", testid: "shards" });
}

function partitions(o) {
  return table([
    { label: "partition", value: (p) => h("code", {}, p.partition) },
    { label: "head offset", value: (p) => int(p.head_offset), cls: "num" },
    { label: "head HLC", value: (p) => p.head_hlc_text || "—" },
    { label: "last write", value: (p) => age(p.head_age_ms) },
    { label: "HLC ahead of gateway clock", value: (p) => (p.hlc_ahead_ms ? badge(ms(p.hlc_ahead_ms), "warn") : p.head_hlc_text ? "0 ms" : "—"), cls: "num" },
    { label: "bytes", value: (p) => bytes(p.bytes), cls: "num" },
    { label: "segments", value: (p) => int(p.segments), cls: "num" },
  ], o.partitions, { empty: "no partition read", testid: "partitions" });
}

function replicas(o) {
  return table([
    { label: "storage replica", value: (r) => h("code", {}, r.replica_id) },
    { label: "partition", value: (r) => r.partition },
    { label: "shards", value: (r) => r.shards.join(", ") },
    { label: "applied", value: (r) => int(r.applied_offset), cls: "num" },
    { label: "lag (ops)", value: (r) => int(r.lag_ops), cls: "num" },
    { label: "lag (time)", value: (r) => ms(r.lag_ms), cls: "num" },
    { label: "lag (bytes)", value: (r) => bytes(r.lag_bytes), cls: "num" },
    { label: "HLC behind head", value: (r) => ms(r.hlc_behind_head_ms), cls: "num" },
    { label: "state", value: (r) => [r.live ? badge("live", "ok") : badge("down", "bad"), r.lagging ? badge("lagging", "warn") : null] },
  ], o.replicas, { empty: "the journal reports no storage replica", testid: "replicas" });
}

function caches(o) {
  return table([
    { label: "query processor", value: (q) => h("code", {}, q.node_id) },
    { label: "shards", value: (q) => q.shards.join(", ") },
    { label: "partition", value: (q) => q.partition || "—" },
    { label: "applied", value: (q) => int(q.applied_offset), cls: "num" },
    { label: "lag (ops)", value: (q) => int(q.lag_ops), cls: "num" },
    { label: "staleness", value: (q) => ms(q.staleness_ms), cls: "num" },
    { label: "cache hits", value: (q) => int(q.cache_hits), cls: "num" },
    { label: "pull-before-read syncs", value: (q) => int(q.sync_pulls), cls: "num" },
    { label: "", value: (q) => (q.error ? badge("unreachable", "bad") : null) },
  ], o.query_caches, { empty: "no query processor registered", testid: "caches" });
}

function latency(rows, label, empty, testid) {
  return table([
    { label, value: (r) => h("strong", {}, r[label]) },
    { label: "count", value: (r) => int(r.count), cls: "num" },
    { label: "share", value: (r) => h("div", { class: "bar" }, h("i", { style: `width:${(r.share * 100).toFixed(1)}%` }), pct(r.share)) },
    { label: "mean", value: (r) => ms(r.mean_ms), cls: "num" },
    { label: "p50", value: (r) => ms(r.p50_ms), cls: "num" },
    { label: "p95", value: (r) => ms(r.p95_ms), cls: "num" },
    { label: "p99", value: (r) => ms(r.p99_ms), cls: "num" },
  ], rows, { empty, testid });
}

function metrics(o) {
  const m = o.metrics;
  const status = Object.entries(m.http_requests).map(([k, v]) => `${k}: ${int(v)}`).join(" · ") || "none";
  const failures = Object.entries(m.shard_failures).map(([k, v]) => `${k}: ${int(v)}`).join(" · ") || "none";
  return [
    section(`Consistency levels (${int(m.searches.total)} searches since the gateway started)`,
      latency(m.searches.rows, "level", "no search yet", "levels")),
    section(`Writes (${int(m.writes.total)} journal appends)`, latency(m.writes.rows, "kind", "no write yet", "writes"),
      h("p", { class: "muted" }, `HTTP answers: ${status}. Failed shard searches: ${failures}.`)),
  ];
}

function draw(root, o, controls) {
  const c = o.cluster;
  const problems = [];
  if (!c.available) problems.push(notice("warn", `Cluster view not available: ${c.reason}`));
  for (const e of c.errors) problems.push(notice("error", e));
  if (c.back_pressure) problems.push(notice("error", `Journal back-pressure: ${c.back_pressure_reason || "new writes are refused"}`));
  clear(root,
    h("div", { class: "viewhead" }, h("h1", {}, "Cluster overview"), controls),
    ...problems,
    summary(o),
    c.available ? section("Nodes", nodes(o)) : null,
    c.available ? section("Shards and replicas", shards(o)) : null,
    section("Journal partitions", partitions(o)),
    c.available ? section("Storage replica lag (as the journal measures it)", replicas(o)) : null,
    c.available ? section("Query processor caches (as each processor reports it)", caches(o)) : null,
    ...metrics(o));
}

export async function render(root) {
  const updated = h("span", { class: "muted", "data-testid": "updated" });
  const auto = h("input", { type: "checkbox", checked: true });
  const refresh = h("button", { type: "button" }, "Refresh");
  const controls = h("div", { class: "controls" }, updated, h("label", {}, auto, " auto-refresh"), refresh);
  let timer = null;
  let stopped = false;

  async function load() {
    const { data } = await api("/v1/cluster/overview");
    if (stopped) return;
    updated.textContent = `updated ${new Date(data.generated_at_ms).toLocaleTimeString()}`;
    draw(root, data, controls);
  }

  function schedule() {
    clearTimeout(timer);
    if (auto.checked && !stopped) {
      timer = setTimeout(() => load().catch(showError).finally(schedule), REFRESH_MS);
    }
  }

  function showError(err) {
    if (!stopped) clear(root, h("div", { class: "viewhead" }, h("h1", {}, "Cluster overview"), controls), notice("error", err.message));
  }

  refresh.addEventListener("click", () => load().catch(showError));
  auto.addEventListener("change", schedule);
  await load();
  schedule();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
