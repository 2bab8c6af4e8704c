// 我的数据: a citizen's or an enterprise's documents, grants, access requests, data-use timeline,
// corrections, and a one-time QR grant (SPEC §9.6).
import {
  $, api, b64urlEncode, badge, catalog, countdown, ethers, guarded, h, lang, loadCatalog, notify, now, onLanguage,
  purposeName, purposes, randomUint256, resourceName, session, setupSignIn, short, signed, start, t, table, when, who,
} from "/static/js/common.js";

const GRANT_BADGE = { active: "ok", paused: "warn", revoked: "bad", expired: "muted", exhausted: "muted", not_yet_valid: "muted" };
const loaders = {};

// ---- documents and corrections -----------------------------------------------------------------
loaders.docs = async () => {
  const docs = (await api("GET", "/v1/documents?limit=500")).items;
  const openCorrections = new Set(
    (await api("GET", "/v1/corrections?status=open&limit=500")).items.map((c) => c.document_id),
  );
  $("docs").replaceChildren(
    table(
      ["col.resource", "col.issuer", "col.date", "col.commitment", "col.state", "col.actions"],
      docs.map((d) => ({
        attrs: { "data-document": d.document_id },
        cells: [
          resourceName(d.resource),
          who(d.issuer),
          when(d.issued_at, { date: true }),
          short(d.commitment),
          badge(d.state === "current" ? "ok" : "muted", d.state === "superseded" ? "my.superseded" : `state.${d.state}`),
          d.state === "current" && d.issuer.toLowerCase() !== session.address.toLowerCase() && !openCorrections.has(d.document_id)
            ? correctionButton(d)
            : "",
        ],
      })),
    ),
  );
};

function correctionButton(doc) {
  const cell = h("div", {});
  const button = h("button", { type: "button", onclick: () => {
    button.hidden = true;
    const claim = h("textarea", { rows: 2, required: true, maxlength: 2000, "aria-label": t("my.claim") });
    const form = h("form", { class: "inline-form", onsubmit: (e) => {
      e.preventDefault();
      guarded(async () => {
        await api("POST", "/v1/corrections", { document_id: doc.document_id, claim: claim.value });
        notify(t("my.correctionOpened"));
        await Promise.all([loaders.docs(), loaders.corrections()]);
      });
    } }, h("label", {}, t("my.claim"), claim), h("button", { type: "submit", class: "primary" }, t("common.submit")));
    cell.append(form);
  } }, t("act.correct"));
  cell.append(button);
  return cell;
}

loaders.corrections = async () => {
  const items = (await api("GET", "/v1/corrections?limit=500")).items;
  $("corrections").replaceChildren(
    table(
      ["col.resource", "col.issuer", "col.claim", "col.status", "col.due"],
      items.map((c) => ({
        cells: [
          resourceName(c.resource),
          who(c.issuer),
          c.claim,
          h("span", {}, badge(c.status === "open" ? "warn" : c.status === "corrected" ? "ok" : "bad", `status.${c.status}`),
            c.reason ? ` ${c.reason}` : ""),
          c.status === "open" ? h("span", {}, when(c.due_at), " · ", countdown(c.due_at))
            : h("span", {}, when(c.resolved_at), c.late ? h("span", { class: "late" }, ` ${t("my.late")}`) : ""),
        ],
      })),
    ),
  );
};

// ---- grants ------------------------------------------------------------------------------------
loaders.grants = async () => {
  const items = (await api("GET", `/v1/grants?subject=${session.address}&limit=500`)).items;
  $("grants").replaceChildren(
    table(
      ["col.grantee", "col.resource", "col.purpose", "col.valid", "col.uses", "col.status", "col.actions"],
      items.map((g) => ({
        attrs: { "data-grant": g.grant_id, "data-status": g.status },
        cells: [
          who(g.grantee),
          g.resources.map((r) => resourceName(r)).flatMap((n, i) => (i ? ["、", n] : [n])),
          purposeName(g.purpose),
          h("span", {}, when(g.validFrom, { date: true }), " – ", when(g.validUntil, { date: true })),
          `${g.uses} / ${g.maxUses || "∞"}`,
          badge(GRANT_BADGE[g.status] || "muted", `status.${g.status}`),
          grantActions(g),
        ],
      })),
    ),
  );
};

function grantActions(g) {
  const box = h("div", { class: "actions" });
  const run = (button, fn) => async () => {
    for (const b of box.querySelectorAll("button")) b.disabled = true;
    await guarded(fn);
    for (const b of box.querySelectorAll("button")) b.disabled = false;
    await guarded(loaders.grants);
  };
  if (g.status === "active" || g.status === "not_yet_valid") {
    const b = h("button", { type: "button", "data-action": "pause" }, t("act.pause"));
    b.addEventListener("click", run(b, () => setPaused(g.grant_id, true)));
    box.append(b);
  }
  if (g.status === "paused") {
    const b = h("button", { type: "button", "data-action": "resume" }, t("act.resume"));
    b.addEventListener("click", run(b, () => setPaused(g.grant_id, false)));
    box.append(b);
  }
  if (!["revoked", "expired"].includes(g.status)) {
    const b = h("button", { type: "button", class: "danger", "data-action": "revoke" }, t("act.revoke"));
    b.addEventListener("click", () => {
      if (!confirm(t("my.confirmRevoke"))) return;
      run(b, () => revoke(g.grant_id))();
    });
    box.append(b);
  }
  return box;
}

async function setPaused(grantId, paused) {
  const detail = await api("GET", `/v1/grants/${grantId}`);
  const body = await signed("SetPaused", {
    grantId, paused, sequence: detail.pause_sequence + 1, nonce: randomUint256(), deadline: String(now() + 600),
  });
  await api("POST", `/v1/grants/${grantId}/pause`, body);
  notify(t(paused ? "my.paused" : "my.resumed"));
}

async function revoke(grantId) {
  const body = await signed("Revoke", { grantId, nonce: randomUint256(), deadline: String(now() + 600) });
  await api("POST", `/v1/grants/${grantId}/revoke`, body);
  notify(t("my.revoked"));
}

// ---- access requests ---------------------------------------------------------------------------
const DURATIONS = [["dur.asked", 0], ["dur.1d", 86400], ["dur.7d", 7 * 86400], ["dur.30d", 30 * 86400], ["dur.90d", 90 * 86400]];

loaders.requests = async () => {
  const items = (await api("GET", "/v1/access-requests?status=pending&limit=500")).items
    .filter((r) => r.subject.toLowerCase() === session.address.toLowerCase());
  $("requests").replaceChildren(
    table(
      ["col.consumer", "col.resource", "col.purpose", "col.valid", "col.actions"],
      items.map((r) => ({
        attrs: { "data-request": r.id },
        cells: [
          h("span", {}, who(r.consumer), r.note ? h("div", { class: "hint" }, r.note) : ""),
          r.resources.map((c) => resourceName(c)).flatMap((n, i) => (i ? ["、", n] : [n])),
          (lang() === "en" ? r.purpose_name_en : r.purpose_name_zh) || r.purpose,
          h("span", {}, t("my.asked", { days: Math.round(r.valid_for / 86400), uses: r.max_uses || "∞" }), h("br"),
            t("my.expires"), " ", when(r.expires_at)),
          answerForm(r),
        ],
      })),
    ),
  );
};

function answerForm(r) {
  const duration = h("select", { "aria-label": t("my.duration") },
    DURATIONS.map(([k, v]) => h("option", { value: String(v) }, t(k))));
  const uses = h("input", { type: "number", min: "0", value: String(r.max_uses), "aria-label": t("my.usesLabel") });
  const reason = h("input", { "aria-label": t("my.reason"), placeholder: t("my.reason"), maxlength: 1000 });
  const approve = h("button", { type: "button", class: "primary", "data-action": "approve" }, t("act.approve"));
  const refuse = h("button", { type: "button", class: "danger", "data-action": "refuse" }, t("act.refuse"));
  approve.addEventListener("click", () => guarded(async () => {
    const start = now() - 60;
    const validFor = Number(duration.value) || r.valid_for;
    const message = {
      subject: session.address,
      grantee: ethers.getAddress(r.consumer),
      resources: r.resources.map((code) => ethers.id(code)),
      purpose: r.purpose_id,
      validFrom: start, validUntil: start + validFor, maxUses: Number(uses.value) || 0,
      nonce: randomUint256(), deadline: String(now() + 600),
    };
    await api("POST", `/v1/access-requests/${r.id}/answer`, { decision: "grant", grant: await signed("Grant", message) });
    notify(t("my.approved"));
    await Promise.all([loaders.requests(), loaders.grants()]);
  }));
  refuse.addEventListener("click", () => guarded(async () => {
    await api("POST", `/v1/access-requests/${r.id}/answer`, { decision: "reject", reason: reason.value || null });
    notify(t("my.refusedOk"));
    await loaders.requests();
  }));
  return h("div", { class: "inline-form" },
    h("label", {}, t("my.duration"), duration), h("label", {}, t("my.usesLabel"), uses), approve,
    h("label", {}, t("my.reason"), reason), refuse);
}

// ---- who used my data --------------------------------------------------------------------------
loaders.timeline = async () => {
  const items = (await api("GET", `/v1/subjects/${session.address}/access-log?limit=500`)).items.reverse();
  if (!items.length) {
    $("timeline").replaceChildren(h("p", { class: "empty" }, t("common.none")));
    return;
  }
  $("timeline").replaceChildren(h("ol", { class: "timeline" }, items.map((e) => {
    const li = h("li", { class: e.kind === "emergency" ? "emergency" : "" },
      when(e.released_at), " · ", h("strong", {}, who(e.grantee)), " · ", resourceName(e.resource), " · ",
      e.kind === "emergency" ? badge("bad", "my.emergency") : h("span", {}, badge("ok", "my.viaGrant"), " ", purposeName(e.purpose)));
    if (e.kind === "emergency") {
      api("GET", `/v1/emergencies/${e.authority}`).then((em) => {
        if (em?.reason_text) li.append(h("div", {}, `${t("my.reasonLabel")}: ${em.reason_text}`));
      }).catch(() => {});
    }
    return li;
  })));
};

// ---- QR grant (SPEC §9.6) ----------------------------------------------------------------------
function fillQrForm() {
  $("qr-resources").replaceChildren(...catalog().map((r) => h("label", {},
    h("input", { type: "checkbox", name: "resource", value: r.resource }), ` ${r.name}`)));
  $("qr-purpose").replaceChildren(...purposes().map((p) => h("option", { value: p.purpose }, lang() === "en" ? p.name_en : p.name_zh)));
}

async function makeQr(event) {
  event.preventDefault();
  await guarded(async () => {
    const resources = [...document.querySelectorAll("#qr-resources input:checked")].map((i) => i.value);
    if (!resources.length) throw new Error(t("my.qrResources"));
    const hours = Math.min(24, Math.max(1, Number($("qr-hours").value)));
    const start = now() - 60;
    const message = {
      subject: session.address, grantee: ethers.getAddress($("qr-grantee").value.trim()), resources,
      purpose: $("qr-purpose").value, validFrom: start, validUntil: start + hours * 3600 - 60,
      maxUses: Math.max(1, Number($("qr-uses").value)), nonce: randomUint256(), deadline: String(now() + hours * 3600),
    };
    const text = `qcl-grant:${b64urlEncode(JSON.stringify(await signed("Grant", message)))}`;
    const { default: qrcode } = await import("/static/vendor/qrcode.mjs");
    const qr = qrcode(0, "L");
    qr.addData(text);
    qr.make();
    $("qr-out").replaceChildren(h("div", { class: "qr" },
      h("img", { src: qr.createDataURL(4, 0), alt: t("my.qr") }),
      h("div", {}, h("p", {}, t("my.qrHint")),
        h("label", {}, t("my.qrText"), h("textarea", { id: "qr-text", rows: 4, readonly: true }, text)))));
  });
}

// ---- page --------------------------------------------------------------------------------------
async function loadAll() {
  await guarded(async () => {
    await loadCatalog();
    fillQrForm();
    await Promise.all(Object.values(loaders).map((fn) => fn()));
  });
}

start();
setupSignIn(loadAll);
for (const button of document.querySelectorAll("[data-refresh]")) {
  button.addEventListener("click", () => guarded(loaders[button.dataset.refresh]));
}
$("qr-form").addEventListener("submit", makeQr);
onLanguage(() => session.token && loadAll());
