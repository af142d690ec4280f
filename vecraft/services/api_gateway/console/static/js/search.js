// Search playground: a vector (pasted, random, or a record's), k, filters, consistency level and
// max staleness; shows the results, consistency_info and the consistency response headers.

import { api, collections, enc } from "./api.js";
import { action, badge, clear, field, h, int, ms, notice, section, select, short, table } from "./dom.js";
import { parseJson, parseVector, randomVector } from "./vectors.js";

const LEVELS = ["eventual", "bounded", "read_your_writes", "strong"];
const HEADERS = ["x-consistency-achieved", "x-actual-staleness-ms", "x-index-version-used", "x-cache-hit",
  "x-sync-performed", "x-request-id"];

function yesNo(value) {
  return badge(value ? "yes" : "no", value ? "ok" : "");
}

function info(data, resp) {
  const c = data.consistency_info;
  const met = c.level_achieved === c.level_requested;
  return h("div", { class: "info", "data-testid": "consistency-info" },
    h("dl", {},
      h("dt", {}, "level requested"), h("dd", {}, c.level_requested),
      h("dt", {}, "level achieved"), h("dd", {}, badge(c.level_achieved, met ? "ok" : "warn")),
      h("dt", {}, "staleness"), h("dd", {}, ms(c.staleness_ms)),
      h("dt", {}, "max allowed staleness"), h("dd", {}, c.max_allowed_staleness_ms === null ? "—" : ms(c.max_allowed_staleness_ms)),
      h("dt", {}, "index version"), h("dd", {}, `${int(c.index_version)}${data.partition ? ` of ${data.partition}` : ""}`),
      h("dt", {}, "cache hit"), h("dd", {}, yesNo(c.cache_hit)),
      h("dt", {}, "sync performed"), h("dd", {}, yesNo(c.sync_performed)),
      h("dt", {}, "missing shards"), h("dd", {}, data.missing_shards.length ? data.missing_shards.join(", ") : "none"),
      h("dt", {}, "round trip"), h("dd", {}, ms(resp.ms))),
    h("details", {}, h("summary", {}, "response headers"),
      h("pre", { class: "json" }, HEADERS.map((k) => `${k}: ${resp.headers.get(k)}`).join("\n"))));
}

export async function render(root, params, { go }) {
  const all = await collections();
  const out = h("div", { class: "messages" });
  if (!all.length) {
    clear(root, h("div", { class: "viewhead" }, h("h1", {}, "Search")),
      notice("warn", "No collection yet: create one in Collections."));
    return;
  }
  const chosen = all.some((c) => c.name === params.collection) ? params.collection : all[0].name;
  const coll = select(all.map((c) => c.name), chosen);
  const schema = () => all.find((c) => c.name === coll.value);
  const vector = h("textarea", { rows: 3, spellcheck: "false", placeholder: "[0.1, 0.2, 0.3, 0.4]", "data-testid": "vector" });
  const random = h("button", { type: "button" }, "Random");
  const k = h("input", { type: "number", min: 1, max: 1024, value: 10, class: "small" });
  const filters = h("textarea", { rows: 2, spellcheck: "false", placeholder: '{"category": "documents"}', "data-testid": "filters" });
  const level = select(LEVELS, LEVELS.includes(params.level) ? params.level : "eventual");
  const staleness = h("input", { type: "number", min: 0, max: 3600000, placeholder: "1000", class: "small" });
  const documents = h("input", { type: "checkbox" });
  const submit = h("button", { type: "submit", class: "primary" }, "Search");
  const results = h("div");
  const syncStaleness = () => { staleness.disabled = level.value !== "bounded"; };
  level.addEventListener("change", syncStaleness);
  syncStaleness();
  random.addEventListener("click", () => { vector.value = JSON.stringify(randomVector(schema().dim)); });
  coll.addEventListener("change", () => go("search", { collection: coll.value }));

  action(submit, out, async () => {
    clear(out);
    const body = { collection: coll.value, vector: parseVector(vector.value, schema().dim), k: Number(k.value),
      consistency_level: level.value, include_documents: documents.checked };
    const f = parseJson(filters.value, "filters");
    if (f !== null) body.filters = f;
    if (level.value === "bounded" && staleness.value !== "") body.max_staleness_ms = Number(staleness.value);
    const resp = await api("/v1/vectors/search", { method: "POST", body });
    const { data } = resp;
    clear(results,
      section("consistency_info", info(data, resp)),
      section(`Results (${data.results.length})`, table([
        { label: "#", value: (r) => r.rank, cls: "num" },
        { label: "id", value: (r) => h("a", { href: `#/records?${new URLSearchParams({ collection: coll.value, id: r.id })}` }, r.id) },
        { label: "score", value: (r) => r.score.toFixed(4), cls: "num" },
        { label: "metadata", value: (r) => h("code", {}, short(r.metadata, 90)) },
        ...(documents.checked ? [{ label: "document", value: (r) => (r.document === null ? "—" : short(r.document, 60)) }] : []),
      ], data.results.map((r, i) => ({ ...r, rank: i + 1 })), { empty: "no result", testid: "results" })));
  });

  const form = h("form", { class: "form-grid", "data-testid": "search-form" },
    field("vector", h("div", { class: "with-button" }, vector, random), "a JSON array, or numbers separated by commas", "wide"),
    field("filters (JSON)", filters, "equality, or $eq $ne $in $nin $gt $gte $lt $lte $and $or $not"),
    field("k", k), field("consistency level", level), field("max staleness (ms)", staleness, "bounded only"),
    field("documents", h("span", {}, documents, " include")),
    h("div", { class: "actions" }, submit));
  clear(root,
    h("div", { class: "viewhead" }, h("h1", {}, "Search playground"),
      h("div", { class: "controls" }, field("collection", coll), h("span", { class: "muted" }, `dim ${schema().dim} · ${schema().metric}`))),
    out, section("Query", form), results);

  if (params.like) {
    try {
      const { data } = await api(`/v1/vectors/${enc(params.like)}`, { params: { collection: coll.value, include_vector: true } });
      vector.value = JSON.stringify(data.vector);
    } catch (err) {
      clear(out, notice("error", err.message));
    }
  }
}
