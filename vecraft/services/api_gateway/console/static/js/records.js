// Records: get by id, list a collection page by page with a metadata filter, write and delete.

import { api, collections, enc } from "./api.js";
import { action, clear, field, h, hlc, int, notice, pre, section, select, short, table } from "./dom.js";
import { parseJson, parseVector, randomVector } from "./vectors.js";

export const READ_LEVELS = ["eventual", "read_your_writes", "strong"];

function recordCard(r, { go, collection, onDeleted, out }) {
  const del = h("button", { type: "button", class: "danger" }, "Delete");
  action(del, out, async () => {
    const { data } = await api(`/v1/vectors/${enc(r.id)}`, { method: "DELETE", params: { collection } });
    clear(out, notice("ok", `Deleted ${r.id} (journal ${data.partition} offset ${data.offset}).`));
    onDeleted();
  });
  return h("div", { class: "record", "data-testid": "record" },
    h("dl", {},
      h("dt", {}, "id"), h("dd", {}, h("code", {}, r.id)),
      h("dt", {}, "written at"), h("dd", {}, `offset ${int(r.offset)} · HLC ${hlc(r.hlc)}`),
      h("dt", {}, "metadata"), h("dd", {}, pre(r.metadata)),
      h("dt", {}, "document"), h("dd", {}, r.document === null ? h("span", { class: "muted" }, "none") : h("div", { class: "doc" }, r.document)),
      h("dt", {}, "vector"), h("dd", {}, r.vector ? h("details", {}, h("summary", {}, `${r.vector.length} dimensions: ${short(r.vector.map((x) => +x.toFixed(4)), 70)}`), pre(r.vector)) : "—")),
    h("div", { class: "row-actions" },
      h("button", { type: "button", onclick: () => go("search", { collection, like: r.id }) }, "Search similar"), del));
}

function writeForm(state, out) {
  const id = h("input", { placeholder: "generated when empty", spellcheck: "false" });
  const vector = h("textarea", { rows: 2, placeholder: "[0.1, 0.2, 0.3, 0.4]", spellcheck: "false" });
  const random = h("button", { type: "button" }, "Random");
  const metadata = h("textarea", { rows: 2, placeholder: '{"category": "documents"}', spellcheck: "false" });
  const documentText = h("textarea", { rows: 2, placeholder: "optional text" });
  const ack = select(["all", "one", "journal"], "all");
  const submit = h("button", { type: "button", class: "primary" }, "Insert");
  random.addEventListener("click", () => { vector.value = JSON.stringify(randomVector(state.schema().dim)); });
  action(submit, out, async () => {
    const body = { collection: state.collection(), vector: parseVector(vector.value, state.schema().dim), ack: ack.value };
    if (id.value.trim()) body.id = id.value.trim();
    const meta = parseJson(metadata.value, "metadata");
    if (meta !== null) body.metadata = meta;
    if (documentText.value) body.document = documentText.value;
    const { data } = await api("/v1/vectors", { method: "POST", body });
    clear(out, notice("ok", `Inserted ${data.id} at ${data.partition} offset ${data.offset} `
      + `(${data.replicas_acked}/${data.replicas_expected} replicas acknowledged).`));
  });
  return h("details", { class: "card" }, h("summary", {}, "Write a record"),
    h("div", { class: "form-grid" },
      field("id", id), field("vector", h("div", { class: "with-button" }, vector, random)),
      field("metadata (JSON)", metadata), field("document", documentText), field("ack", ack),
      h("div", { class: "actions" }, submit)));
}

export async function render(root, params, ctx) {
  const all = await collections();
  const out = h("div", { class: "messages" });
  if (!all.length) {
    clear(root, h("div", { class: "viewhead" }, h("h1", {}, "Records")),
      notice("warn", "No collection yet: create one in Collections."));
    return;
  }
  const chosen = all.some((c) => c.name === params.collection) ? params.collection : all[0].name;
  const coll = select(all.map((c) => c.name), chosen);
  const level = select(READ_LEVELS, params.level || "eventual");
  const state = { collection: () => coll.value, schema: () => all.find((c) => c.name === coll.value) };

  // --- get by id ---
  const idInput = h("input", { placeholder: "record id", value: params.id || "", spellcheck: "false", "data-testid": "get-id" });
  const getButton = h("button", { type: "submit", class: "primary" }, "Get");
  const got = h("div");
  async function get() {
    const id = idInput.value.trim();
    if (!id) return;
    const { data } = await api(`/v1/vectors/${enc(id)}`, {
      params: { collection: coll.value, include_vector: true, consistency_level: level.value } });
    clear(got, recordCard(data, { go: ctx.go, collection: coll.value, out, onDeleted: () => clear(got) }));
  }
  action(getButton, out, async () => { clear(out); clear(got); await get(); });
  const getForm = h("form", { class: "inline" }, idInput, getButton);

  // --- listing ---
  const filter = h("textarea", { rows: 2, placeholder: '{"category": "documents"} or {"year": {"$gte": 2020}}', spellcheck: "false", "data-testid": "filter", value: params.filter || "" });
  const limit = h("input", { type: "number", min: 1, max: 1000, value: 20, class: "small" });
  const vectors = h("input", { type: "checkbox" });
  const listButton = h("button", { type: "button", class: "primary" }, "List");
  const nextButton = h("button", { type: "button", disabled: true }, "Next page");
  const page = h("div");
  let cursor = null;

  async function list(after) {
    const f = parseJson(filter.value, "filter");
    const { data } = await api(`/v1/collections/${enc(coll.value)}/records`, {
      params: { after, limit: limit.value, include_vectors: vectors.checked, consistency_level: level.value,
        filter: f === null ? null : JSON.stringify(f) } });
    cursor = data.next_cursor;
    nextButton.disabled = cursor === null;
    clear(page, h("p", { class: "muted" }, `${data.records.length} record(s)${after ? ` after ${after}` : ""}, `
      + `read at index version ${int(data.index_version)} of ${data.partition}${cursor === null ? "; end of listing" : ""}.`),
    table([
      { label: "id", value: (r) => h("a", { href: "#", onclick: (e) => { e.preventDefault(); idInput.value = r.id; get().catch((err) => clear(out, notice("error", err.message))); } }, r.id) },
      { label: "metadata", value: (r) => h("code", {}, short(r.metadata, 90)) },
      { label: "document", value: (r) => (r.document === null ? "—" : short(r.document, 60)) },
      ...(vectors.checked ? [{ label: "vector", value: (r) => h("code", {}, short(r.vector.map((x) => +x.toFixed(3)), 50)) }] : []),
      { label: "offset", value: (r) => int(r.offset), cls: "num" },
      { label: "HLC", value: (r) => hlc(r.hlc), cls: "nowrap" },
    ], data.records, { empty: "no record matches", testid: "records" }));
  }
  action(listButton, out, async () => { clear(out); await list(null); });
  action(nextButton, out, async () => { clear(out); await list(cursor); });
  coll.addEventListener("change", () => ctx.go("records", { collection: coll.value, level: level.value }));

  clear(root,
    h("div", { class: "viewhead" }, h("h1", {}, "Records"),
      h("div", { class: "controls" }, field("collection", coll), field("consistency", level))),
    out,
    section("Get by id", getForm, got),
    section("Browse", h("div", { class: "form-grid" }, field("filter (JSON)", filter), field("page size", limit),
      field("vectors", h("span", {}, vectors, " include")), h("div", { class: "actions" }, listButton, nextButton)), page),
    writeForm(state, out));
  if (params.id) await get().catch((err) => clear(out, notice("error", err.message)));
  else await list(null).catch((err) => clear(out, notice("error", err.message)));
}
