// The console's shell: hash routing (#/view?param=value) between the five views, and the tenant.

import { apiKey, setApiKey, setTenant, tenant } from "./api.js";
import { clear, notice } from "./dom.js";
import * as collections from "./collections.js";
import * as journal from "./journal.js";
import * as overview from "./overview.js";
import * as records from "./records.js";
import * as search from "./search.js";

const VIEWS = { overview, collections, records, search, journal };
const root = document.getElementById("view");
let cleanup = null;

/** Navigate to a view: go("records", {collection: "docs", id: "a"}). */
export function go(view, params = {}) {
  const query = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== null && v !== undefined && v !== ""));
  const hash = `#/${view}${query.toString() ? `?${query}` : ""}`;
  if (location.hash === hash) render();
  else location.hash = hash;
}

function parse() {
  const [path, query] = location.hash.replace(/^#\/?/, "").split("?");
  const name = VIEWS[path] ? path : "overview";
  return { name, params: Object.fromEntries(new URLSearchParams(query || "")) };
}

async function render() {
  if (cleanup) cleanup();
  cleanup = null;
  const { name, params } = parse();
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.dataset.view === name);
  document.title = `${name[0].toUpperCase()}${name.slice(1)} · Vecraft console`;
  clear(root);
  root.dataset.view = name;
  try {
    cleanup = (await VIEWS[name].render(root, params, { go })) || null;
  } catch (err) {
    clear(root, notice("error", err.message || String(err)));
  }
}

const tenantInput = document.getElementById("tenant");
tenantInput.value = tenant();
tenantInput.addEventListener("change", () => {
  setTenant(tenantInput.value.trim());
  tenantInput.value = tenant();
  render();
});

const keyInput = document.getElementById("api-key");
keyInput.value = apiKey();
keyInput.addEventListener("change", () => {
  setApiKey(keyInput.value.trim());
  render();
});

window.addEventListener("hashchange", render);
render();
