// Collections: schemas and record counts, create, drop.

import { api, enc } from "./api.js";
import { action, clear, field, h, int, notice, pre, section, select, table } from "./dom.js";

function num(name, placeholder, attrs = {}) {
  return h("input", { name, type: "number", min: 1, placeholder, ...attrs });
}

function createForm(out, reload) {
  const name = h("input", { name: "name", required: true, placeholder: "docs", spellcheck: "false" });
  const dim = num("dim", "768", { required: true });
  const metric = select(["cosine", "l2", "ip"], "cosine");
  metric.name = "metric";
  const shards = num("shards", "all");
  const replicas = num("replicas", "default");
  const m = num("m", "16");
  const efc = num("ef_construction", "200");
  const efs = num("ef_search", "64");
  const submit = h("button", { type: "submit", class: "primary" }, "Create collection");
  const form = h("form", { class: "form-grid", "data-testid": "create-collection" },
    field("name", name), field("dim", dim), field("metric", metric), field("shards", shards),
    field("replicas", replicas), field("HNSW m", m), field("ef_construction", efc), field("ef_search", efs),
    h("div", { class: "actions" }, submit));
  action(submit, out, async () => {
    if (!form.reportValidity()) return;
    const body = { name: name.value.trim(), dim: Number(dim.value), metric: metric.value };
    if (shards.value) body.shards = Number(shards.value);
    if (replicas.value) body.replicas = Number(replicas.value);
    const hnsw = {};
    if (m.value) hnsw.m = Number(m.value);
    if (efc.value) hnsw.ef_construction = Number(efc.value);
    if (efs.value) hnsw.ef_search = Number(efs.value);
    if (Object.keys(hnsw).length) body.hnsw = hnsw;
    const { data } = await api("/v1/collections", { method: "POST", body });
    form.reset();
    await reload();
    clear(out, notice("ok", `Created collection ${data.name} (DDL at system offset ${data.ddl_offset}).`));
  });
  return form;
}

function dropButton(c, out, reload) {
  const drop = h("button", { type: "button", class: "danger" }, "Drop");
  const cell = h("span", { class: "confirm" }, drop);
  drop.addEventListener("click", () => {
    const yes = h("button", { type: "button", class: "danger" }, `Confirm drop of ${c.name}`);
    const no = h("button", { type: "button" }, "Cancel");
    no.addEventListener("click", () => clear(cell, drop));
    action(yes, out, async () => {
      await api(`/v1/collections/${enc(c.name)}`, { method: "DELETE" });
      await reload();
      clear(out, notice("ok", `Dropped collection ${c.name}.`));
    });
    clear(cell, yes, " ", no);
  });
  return cell;
}

async function showSchema(name, detail) {
  const { data } = await api(`/v1/collections/${enc(name)}`);
  clear(detail, section(`Schema of ${name}`, pre(data)));
  detail.scrollIntoView({ block: "nearest" });
}

export async function render(root, params, { go }) {
  const out = h("div", { class: "messages" });
  const list = h("div");
  const detail = h("div", { "data-testid": "schema" });

  async function reload() {
    const [{ data }, overview] = await Promise.all([
      api("/v1/collections"), api("/v1/cluster/overview").catch(() => null)]);
    const counts = new Map((overview ? overview.data.collections : []).map((c) => [c.name, c]));
    const rows = data.collections.map((c) => ({ ...c, counted: counts.get(c.name) }));
    clear(list, table([
      { label: "name", value: (c) => h("a", { href: "#", onclick: (e) => { e.preventDefault(); showSchema(c.name, detail).catch((err) => clear(out, notice("error", err.message))); } }, c.name) },
      { label: "dim", value: (c) => c.dim, cls: "num" },
      { label: "metric", value: (c) => c.metric },
      { label: "shards", value: (c) => c.shards, cls: "num" },
      { label: "replicas", value: (c) => c.replicas, cls: "num" },
      { label: "records", value: (c) => (c.counted ? int(c.counted.live_records) : "—"), cls: "num" },
      { label: "HNSW m / ef_c / ef_s", value: (c) => `${c.hnsw.m} / ${c.hnsw.ef_construction} / ${c.hnsw.ef_search}` },
      { label: "partition", value: (c) => h("code", {}, c.partition) },
      { label: "created", value: (c) => (c.created_at ? c.created_at.replace("T", " ").replace(/\.\d+Z$/, "Z") : "—") },
      { label: "", value: (c) => h("span", { class: "row-actions" },
        h("button", { type: "button", onclick: () => go("records", { collection: c.name }) }, "Browse"),
        h("button", { type: "button", onclick: () => go("search", { collection: c.name }) }, "Search"),
        dropButton(c, out, reload)) },
    ], rows, { empty: "no collection yet: create one below", testid: "collections" }));
  }

  clear(root,
    h("div", { class: "viewhead" }, h("h1", {}, "Collections")),
    out,
    section("Collections of this tenant", list, h("p", { class: "muted" },
      "Records: live records as applied by the most advanced storage replica of each shard.")),
    detail,
    section("Create a collection", createForm(out, reload)));
  await reload();
  if (params.name) await showSchema(params.name, detail);
}
