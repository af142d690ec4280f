// Small DOM and formatting helpers shared by the views. Text is always set as text, never as HTML.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k in el && typeof v !== "string") el[k] = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A table: columns are {label, value(row) -> node|text, cls?}; `empty` is shown for no rows. */
export function table(columns, rows, { empty = "nothing yet", cls = "", testid = null } = {}) {
  const head = h("tr", {}, columns.map((c) => h("th", { class: c.cls }, c.label)));
  const body = rows.length
    ? rows.map((r) => h("tr", {}, columns.map((c) => h("td", { class: c.cls }, c.value(r)))))
    : [h("tr", {}, h("td", { class: "empty", colSpan: columns.length }, empty))];
  return h("table", { class: `grid ${cls}`, "data-testid": testid }, h("thead", {}, head), h("tbody", {}, body));
}

export function section(title, ...children) {
  return h("section", { class: "card" }, h("h2", {}, title), ...children);
}

export function notice(kind, ...text) {
  return h("div", { class: `notice ${kind}`, role: kind === "error" ? "alert" : "status" }, ...text);
}

export function badge(text, kind = "") {
  return h("span", { class: `badge ${kind}` }, text);
}

export function field(label, control, hint = null, cls = "") {
  return h("label", { class: `field ${cls}` }, h("span", {}, label), control, hint && h("small", {}, hint));
}

export function pre(value) {
  return h("pre", { class: "json" }, typeof value === "string" ? value : stringify(value));
}

// JSON.stringify that also prints BigInt (exact 64-bit integers from the API) as a bare number
// where the browser has JSON.rawJSON, else as a string.
function bigintJson(key, value) {
  if (typeof value !== "bigint") return value;
  return JSON.rawJSON ? JSON.rawJSON(value.toString()) : value.toString();
}

export function stringify(value, indent = 2) {
  return JSON.stringify(value, bigintJson, indent);
}

export function int(n) {
  if (n === null || n === undefined) return "—";
  return typeof n === "bigint" ? n.toLocaleString("en-US") : Number(n).toLocaleString("en-US");
}

export function ms(n) {
  if (n === null || n === undefined) return "—";
  const v = Number(n);
  if (v >= 10000) return `${(v / 1000).toFixed(1)} s`;
  if (v >= 100) return `${Math.round(v)} ms`;
  if (v >= 1) return `${v.toFixed(1)} ms`;
  return `${v.toFixed(2)} ms`;
}

export function bytes(n) {
  if (n === null || n === undefined) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = Number(n);
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${i ? v.toFixed(1) : v} ${units[i]}`;
}

export function pct(share) {
  return `${(share * 100).toFixed(1)}%`;
}

/** An HLC (number or BigInt) as "2026-01-05T10:12:03.412Z +3" (physical time + logical counter). */
export function hlc(value) {
  if (value === null || value === undefined || value === 0 || value === 0n) return "—";
  const big = typeof value === "bigint" ? value : BigInt(Math.round(Number(value)));
  const physical = Number(big >> 16n);
  const logical = typeof value === "bigint" ? Number(big & 0xffffn) : null;
  const time = new Date(physical).toISOString();
  return logical === null ? time : `${time} +${logical}`;
}

export function age(msAgo) {
  if (msAgo === null || msAgo === undefined) return "—";
  const v = Number(msAgo);
  if (v < 1000) return `${Math.round(v)} ms ago`;
  if (v < 120000) return `${(v / 1000).toFixed(1)} s ago`;
  if (v < 7200000) return `${Math.round(v / 60000)} min ago`;
  return `${(v / 3600000).toFixed(1)} h ago`;
}

export function short(value, max = 80) {
  const text = typeof value === "string" ? value : stringify(value, 0);
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** Run `fn` on click with the button disabled meanwhile; errors go to `out` as a notice. */
export function action(button, out, fn) {
  button.addEventListener("click", async (event) => {
    event.preventDefault();
    button.disabled = true;
    try {
      await fn();
    } catch (err) {
      if (out) clear(out, notice("error", err.message || String(err)));
      else throw err;
    } finally {
      button.disabled = false;
    }
  });
  return button;
}

export function select(options, value) {
  return h("select", {}, options.map((o) => {
    const [v, label] = Array.isArray(o) ? o : [o, o];
    return h("option", { value: v, selected: v === value }, label);
  }));
}
