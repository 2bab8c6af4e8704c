// Shared by the pages: language, calls to the API with clear messages, Sign-In with Ethereum,
// EIP-712 signing (SPEC §3), names for ids, Asia/Shanghai times.
import { ethers } from "/static/vendor/ethers.min.js";
import { TEXTS } from "/static/js/i18n.js";

export { ethers };

// ---- language ----------------------------------------------------------------------------------
export function lang() {
  return localStorage.getItem("qcl.lang") === "en" ? "en" : "zh";
}

export function t(key, vars = {}) {
  let text = TEXTS[lang()][key] ?? TEXTS.zh[key] ?? key;
  for (const [k, v] of Object.entries(vars)) text = text.replaceAll(`{${k}}`, String(v));
  return text;
}

const rerenders = [];
export function onLanguage(fn) {
  rerenders.push(fn);
}

export function applyTexts(root = document) {
  document.documentElement.lang = lang() === "en" ? "en" : "zh-CN";
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-label]")) el.setAttribute("aria-label", t(el.dataset.i18nLabel));
  for (const el of root.querySelectorAll("[data-i18n-title]")) el.title = t(el.dataset.i18nTitle);
  const button = document.getElementById("lang-switch");
  if (button) button.lang = lang() === "en" ? "zh-CN" : "en"; // it names the other language, in that language
  for (const el of root.querySelectorAll("[data-i18n-placeholder]")) el.placeholder = t(el.dataset.i18nPlaceholder);
}

function setupLanguageSwitch() {
  const button = document.getElementById("lang-switch");
  if (!button) return;
  button.addEventListener("click", () => {
    localStorage.setItem("qcl.lang", lang() === "en" ? "zh" : "en");
    applyTexts();
    for (const fn of rerenders) fn();
  });
}

// ---- DOM helpers -------------------------------------------------------------------------------
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) el.append(c instanceof Node ? c : String(c));
  return el;
}

export function $(id) {
  return document.getElementById(id);
}

export function table(headers, rows, { caption } = {}) {
  if (!rows.length) return h("p", { class: "empty" }, t("common.none"));
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      {},
      caption ? h("caption", { class: "sr-only" }, caption) : null,
      h("thead", {}, h("tr", {}, headers.map((x) => h("th", { scope: "col" }, t(x))))),
      h(
        "tbody",
        {},
        rows.map((r) => h("tr", r.attrs || {}, r.cells.map((c, i) => h("td", { "data-label": t(headers[i]) }, c)))),
      ),
    ),
  );
}

export function badge(kind, key) {
  return h("span", { class: `badge badge-${kind}` }, t(key));
}

export function short(hex) {
  return hex ? h("code", { title: hex, class: "hex" }, `${hex.slice(0, 8)}…${hex.slice(-6)}`) : "";
}

// ---- messages ----------------------------------------------------------------------------------
export function notify(text, kind = "ok") {
  const box = $("messages");
  const el = h("div", { class: `msg msg-${kind}`, role: kind === "error" ? "alert" : "status" }, text);
  box.replaceChildren(el);
  if (kind === "ok") setTimeout(() => el.isConnected && el.remove(), 8000);
}

export function describeError(err) {
  if (err instanceof ApiError) {
    if (err.kind === "unreachable") return t("err.unreachable");
    if (err.kind === "expired") return t("err.expired");
    const code = err.body?.code;
    const known = {
      chain_unavailable: "err.chain", release_pending: "err.chain", signature_invalid: "err.sigInvalid",
      invalid_signature: "err.sigInvalid", signature_malleable: "err.sigInvalid", not_a_member: "err.notMember", member_suspended: "err.suspended",
      forbidden: "err.forbidden", role_required: "err.forbidden", rate_limited: "err.rate",
      stale_sequence: "err.stale", nonce_used: "err.nonce", grant_revoked: "err.revoked", grant_paused: "err.paused",
    };
    if (known[code]) return t(known[code]);
    if (err.status === 503) return t("err.chain");
    return `${t("err.failed")}: ${err.body?.detail || err.status} (${code || err.status})`;
  }
  if (err?.code === "ACTION_REJECTED" || err?.code === 4001 || err?.info?.error?.code === 4001) return t("err.sigRejected");
  if (err instanceof LocalError) return t(err.key);
  return `${t("err.failed")}: ${err?.shortMessage || err?.message || err}`;
}

export function showError(err) {
  console.error(err);
  notify(describeError(err), "error");
  if (err instanceof ApiError && err.kind === "expired") renderSignedOut();
}

export async function guarded(fn) {
  try {
    return await fn();
  } catch (err) {
    showError(err);
    return undefined;
  }
}

export class LocalError extends Error {
  constructor(key) {
    super(key);
    this.key = key;
  }
}

// ---- the API -----------------------------------------------------------------------------------
export class ApiError extends Error {
  constructor(kind, status = 0, body = null) {
    super(body?.detail || kind);
    this.kind = kind; // "unreachable", "expired" or "problem"
    this.status = status;
    this.body = body;
  }
}

/** The session: the signer (a key in memory, or the injected wallet) and the bearer token. */
export const session = { address: null, token: null, roles: [], signer: null, domain: null };
window.qclSession = session; // for people debugging in the console (and the tests)

export async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (session.token) headers.Authorization = `Bearer ${session.token}`;
  let response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ApiError("unreachable");
  }
  let data = null;
  const text = await response.text();
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = { detail: text.slice(0, 200) };
  }
  if (response.status === 401 && session.token && !path.startsWith("/v1/auth/")) {
    session.token = null;
    throw new ApiError("expired", 401, data);
  }
  if (response.status === 502 || response.status === 504) throw new ApiError("unreachable", response.status, data);
  if (!response.ok) throw new ApiError("problem", response.status, data);
  return data;
}

// ---- names, not hashes -------------------------------------------------------------------------
const names = { members: new Map(), resources: new Map(), purposes: new Map(), catalog: [], purposeList: [] };

export async function loadCatalog() {
  const [catalog, purposes] = await Promise.all([
    api("GET", "/v1/catalog?limit=500"),
    api("GET", "/v1/purposes?limit=500"),
  ]);
  names.catalog = catalog.items;
  names.purposeList = purposes.items;
  for (const r of catalog.items) {
    names.resources.set(r.resource.toLowerCase(), r);
    names.resources.set(r.code, r);
  }
  for (const p of purposes.items) names.purposes.set(p.purpose.toLowerCase(), p);
}

export function catalog() {
  return names.catalog;
}
export function purposes() {
  return names.purposeList;
}

export function resourceName(idOrCode) {
  const r = names.resources.get(String(idOrCode).toLowerCase()) || names.resources.get(idOrCode);
  return r ? r.name : short(idOrCode);
}

export function purposeName(id) {
  if (!id) return "";
  const p = names.purposes.get(String(id).toLowerCase());
  if (!p) return short(id);
  return lang() === "en" ? p.name_en : p.name_zh;
}

export async function memberName(address) {
  if (!address) return "";
  const key = address.toLowerCase();
  if (!names.members.has(key)) {
    names.members.set(
      key,
      api("GET", `/v1/members/${ethers.getAddress(address)}`)
        .then((m) => m.name || null)
        .catch(() => null),
    );
  }
  return names.members.get(key);
}

/** A span that shows the member's name once known (the address on hover). */
export function who(address) {
  const el = h("span", { class: "who", title: address }, `${address.slice(0, 6)}…${address.slice(-4)}`);
  memberName(address).then((name) => {
    if (name) el.textContent = name;
  });
  return el;
}

// ---- times (Asia/Shanghai) ---------------------------------------------------------------------
export function when(seconds, { date = false } = {}) {
  if (seconds === null || seconds === undefined) return "";
  const options = { timeZone: "Asia/Shanghai", year: "numeric", month: "2-digit", day: "2-digit", hour12: false };
  if (!date) Object.assign(options, { hour: "2-digit", minute: "2-digit" });
  const text = new Intl.DateTimeFormat(lang() === "en" ? "en-CA" : "zh-CN", options).format(new Date(seconds * 1000));
  return h("time", { datetime: new Date(seconds * 1000).toISOString() }, `${text}${date ? "" : " (UTC+8)"}`);
}

export function countdown(seconds) {
  const left = seconds - Date.now() / 1000;
  if (left <= 0) return h("span", { class: "late" }, t("my.overdue"));
  const d = Math.floor(left / 86400);
  const hrs = Math.floor((left % 86400) / 3600);
  const text = lang() === "en" ? `${d} d ${hrs} h ${t("my.dueIn")}` : `${t("my.dueIn")} ${d} 天 ${hrs} 小时`;
  return h("span", {}, text);
}

// ---- signing (SPEC §3, §5) ---------------------------------------------------------------------
export const TYPES = {
  Grant: [
    { name: "subject", type: "address" },
    { name: "grantee", type: "address" },
    { name: "resources", type: "bytes32[]" },
    { name: "purpose", type: "bytes32" },
    { name: "validFrom", type: "uint64" },
    { name: "validUntil", type: "uint64" },
    { name: "maxUses", type: "uint32" },
    { name: "nonce", type: "uint256" },
    { name: "deadline", type: "uint256" },
  ],
  Revoke: [
    { name: "grantId", type: "bytes32" },
    { name: "nonce", type: "uint256" },
    { name: "deadline", type: "uint256" },
  ],
  SetPaused: [
    { name: "grantId", type: "bytes32" },
    { name: "paused", type: "bool" },
    { name: "sequence", type: "uint64" },
    { name: "nonce", type: "uint256" },
    { name: "deadline", type: "uint256" },
  ],
  ReleaseRequest: [
    { name: "grantId", type: "bytes32" },
    { name: "resource", type: "bytes32" },
    { name: "requestId", type: "bytes32" },
    { name: "deadline", type: "uint256" },
  ],
};

export async function domain() {
  if (!session.domain) session.domain = (await api("GET", "/v1/chain")).domain;
  return session.domain;
}

/** Sign ``message`` (JSON form: uint256 as decimal strings) as ``primary``; the SPEC §6.1 body. */
export async function signed(primary, message) {
  const signature = await session.signer.signTypedData(await domain(), { [primary]: TYPES[primary] }, message);
  return { message, signature };
}

export function randomUint256() {
  return BigInt(ethers.hexlify(ethers.randomBytes(32))).toString();
}

export function now() {
  return Math.floor(Date.now() / 1000);
}

/** Refuse to sign a login message naming another server or another account (as qcl_client does). */
function checkChallenge(message, address) {
  const lines = message.split("\n");
  const suffix = " wants you to sign in with your Ethereum account:";
  const domainOk = lines[0] === `${location.host}${suffix}`;
  const uri = lines.filter((l) => l.startsWith("URI: ")).map((l) => new URL(l.slice(5)));
  const uriOk = uri.length === 1 && uri[0].host === location.host && uri[0].protocol === location.protocol;
  if (!domainOk || !uriOk || (lines[1] || "").toLowerCase() !== address.toLowerCase()) throw new LocalError("err.challenge");
}

async function signIn(signer) {
  notify(t("signin.busy"), "info");
  const address = ethers.getAddress(await signer.getAddress());
  const challenge = await api("POST", "/v1/auth/challenge", { address });
  checkChallenge(challenge.message, address);
  const signature = await signer.signMessage(challenge.message);
  const answer = await api("POST", "/v1/auth/token", { message: challenge.message, signature });
  Object.assign(session, { address, token: answer.access_token, roles: answer.roles, signer });
  notify(t("signin.ok"));
  renderSignedIn();
  document.body.dataset.state = "loading";
  try {
    await signedInHandler?.();
  } finally {
    document.body.dataset.state = "ready"; // every section loaded (or its error shown)
  }
}

export function parsePrivateKey(text) {
  let value = text.trim();
  try {
    const json = JSON.parse(value);
    value = json.private_key || json.privateKey || value;
  } catch {
    /* a bare hex key */
  }
  if (typeof value !== "string" || !/^(0x)?[0-9a-fA-F]{64}$/.test(value)) throw new LocalError("err.keyfile");
  return value.startsWith("0x") ? value : `0x${value}`;
}

let signedInHandler = null;

function renderSignedIn() {
  $("signin").hidden = true;
  $("account").hidden = false;
  $("account-name").replaceChildren(who(session.address));
  $("account-roles").textContent = session.roles.join(", ");
  $("main").hidden = false;
}

export function renderSignedOut() {
  $("signin").hidden = false;
  $("account").hidden = true;
  $("main").hidden = true;
}

/** Wire the sign-in box of a page; ``onSignedIn`` loads its content. */
export function setupSignIn(onSignedIn) {
  signedInHandler = onSignedIn;
  const walletButton = $("signin-wallet");
  if (window.ethereum) {
    walletButton.hidden = false;
    walletButton.addEventListener("click", () =>
      guarded(async () => {
        const provider = new ethers.BrowserProvider(window.ethereum);
        await signIn(await provider.getSigner());
      }),
    );
  }
  $("signin-keyfile").addEventListener("change", (event) =>
    guarded(async () => {
      const file = event.target.files[0];
      event.target.value = ""; // the file's content stays in memory only, in the wallet object
      if (!file) return;
      const wallet = new ethers.Wallet(parsePrivateKey(await file.text()));
      await signIn(wallet);
    }),
  );
  $("signout").addEventListener("click", () => {
    Object.assign(session, { address: null, token: null, roles: [], signer: null });
    renderSignedOut();
  });
}

export function start() {
  applyTexts();
  setupLanguageSwitch();
}

// ---- bytes -------------------------------------------------------------------------------------
export function b64decode(text) {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

export function b64urlEncode(text) {
  const bytes = new TextEncoder().encode(text);
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

export function b64urlDecode(text) {
  const padded = text.replaceAll("-", "+").replaceAll("_", "/") + "===".slice((text.length + 3) % 4);
  return new TextDecoder().decode(b64decode(padded));
}

export async function sha256(...parts) {
  const total = parts.reduce((n, p) => n + p.length, 0);
  const joined = new Uint8Array(total);
  let offset = 0;
  for (const p of parts) {
    joined.set(p, offset);
    offset += p.length;
  }
  return new Uint8Array(await crypto.subtle.digest("SHA-256", joined));
}

export function hexBytes(hex) {
  return ethers.getBytes(hex.startsWith("0x") ? hex : `0x${hex}`);
}
