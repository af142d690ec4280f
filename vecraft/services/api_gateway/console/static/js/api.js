// The gateway's HTTP API as the console calls it: one fetch wrapper, errors as ApiError.
//
// Paths are relative to the gateway's root, found from this page's address (/console/ -> /),
// so the console also works behind a proxy that serves the gateway under a prefix.

const ROOT = new URL("../", document.baseURI);
const TENANT_KEY = "vecraft.console.tenant";
const SESSION_KEY = "vecraft.console.session";
// The API key of a gateway started with --auth (docs/security.md), kept in this browser's
// localStorage and sent as Authorization: Bearer with every call.
const API_KEY_KEY = "vecraft.console.apiKey";

export class ApiError extends Error {
  constructor(status, body) {
    const err = body && body.error;
    super(err ? `${status} ${err.code}: ${err.message}` : `HTTP ${status}`);
    this.status = status;
    this.code = err ? err.code : null;
    this.details = err ? err.details : null;
  }
}

export function tenant() {
  return localStorage.getItem(TENANT_KEY) || "default";
}

export function setTenant(name) {
  if (name && name !== "default") localStorage.setItem(TENANT_KEY, name);
  else localStorage.removeItem(TENANT_KEY);
}

export function apiKey() {
  return localStorage.getItem(API_KEY_KEY) || "";
}

export function setApiKey(key) {
  if (key) localStorage.setItem(API_KEY_KEY, key);
  else localStorage.removeItem(API_KEY_KEY);
}

// The read-your-writes token of the writes made from this tab for the current tenant (the
// gateway merges each write's position into it).
export function sessionToken() {
  return sessionStorage.getItem(`${SESSION_KEY}.${tenant()}`);
}

function keepSessionToken(token) {
  sessionStorage.setItem(`${SESSION_KEY}.${tenant()}`, token);
}

// Integers beyond 2^53 (HLCs are 64-bit) become BigInt when the browser lets a reviver see the
// number's source text, so they are shown exactly; elsewhere they stay (rounded) numbers.
function reviver(key, value, context) {
  if (typeof value === "number" && Number.isInteger(value) && !Number.isSafeInteger(value)
      && context && typeof context.source === "string" && /^-?\d+$/.test(context.source)) {
    return BigInt(context.source);
  }
  return value;
}

/**
 * Call the API. Returns {status, headers, data, ms}; throws ApiError for a non-2xx answer.
 * `params` become the query string (null/undefined/"" left out); `body` is sent as JSON.
 */
export async function api(path, { method = "GET", params = null, body = undefined, headers = {} } = {}) {
  const url = new URL(path.replace(/^\//, ""), ROOT);
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== null && v !== undefined && v !== "") url.searchParams.set(k, String(v));
  }
  // No X-Tenant for the default: a key of one tenant then acts for its own tenant.
  const sent = { ...headers };
  if (tenant() !== "default") sent["X-Tenant"] = tenant();
  if (apiKey()) sent["Authorization"] = `Bearer ${apiKey()}`;
  const token = sessionToken();
  if (token && !("X-Session-Token" in sent)) sent["X-Session-Token"] = token;
  const init = { method, headers: sent };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    sent["Content-Type"] = "application/json";
  }
  const began = performance.now();
  const resp = await fetch(url, init);
  const text = await resp.text();
  const ms = performance.now() - began;
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text, reviver);
    } catch {
      data = text;
    }
  }
  if (!resp.ok) throw new ApiError(resp.status, data);
  if (data && typeof data === "object" && typeof data.session_token === "string") {
    keepSessionToken(data.session_token);
  }
  return { status: resp.status, headers: resp.headers, data, ms };
}

export const enc = encodeURIComponent;

// The tenant's collections, by name.
export async function collections() {
  return (await api("/v1/collections")).data.collections;
}
