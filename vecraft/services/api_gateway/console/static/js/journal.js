// Journal audit: the entries of a partition (every write, delete, transaction and DDL with its
// request id, offset and HLC; GET /v1/journal/{partition}), and where one request landed
// (GET /v1/operations/{request_id}).

import { api, enc } from "./api.js";
import { action, badge, clear, field, h, hlc, int, notice, section, select, table } from "./dom.js";

const KIND_STYLE = { insert: "ok", upsert: "ok", delete: "bad", create_collection: "info",
  drop_collection: "bad", alter_collection: "info" };

function mutations(entry) {
  const list = (entry.summary && entry.summary.mutations) || [];
  if (!list.length) return h("span", { class: "muted" }, "(no mutation)");
  return list.map((m) => {
    const ids = m.ids && m.ids.length ? ` ${m.ids.slice(0, 4).join(", ")}${m.count > 4 ? ", …" : ""}` : "";
    return h("div", {}, badge(m.kind, KIND_STYLE[m.kind] || ""), " ", h("strong", {}, m.collection || "—"),
      m.count !== undefined ? ` · ${int(m.count)} row(s)` : "", ids ? h("code", {}, ids) : null);
  });
}

async function partitionNames() {
  try {
    const { data } = await api("/v1/cluster/overview");
    const names = data.partitions.map((p) => p.partition);
    if (names.length) return names;
  } catch {
    // Fall through to the partitions every cluster has.
  }
  return ["data-0", "system"];
}

export async function render(root, params) {
  const names = await partitionNames();
  const out = h("div", { class: "messages" });
  const partition = select(names, names.includes(params.partition) ? params.partition : names[0]);
  const limit = h("input", { type: "number", min: 1, max: 1000, value: 25, class: "small" });
  const from = h("input", { type: "number", min: 1, placeholder: "latest", class: "small" });
  const show = h("button", { type: "button", class: "primary" }, "Show");
  const older = h("button", { type: "button", disabled: true }, "◀ Older");
  const newer = h("button", { type: "button", disabled: true }, "Newer ▶");
  const page = h("div");
  let first = 0;
  let latest = 0;

  async function load(fromOffset) {
    const size = Number(limit.value) || 25;
    if (!fromOffset) {
      // Newest page: learn the head first, then read the last `size` entries.
      latest = (await api(`/v1/journal/${enc(partition.value)}`, { params: { from_offset: 1, limit: 1 } })).data.latest_offset;
      fromOffset = Math.max(1, latest - size + 1);
    }
    const { data } = await api(`/v1/journal/${enc(partition.value)}`, { params: { from_offset: fromOffset, limit: size } });
    latest = data.latest_offset;
    first = fromOffset;
    from.value = String(fromOffset);
    older.disabled = first <= 1;
    newer.disabled = data.next_offset > latest;
    const rows = [...data.entries].reverse();
    clear(page, h("p", { class: "muted" }, `${data.partition}: head at offset ${int(latest)}; `
      + `showing ${rows.length ? `${int(rows[rows.length - 1].offset)} – ${int(rows[0].offset)}` : "nothing"}, newest first.`),
    table([
      { label: "offset", value: (e) => int(e.offset), cls: "num" },
      { label: "HLC", value: (e) => hlc(e.hlc), cls: "nowrap" },
      { label: "request id", value: (e) => (e.request_id ? h("code", {}, e.request_id) : "—") },
      { label: "mutations", value: mutations },
    ], rows, { empty: "the partition has no entry in this range", testid: "journal" }));
  }

  action(show, out, async () => { clear(out); await load(Number(from.value) || 0); });
  action(older, out, async () => { clear(out); await load(Math.max(1, first - (Number(limit.value) || 25))); });
  action(newer, out, async () => { clear(out); await load(first + (Number(limit.value) || 25)); });
  partition.addEventListener("change", () => { from.value = ""; load(0).catch((err) => clear(out, notice("error", err.message))); });

  // --- operation lookup ---
  const requestId = h("input", { placeholder: "X-Request-Id of a write", spellcheck: "false", "data-testid": "request-id" });
  const find = h("button", { type: "submit" }, "Find");
  const found = h("div", { "data-testid": "operation" });
  action(find, out, async () => {
    clear(found);
    const id = requestId.value.trim();
    if (!id) return;
    const { data } = await api(`/v1/operations/${enc(id)}`);
    clear(found, h("dl", { class: "info" },
      h("dt", {}, "position"), h("dd", {}, `${data.partition} offset ${int(data.offset)} · HLC ${hlc(data.hlc)}`),
      h("dt", {}, "applied by"), h("dd", {}, data.replicas_applied.length ? data.replicas_applied.map((r) => badge(r, "ok")) : "none yet"),
      h("dt", {}, "pending"), h("dd", {}, data.replicas_pending.length ? data.replicas_pending.map((r) => badge(r, "warn")) : "none")));
  });

  clear(root,
    h("div", { class: "viewhead" }, h("h1", {}, "Journal audit")),
    notice("info", "Every change is one journal entry with its request id, offset and HLC: writes, deletes, "
      + "transactions and a copy of each collection's DDL in the data partitions; DDL in the system partition. "
      + "The journal does not record who made a change: an audit log of callers' identities is not available."),
    out,
    section("Entries", h("div", { class: "form-grid" }, field("partition", partition), field("from offset", from),
      field("page size", limit), h("div", { class: "actions" }, show, older, newer)), page),
    section("Where did a request land?", h("form", { class: "inline" }, requestId, find), found));
  await load(0);
}
