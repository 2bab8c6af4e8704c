// The auditor explorer: the trail with filters, verification as a job with a progress bar,
// releases with their receipts, inclusion proofs checked here against the root anchored on chain
// (RFC 9162 §2.1.3.2, SHA-256), and charts.
import {
  $, ApiError, LocalError, api, b64decode, badge, catalog, ethers, guarded, h, hexBytes, lang, loadCatalog, notify,
  onLanguage, purposeName, resourceName, session, setupSignIn, sha256, short, start, t, table, when, who,
} from "/static/js/common.js";

const EVENT_NAMES = {
  zh: {
    GrantRecorded: "授权记录", GrantRevoked: "授权撤销", GrantPauseChanged: "授权暂停/恢复", ReleaseRecorded: "数据调用",
    EmergencyProposed: "紧急调用提议", EmergencyApproved: "紧急调用批准", EmergencyReleaseRecorded: "紧急数据调用",
    EmergencyCancelled: "紧急调用取消",
  },
  en: {},
};
const eventName = (e) => (lang() === "zh" && EVENT_NAMES.zh[e]) || e;

function filters() {
  const q = new URLSearchParams();
  const subject = $("f-subject").value.trim();
  const dept = $("f-department").value.trim();
  if (subject) q.set("subject", ethers.getAddress(subject));
  if (dept) q.set("grantee", ethers.getAddress(dept));
  if ($("f-resource").value) q.set("resource", $("f-resource").value);
  if ($("f-from-block").value) q.set("from_block", $("f-from-block").value);
  if ($("f-to-block").value) q.set("to_block", $("f-to-block").value);
  return q;
}

// Dates are days in Asia/Shanghai: [from 00:00, to+1 00:00) UTC+8.
function period() {
  const at = (value, plusDay) => (value ? Date.parse(`${value}T00:00:00+08:00`) / 1000 + (plusDay ? 86400 : 0) : null);
  return { from: at($("f-from").value, false), to: at($("f-to").value, true) };
}

const loaders = {};
loaders.trail = async () => {
  const q = filters();
  q.set("limit", "500");
  const items = (await api("GET", `/v1/audit/trail?${q}`)).items;
  const grants = new Map(items.filter((e) => e.event === "GrantRecorded").map((e) => [e.args.grantId, e.args]));
  $("trail").replaceChildren(table(
    ["col.event", "col.block", "col.subject", "col.department", "col.resource", "col.tx"],
    items.map((e) => {
      const a = { ...(grants.get(e.args.grantId) || {}), ...e.args };
      const resources = a.resource ? [a.resource] : a.resources || [];
      return {
        attrs: { id: `tx-${e.tx_hash}-${e.log_index}`, "data-tx": e.tx_hash, "data-event": e.event },
        cells: [
          h("span", {}, eventName(e.event), a.paused === true ? ` (${t("status.paused")})` : a.paused === false ? ` (${t("act.resume")})` : "",
            a.purpose ? h("div", { class: "hint" }, purposeName(a.purpose)) : ""),
          String(e.block_number),
          a.subject ? who(a.subject) : "",
          a.grantee || a.consumer ? who(a.grantee || a.consumer) : "",
          resources.map((r) => resourceName(r)).flatMap((n, i) => (i ? ["、", n] : [n])),
          short(e.tx_hash),
        ],
      };
    }),
  ));
};

let reportReleases = [];
loaders.releases = async () => {
  const q = new URLSearchParams();
  const f = filters();
  if (f.get("subject")) q.set("subject", f.get("subject"));
  if (f.get("grantee")) q.set("department", f.get("grantee"));
  const p = period();
  if (p.from) q.set("from_time", String(p.from));
  if (p.to) q.set("to_time", String(p.to));
  const report = await api("GET", `/v1/audit/reports?${q}`);
  const resource = $("f-resource").value;
  reportReleases = report.releases.filter((r) => !resource || r.resource.toLowerCase() === resource.toLowerCase());
  $("releases").replaceChildren(table(
    ["col.time", "col.department", "col.subject", "col.resource", "col.kind", "col.actions"],
    reportReleases.map((r) => ({
      attrs: { "data-release": r.release_id },
      cells: [
        when(r.released_at), who(r.grantee), who(r.subject), resourceName(r.resource),
        r.kind === "emergency" ? badge("bad", "my.emergency") : badge("ok", "my.viaGrant"),
        h("button", { type: "button", "data-action": "proof", onclick: () => {
          $("proof-id").value = r.release_id;
          guarded(() => checkProof(r.release_id));
        } }, t("act.proof")),
      ],
    })),
  ));
  await drawCharts();
};

// ---- verification ------------------------------------------------------------------------------
async function runVerification() {
  const button = $("verify");
  button.disabled = true;
  $("verify-out").replaceChildren();
  await guarded(async () => {
    const body = {};
    if ($("f-from-block").value) body.from_block = Number($("f-from-block").value);
    if ($("f-to-block").value) body.to_block = Number($("f-to-block").value);
    let job = await api("POST", "/v1/audit/verifications", body);
    $("verify-progress").hidden = false;
    while (job.status === "queued" || job.status === "running") {
      const pct = job.total_events ? Math.min(100, Math.round((100 * job.events) / job.total_events)) : 0;
      $("verify-bar").value = pct;
      $("verify-stage").textContent = `${t("audit.stage")}: ${job.stage} · ${t("audit.events")}: ${job.events}/${job.total_events ?? "?"}`;
      await new Promise((r) => setTimeout(r, 300));
      job = await api("GET", `/v1/audit/verifications/${job.id}`);
    }
    $("verify-bar").value = 100;
    $("verify-stage").textContent = `${t("audit.stage")}: ${job.status} · ${t("audit.events")}: ${job.events}/${job.total_events ?? job.events}`;
    if (job.status === "failed") throw new ApiError("problem", job.error?.status || 500, job.error);
    const rep = job.report;
    const summary = h("p", {}, t("audit.summary", {
      releases: rep.releases + rep.emergency_releases, grants: rep.grants, log: rep.log_entries, cps: rep.checkpoints,
      sigs: rep.signatures_checked,
    }), ` · ${t("col.block")} ${rep.from_block}–${rep.to_block}`);
    const txLink = (tx) => h("a", { href: `#`, onclick: (e) => { e.preventDefault(); showTx(tx); } }, short(tx));
    const relocated = rep.relocated || [];
    const moved = relocated.length
      ? h("div", { class: "msg", role: "note", id: "verify-relocated" }, t("audit.relocated", { n: relocated.length }),
        h("ul", {}, relocated.map((r) => h("li", {},
          t("audit.relocatedItem", { entry: r.log_index, logged: r.logged_block, chain: r.chain_block }), " ", txLink(r.tx_hash)))))
      : "";
    if (rep.ok) {
      $("verify-out").replaceChildren(h("div", { class: "msg msg-ok", role: "status", id: "verify-result", "data-ok": "true" }, t("audit.ok")), summary, moved);
    } else {
      $("verify-out").replaceChildren(
        h("div", { class: "msg msg-error", role: "alert", id: "verify-result", "data-ok": "false" }, `${t("audit.violations")}: ${rep.violations.length}`),
        summary,
        moved,
        h("ul", {}, rep.violations.map((v) => h("li", {}, `#${v.check} ${v.code}: ${v.detail} `, v.tx_hash ? txLink(v.tx_hash) : ""))),
      );
    }
  });
  button.disabled = false;
}

function showTx(txHash) {
  const rows = document.querySelectorAll(`[data-tx="${txHash}"]`);
  for (const r of document.querySelectorAll("tr.highlight")) r.classList.remove("highlight");
  for (const r of rows) r.classList.add("highlight");
  if (rows[0]) rows[0].scrollIntoView({ block: "center" });
  else notify(txHash, "info");
}

// ---- inclusion proofs (RFC 9162 §2.1.3.2) ------------------------------------------------------
const nodeHash = (l, r) => sha256(new Uint8Array([1]), l, r);

async function rootFromPath(leafIndex, treeSize, leaf, path) {
  let fn = BigInt(leafIndex);
  let sn = BigInt(treeSize) - 1n;
  let r = await sha256(new Uint8Array([0]), leaf);
  for (const p of path.map(hexBytes)) {
    if (sn === 0n) return null;
    if ((fn & 1n) === 1n || fn === sn) {
      r = await nodeHash(p, r);
      while ((fn & 1n) === 0n && fn !== 0n) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      r = await nodeHash(r, p);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  return sn === 0n ? ethers.hexlify(r) : null;
}

async function checkProof(releaseId) {
  $("proof-out").replaceChildren();
  const checkpoints = await api("GET", "/v1/audit/checkpoints");
  const latest = checkpoints.at(-1);
  const first = await api("GET", `/v1/audit/proofs/inclusion?release_id=${releaseId}`);
  if (!latest || latest.tree_size <= first.leaf_index) throw new LocalError("audit.noCheckpoint");
  const proof = await api("GET", `/v1/audit/proofs/inclusion?release_id=${releaseId}&tree_size=${latest.tree_size}`);
  const entry = b64decode(proof.entry);
  const computed = await rootFromPath(proof.leaf_index, proof.tree_size, entry, proof.audit_path);
  const ok = computed !== null && computed === latest.root_hash.toLowerCase() && proof.tree_size === latest.tree_size;
  const text = new TextDecoder().decode(entry);
  const receipt = JSON.parse(text.slice(text.indexOf("\n") + 1));
  const ownId = receipt.release_id.toLowerCase() === releaseId.toLowerCase();
  $("proof-out").replaceChildren(
    h("div", { class: `msg ${ok && ownId ? "msg-ok" : "msg-error"}`, role: ok && ownId ? "status" : "alert", id: "proof-result", "data-ok": String(ok && ownId) },
      t(ok && ownId ? "audit.proofOk" : "audit.proofBad")),
    h("dl", { class: "receipt" },
      h("dt", {}, t("col.time")), h("dd", {}, when(receipt.released_at)),
      h("dt", {}, t("col.department")), h("dd", {}, who(receipt.grantee)),
      h("dt", {}, t("col.subject")), h("dd", {}, who(receipt.subject)),
      h("dt", {}, t("col.resource")), h("dd", {}, resourceName(receipt.resource)),
      h("dt", {}, t("col.tx")), h("dd", {}, short(receipt.tx_hash)),
      h("dt", {}, t("audit.leaf")), h("dd", {}, `${proof.leaf_index} / ${t("audit.size")} ${proof.tree_size}`),
      h("dt", {}, t("audit.anchored")), h("dd", {}, short(latest.root_hash), " · ", when(latest.anchored_at), " · ", short(latest.tx_hash)),
      h("dt", {}, t("audit.root")), h("dd", {}, computed ? short(computed) : "—"),
    ),
  );
}

// ---- charts ------------------------------------------------------------------------------------
function bars(title, rows) {
  const peak = Math.max(1, ...rows.map(([, v]) => v));
  return h("figure", {}, h("figcaption", {}, h("strong", {}, title)),
    rows.length ? h("div", { class: "chart", role: "list" }, rows.map(([label, value, text]) => {
      const fill = h("span", { class: "fill" });
      fill.style.width = `${(100 * value) / peak}%`;
      return h("div", { class: "bar", role: "listitem" }, h("span", {}, label), h("span", {}, fill), h("span", {}, text ?? String(value)));
    })) : h("p", { class: "empty" }, t("common.none")));
}

async function drawCharts() {
  const day = (s) => new Intl.DateTimeFormat("en-CA", { timeZone: "Asia/Shanghai" }).format(new Date(s * 1000));
  const perDay = new Map();
  for (const r of reportReleases) {
    const key = `${day(r.released_at)} · ${r.grantee_name || r.grantee.slice(0, 10)}`;
    perDay.set(key, (perDay.get(key) || 0) + 1);
  }
  const [grants, corrections] = await Promise.all([api("GET", "/v1/grants?limit=500"), api("GET", "/v1/corrections?limit=500")]);
  const byStatus = new Map();
  for (const g of grants.items) byStatus.set(g.status, (byStatus.get(g.status) || 0) + 1);
  const perProvider = new Map();
  for (const c of corrections.items.filter((x) => x.status !== "open")) {
    const p = perProvider.get(c.issuer) || { done: 0, onTime: 0 };
    p.done += 1;
    if (!c.late) p.onTime += 1;
    perProvider.set(c.issuer, p);
  }
  const providerRows = await Promise.all([...perProvider].map(async ([issuer, p]) => {
    const label = who(issuer);
    return [label, Math.round((100 * p.onTime) / p.done), `${p.onTime}/${p.done} (${Math.round((100 * p.onTime) / p.done)}%)`];
  }));
  $("charts").replaceChildren(
    bars(t("audit.perDay"), [...perDay].sort()),
    bars(t("audit.byStatus"), [...byStatus].map(([s, n]) => [t(`status.${s}`), n])),
    bars(t("audit.onTime"), providerRows),
  );
}
loaders.charts = async () => drawCharts();

async function loadAll() {
  await guarded(async () => {
    await loadCatalog();
    const select = $("f-resource");
    const chosen = select.value;
    select.replaceChildren(h("option", { value: "" }, t("audit.any")), ...catalog().map((r) => h("option", { value: r.resource }, r.name)));
    select.value = chosen;
    await loaders.trail();
    await loaders.releases();
  });
}

start();
setupSignIn(loadAll);
for (const button of document.querySelectorAll("[data-refresh]")) {
  button.addEventListener("click", () => guarded(loaders[button.dataset.refresh]));
}
$("filters").addEventListener("submit", (e) => {
  e.preventDefault();
  guarded(async () => {
    await loaders.trail();
    await loaders.releases();
  });
});
$("verify").addEventListener("click", runVerification);
$("proof-form").addEventListener("submit", (e) => {
  e.preventDefault();
  guarded(() => checkProof($("proof-id").value.trim()));
});
onLanguage(() => session.token && loadAll());
