// The department desk: grants held and what is left of them, releases (requested and opened here
// with the department's HPKE key, SPEC §4), a QR relay (SPEC §9.6), access requests made, demands.
import {
  $, LocalError, api, b64decode, b64urlDecode, badge, countdown, ethers, guarded, h, hexBytes, lang, loadCatalog,
  notify, now, onLanguage, purposeName, resourceName, session, setupSignIn, sha256, short, signed, start, t, table,
  when, who,
} from "/static/js/common.js";

const GRANT_BADGE = { active: "ok", paused: "warn", revoked: "bad", expired: "muted", exhausted: "muted", not_yet_valid: "muted" };
const loaders = {};
let hpkeKey = null; // the department's X25519 private key bytes, in memory only
const opened = new Map(); // release id -> opened text

// Releases this browser requested: ids only (no content, no key), so they can be fetched again.
function knownReleases() {
  try {
    return JSON.parse(localStorage.getItem(`qcl.releases.${session.address}`) || "[]");
  } catch {
    return [];
  }
}
function remember(entry) {
  const list = knownReleases().filter((r) => r.release_id !== entry.release_id);
  list.unshift(entry);
  localStorage.setItem(`qcl.releases.${session.address}`, JSON.stringify(list.slice(0, 200)));
}
const answers = new Map(); // release id -> the API's answer (sealed document)

// ---- grants ------------------------------------------------------------------------------------
loaders.grants = async () => {
  const items = (await api("GET", `/v1/grants?grantee=${session.address}&limit=500`)).items;
  $("grants").replaceChildren(
    table(
      ["col.subject", "col.resource", "col.purpose", "col.valid", "col.left", "col.status", "col.actions"],
      items.map((g) => ({
        attrs: { "data-grant": g.grant_id, "data-status": g.status },
        cells: [
          who(g.subject),
          g.resources.map((r) => resourceName(r)).flatMap((n, i) => (i ? ["、", n] : [n])),
          purposeName(g.purpose),
          h("span", {}, when(g.validFrom), " – ", when(g.validUntil)),
          g.maxUses ? `${g.maxUses - g.uses} / ${g.maxUses}` : t("desk.unlimited"),
          badge(GRANT_BADGE[g.status] || "muted", `status.${g.status}`),
          g.status === "active"
            ? h("div", { class: "actions" }, g.resources.map((r) => h("button", {
                type: "button", "data-action": "release", onclick: () => guarded(() => requestRelease(g, r)),
              }, `${t("act.release")} ${resourceName(r).textContent ?? resourceName(r)}`)))
            : "",
        ],
      })),
    ),
  );
};

async function requestRelease(grant, resource) {
  const requestId = ethers.hexlify(ethers.randomBytes(32));
  const body = await signed("ReleaseRequest", {
    grantId: grant.grant_id, resource, requestId, deadline: String(now() + 600),
  });
  const answer = await api("POST", "/v1/releases", body);
  answers.set(answer.release_id, answer);
  remember({ release_id: answer.release_id, grant_id: grant.grant_id, request_id: requestId, subject: grant.subject, at: now() });
  notify(t("desk.released"));
  await Promise.all([loaders.releases(), loaders.grants()]);
}

// ---- releases ----------------------------------------------------------------------------------
loaders.releases = async () => {
  const list = knownReleases();
  $("releases").replaceChildren(
    table(
      ["col.subject", "col.resource", "col.time", "col.commitment", "col.actions"],
      list.map((r) => {
        const answer = answers.get(r.release_id);
        const content = opened.get(r.release_id);
        return {
          attrs: { "data-release": r.release_id },
          cells: [
            who(r.subject),
            answer ? resourceName(answer.document.resource) : short(r.release_id),
            when(r.at),
            answer ? short(answer.document.commitment) : "",
            content !== undefined
              ? h("div", {}, badge("ok", "desk.opened"), h("pre", { class: "content", "aria-label": t("desk.content") }, content))
              : h("button", { type: "button", "data-action": "open", onclick: () => guarded(() => openRelease(r)) }, t("act.open")),
          ],
        };
      }),
    ),
  );
};

async function openRelease(entry) {
  if (!hpkeKey) throw new LocalError("err.hpkefile");
  let answer = answers.get(entry.release_id);
  if (!answer) {
    answer = await api("GET", `/v1/releases/${entry.release_id}`);
    answers.set(entry.release_id, answer);
  }
  const { Aes256Gcm, CipherSuite, DhkemX25519HkdfSha256, HkdfSha256 } = await import("/static/vendor/hpke/core/mod.js");
  const suite = new CipherSuite({ kem: new DhkemX25519HkdfSha256(), kdf: new HkdfSha256(), aead: new Aes256Gcm() });
  const sealed = b64decode(answer.sealed);
  const info = ethers.concat([ethers.toUtf8Bytes("quanchenglian/release/v1"), entry.grant_id, entry.request_id]);
  let content;
  try {
    const recipientKey = await suite.kem.importKey("raw", hpkeKey.buffer, false);
    content = new Uint8Array(await suite.open(
      { recipientKey, enc: sealed.slice(0, 32).buffer, info: ethers.getBytes(info).buffer }, sealed.slice(32).buffer,
    ));
  } catch (err) {
    console.error(err);
    throw new LocalError("err.open");
  }
  const computed = ethers.hexlify(await sha256(hexBytes(answer.document.salt), content));
  if (computed !== answer.document.commitment.toLowerCase()) throw new LocalError("err.commit");
  let text;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(content);
  } catch {
    text = `${content.length} bytes`;
  }
  opened.set(entry.release_id, text);
  notify(t("desk.opened"));
  await loaders.releases();
}

function loadHpkeKey(event) {
  guarded(async () => {
    const file = event.target.files[0];
    event.target.value = "";
    if (!file) return;
    const text = (await file.text()).trim().replace(/^0x/, "");
    if (!/^[0-9a-fA-F]{64}$/.test(text)) throw new LocalError("err.hpkefile");
    hpkeKey = ethers.getBytes(`0x${text}`);
    $("hpke-state").textContent = t("desk.keyLoaded");
    $("hpke-state").dataset.i18n = "desk.keyLoaded";
  });
}

// ---- QR relay ----------------------------------------------------------------------------------
async function relay(event) {
  event.preventDefault();
  await guarded(async () => {
    const text = $("relay-text").value.trim();
    if (!text.startsWith("qcl-grant:")) throw new LocalError("err.qr");
    let body;
    try {
      body = JSON.parse(b64urlDecode(text.slice("qcl-grant:".length)));
    } catch {
      throw new LocalError("err.qr");
    }
    const answer = await api("POST", "/v1/grants", body);
    const m = body.message;
    $("relay-out").replaceChildren(h("div", { class: "msg msg-ok", role: "status", "data-grant": answer.grant_id },
      `${t("desk.relayed")}: `, who(m.subject), " · ", ...m.resources.map((r) => resourceName(r)), " · ",
      purposeName(m.purpose), " · ", short(answer.grant_id)));
    $("relay-text").value = "";
    await loaders.grants();
  });
}

async function scan() {
  if (!("BarcodeDetector" in window) || !navigator.mediaDevices) {
    notify(t("desk.camera"), "info");
    return;
  }
  await guarded(async () => {
    const video = $("scan-video");
    const stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" } });
    video.srcObject = stream;
    video.hidden = false;
    await video.play();
    const detector = new window.BarcodeDetector({ formats: ["qr_code"] });
    const stop = () => { stream.getTracks().forEach((tr) => tr.stop()); video.hidden = true; };
    const deadline = Date.now() + 60000;
    while (Date.now() < deadline) {
      const codes = await detector.detect(video);
      const hit = codes.find((c) => c.rawValue.startsWith("qcl-grant:"));
      if (hit) {
        stop();
        $("relay-text").value = hit.rawValue;
        return;
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    stop();
  });
}

// ---- access requests and demands ---------------------------------------------------------------
const REQ_BADGE = { pending: "warn", granted: "ok", rejected: "bad", expired: "muted", withdrawn: "muted" };
loaders.requests = async () => {
  const items = (await api("GET", "/v1/access-requests?limit=500")).items
    .filter((r) => r.consumer.toLowerCase() === session.address.toLowerCase());
  $("requests").replaceChildren(table(
    ["col.subject", "col.resource", "col.purpose", "col.status", "col.time"],
    items.map((r) => ({ cells: [
      who(r.subject),
      r.resources.map((c) => resourceName(c)).flatMap((n, i) => (i ? ["、", n] : [n])),
      (lang() === "en" ? r.purpose_name_en : r.purpose_name_zh) || r.purpose,
      h("span", {}, badge(REQ_BADGE[r.status] || "muted", `status.${r.status}`), r.reason ? ` ${r.reason}` : ""),
      when(r.created_at),
    ] })),
  ));
};

const DEMAND_BADGE = { open: "warn", confirmed: "ok", refused: "bad", published: "ok" };
loaders.demands = async () => {
  const items = (await api("GET", "/v1/demands?limit=500")).items;
  $("demands").replaceChildren(table(
    ["col.title", "col.provider", "col.status", "desk.confirmBy", "desk.publishBy"],
    items.map((d) => ({ cells: [
      h("span", {}, h("strong", {}, d.title), h("div", { class: "hint" }, d.description)),
      who(d.provider),
      h("span", {}, badge(DEMAND_BADGE[d.status], `status.${d.status}`), d.late ? h("span", { class: "late" }, ` ${t("my.late")}`) : ""),
      h("span", {}, when(d.confirm_by), d.status === "open" ? h("div", {}, countdown(d.confirm_by)) : ""),
      h("span", {}, when(d.publish_by), ["open", "confirmed"].includes(d.status) ? h("div", {}, countdown(d.publish_by)) : ""),
    ] })),
  ));
};

async function loadAll() {
  await guarded(async () => {
    await loadCatalog();
    await Promise.all(Object.values(loaders).map((fn) => fn()));
  });
}

start();
setupSignIn(loadAll);
for (const button of document.querySelectorAll("[data-refresh]")) {
  button.addEventListener("click", () => guarded(loaders[button.dataset.refresh]));
}
$("hpke-file").addEventListener("change", loadHpkeKey);
$("relay-form").addEventListener("submit", relay);
$("scan").addEventListener("click", scan);
onLanguage(() => session.token && loadAll());
