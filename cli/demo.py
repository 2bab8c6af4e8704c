"""``qcl demo``: a realistic demo on the dev deployment (synthetic data only), through the API."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
from cryptography.hazmat.primitives.asymmetric import x25519
from eth_account import Account

from api.runtime import dev_accounts
from chain_client.ids import purpose_id, resource_id
from qcl_client import ApiError, QclClient, open_release

from . import _common
from ._common import (
    DEFAULT_API,
    DEFAULT_DATA_DIR,
    DEMO_FILE,
    AdminKeyOpt,
    ApiOpt,
    DataDirOpt,
    _admin,
    _fail,
    _guard,
    _is_dev_deployment,
    _public_hex,
    _read_json,
    _row,
    _say,
    _table,
    _write_json,
    _write_private,
    out,
)
from .qr import demo_scan_to_authorise

demo_app = typer.Typer(help="A realistic demo on the dev deployment (synthetic data only).", no_args_is_help=True)

# ---- qcl demo ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoMember:
    slug: str
    name: str
    roles: tuple[str, ...]
    org_code: str | None = None

    @property
    def consumer(self) -> bool:
        return "CONSUMER" in self.roles


#: The demo's organisations and people; every name and code is synthetic (DEMO- prefixed codes).
DEMO_MEMBERS = (
    DemoMember("psb", "Jinan Municipal Public Security Bureau", ("PROVIDER",), "DEMO-370100-PSB"),
    DemoMember("hpf", "Jinan Housing Provident Fund Management Center", ("PROVIDER", "CONSUMER"), "DEMO-370100-HPF"),
    DemoMember("tax", "Jinan Municipal Tax Service, STA", ("PROVIDER", "CONSUMER"), "DEMO-370100-TAX"),
    DemoMember("amr", "Jinan Administration for Market Regulation", ("PROVIDER",), "DEMO-370100-AMR"),
    DemoMember("nrp", "Jinan Municipal Bureau of Natural Resources and Planning", ("PROVIDER",), "DEMO-370100-NRP"),
    DemoMember("hrss", "Jinan Municipal Human Resources and Social Security Bureau", ("PROVIDER",), "DEMO-370100-HRS"),
    DemoMember("audit", "Jinan Municipal Audit Bureau", ("AUDITOR",), "DEMO-370100-AUD"),
    DemoMember("zhang", "Zhang San (demo citizen)", ("SUBJECT",)),
    DemoMember("li", "Li Si (demo citizen)", ("SUBJECT",)),
    DemoMember("wang", "Wang Wu (demo citizen)", ("SUBJECT",)),
    DemoMember("quancheng", "Quancheng Demo Technology Co., Ltd.", ("SUBJECT",), "DEMO-91370100-QCT"),
)
MEMBERS_BY_SLUG = {m.slug: m for m in DEMO_MEMBERS}

#: code -> (name, provider slug, sensitivity)
DEMO_CATALOG = {
    "id_card": ("Resident identity card", "psb", 3),
    "household_register": ("Household register (hukou) record", "psb", 3),
    "business_license": ("Business licence", "amr", 2),
    "real_estate_cert": ("Real estate title certificate", "nrp", 3),
    "social_insurance": ("Social insurance contribution record", "hrss", 3),
    "tax_record": ("Tax payment record", "tax", 2),
    "provident_fund": ("Housing provident fund account statement", "hpf", 2),
}

#: (subject, resource): each issued into the subject's box by the resource's provider.
DEMO_DOCUMENTS = (
    ("zhang", "id_card"),
    ("zhang", "household_register"),
    ("zhang", "social_insurance"),
    ("zhang", "provident_fund"),
    ("li", "id_card"),
    ("li", "tax_record"),
    ("li", "social_insurance"),
    ("wang", "id_card"),
    ("wang", "household_register"),
    ("wang", "real_estate_cert"),
    ("quancheng", "business_license"),
    ("quancheng", "tax_record"),
)


@dataclass(frozen=True)
class DemoGrant:
    subject: str
    grantee: str
    resources: tuple[str, ...]
    purpose: str
    max_uses: int
    valid_days: int


DEMO_GRANTS = (
    DemoGrant("zhang", "hpf", ("id_card", "household_register", "provident_fund"), "provident-fund-loan", 10, 90),
    DemoGrant("li", "hpf", ("id_card", "tax_record"), "provident-fund-withdrawal", 5, 30),
    DemoGrant("wang", "hpf", ("id_card", "real_estate_cert"), "housing-purchase-withdrawal", 5, 30),
    DemoGrant("quancheng", "tax", ("business_license",), "tax-registration", 0, 365),
)
#: The one release the demo performs: the fund center reads Zhang San's identity card.
DEMO_RELEASE = (0, "id_card")


def demo_document(subject: str, code: str) -> bytes:
    """The synthetic, PDF-like content of a demo document (deterministic; no real personal data)."""
    name, provider, _ = DEMO_CATALOG[code]
    serial = f"DEMO-{code.upper()}-{subject.upper()}-0001"
    lines = [
        "%PDF-1.7",
        "% Quanchenglian demo document: SYNTHETIC, not a real record",
        "1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj",
        f"% document: {name} ({code})",
        f"% holder: {MEMBERS_BY_SLUG[subject].name}",
        f"% issued by: {MEMBERS_BY_SLUG[provider].name}",
        f"% serial: {serial}",
        "%%EOF",
        "",
    ]
    return "\n".join(lines).encode()


def _load_demo(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    data = _read_json(path, "the demo file")
    if not isinstance(data, dict) or not isinstance(data.get("accounts", {}), dict):
        _fail(f"{path} is not a demo accounts file; move it away to start a new demo")
    return data


def _demo_accounts(existing: dict[str, Any], hpke_dir: Path, path: Path) -> dict[str, dict[str, Any]]:
    """Reuse the accounts of an earlier run; create what is missing (keys only, nothing on chain)."""
    accounts: dict[str, dict[str, Any]] = {}
    for member in DEMO_MEMBERS:
        old = existing.get(member.slug) or {}
        key = old.get("private_key") or "0x" + bytes(Account.create().key).hex()
        hpke_hex = old.get("hpke_private_key") or x25519.X25519PrivateKey.generate().private_bytes_raw().hex()
        try:
            address = Account.from_key(key).address
            hpke = x25519.X25519PrivateKey.from_private_bytes(bytes.fromhex(hpke_hex.removeprefix("0x")))
        except (ValueError, TypeError, AttributeError):
            _fail(f"{path}: the keys of {member.slug!r} are damaged; move the file away to start a new demo")
        entry: dict[str, Any] = {
            "name": member.name,
            "roles": list(member.roles),
            "org_code": member.org_code,
            "address": address,
            "private_key": key,
        }
        if member.consumer:
            entry.update(
                hpke_private_key=hpke_hex,
                hpke_public_key=_public_hex(hpke),
                hpke_key_file=str(hpke_dir / f"{member.slug}.hpke"),
            )
        accounts[member.slug] = entry
    return accounts


def _is_member(client: QclClient, address: str) -> bool:
    try:
        client.call("GET", f"/v1/members/{address}")
    except ApiError as exc:
        if exc.code != "member_not_found":
            raise
        return False
    return True


def _dev_auditor(api: str, data_dir: Path) -> QclClient:
    """The dev deployment's first AUDITOR (``auditor`` of accounts.json), to co-sign enrolments."""
    accounts = data_dir / "accounts.json"
    try:
        auditor = dev_accounts(accounts).auditor
    except (OSError, ValueError, KeyError) as exc:
        _fail(f"cannot read the dev auditor key from {accounts}: {exc}")
    if auditor is None:
        _fail(f"{accounts} holds no auditor")
    return _common._connect(api, "0x" + bytes(auditor.key).hex())


@demo_app.command("seed")
def demo_seed(api: ApiOpt = DEFAULT_API, key: AdminKeyOpt = None, data_dir: DataDirOpt = DEFAULT_DATA_DIR) -> None:
    """Seed the dev deployment with a demo: departments, auditor, citizens, catalog, documents, grants, a release.

    Writes every demo account's key (and the departments' HPKE keys) to <data-dir>/demo-accounts.json
    (mode 0600). Running it again reuses those accounts and skips what exists.
    """
    admin, admin_from_dev = _admin(api, key, data_dir)
    with _guard(api):
        if not _is_dev_deployment(admin, data_dir):
            _fail(f"`demo seed` runs only against the dev deployment of {data_dir}; {api} serves another one")
        health = admin.call("GET", "/health")
    demo_path = data_dir / DEMO_FILE
    hpke_dir = data_dir / "demo-hpke"
    previous = _load_demo(demo_path)
    accounts = _demo_accounts(previous.get("accounts", {}), hpke_dir, demo_path)
    bureau: dict[str, Any] = {"name": "Jinan Big Data Bureau (platform operator)", "roles": ["ADMIN"]}
    bureau["address"] = admin.address
    if admin_from_dev:
        bureau["private_key"] = "0x" + bytes(admin.account.key).hex()
    demo: dict[str, Any] = {
        "about": "Quanchenglian demo accounts: synthetic people and organisations, keys for the dev chain only",
        "api": api,
        "chain_id": health.get("chain_id"),
        "contracts": health.get("contracts"),
        "accounts": {"bureau": bureau, **accounts},
        "documents": previous.get("documents", []),
        "grants": previous.get("grants", []),
        "release": previous.get("release"),
    }
    try:
        hpke_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        _fail(f"cannot create {hpke_dir}: {exc.strerror}")
    for slug, entry in accounts.items():
        if "hpke_private_key" in entry:
            _write_private(hpke_dir / f"{slug}.hpke", (entry["hpke_private_key"] + "\n").encode())
    _write_json(demo_path, demo, private=True)  # keys first: nothing on chain refers to a lost key
    _say(f"demo accounts in {demo_path} ({'reused' if previous else 'new'})")

    with _guard(api):
        state = _seed_members(admin, accounts, api, data_dir)
        _seed_catalog(admin, accounts)
        session = _Sessions(api, accounts)
        demo["documents"] = _seed_documents(session, accounts)
        demo["grants"] = _seed_grants(session, accounts)
        _write_json(demo_path, demo, private=True)
        demo["release"] = _seed_release(session, accounts, demo["grants"], previous.get("release"))
        demo["scan_to_authorise"] = demo_scan_to_authorise(session("li"), session("hpf"), data_dir)
        demo["rights"] = _seed_rights(session, accounts, demo["documents"], previous.get("rights"))
    _write_json(demo_path, demo, private=True)
    _print_demo(demo, state)


def _seed_members(admin: QclClient, accounts: dict[str, Any], api: str, data_dir: Path) -> dict[str, str]:
    """Onboard the demo members (auditors co-signed by the dev deployment's first auditor, SPEC §9.8)."""
    state: dict[str, str] = {}
    for member in DEMO_MEMBERS:
        entry = accounts[member.slug]
        hpke = bytes.fromhex(entry["hpke_public_key"][2:]) if member.consumer else None
        approval = None
        if "AUDITOR" in member.roles:
            if _is_member(admin, entry["address"]):  # enrolAuditor would enrol it again
                state[member.slug] = "exists"
                continue
            approval = _dev_auditor(api, data_dir).sign_auditor_enrolment(
                QclClient.auditor_enrolment_message(entry["address"])
            )
        try:
            admin.onboard(
                entry["address"],
                list(member.roles),
                member.name,
                org_code=member.org_code,
                hpke_public_key=hpke,
                auditor_approval=approval,
            )
            state[member.slug] = "onboarded"
        except ApiError as exc:
            if exc.code != "member_exists":
                raise
            state[member.slug] = "exists"
    _say(f"members: {sum(v == 'onboarded' for v in state.values())} onboarded, the rest existed")
    return state


def _seed_catalog(admin: QclClient, accounts: dict[str, Any]) -> None:
    added = 0
    for code, (name, provider, sensitivity) in DEMO_CATALOG.items():
        try:
            admin.register_resource(code, name, accounts[provider]["address"], sensitivity)
            added += 1
        except ApiError as exc:
            if exc.code != "resource_exists":
                raise
    _say(f"catalog: {added} resources registered, {len(DEMO_CATALOG) - added} existed")


class _Sessions:
    """The demo members' logged-in sessions, opened on first use."""

    def __init__(self, api: str, accounts: dict[str, Any]) -> None:
        self.api, self.accounts = api, accounts
        self._open: dict[str, QclClient] = {}

    def __call__(self, slug: str) -> QclClient:
        if slug not in self._open:
            self._open[slug] = _common._connect(self.api, self.accounts[slug]["private_key"])
            self._open[slug].login()
        return self._open[slug]


def _seed_documents(session: _Sessions, accounts: dict[str, Any]) -> list[dict[str, Any]]:
    documents: list[dict[str, Any]] = []
    issued = 0
    for subject in dict.fromkeys(s for s, _ in DEMO_DOCUMENTS):
        held = {d["resource"]: d for d in session(subject).documents() if d.get("state") != "deleted"}
        for code in (c for s, c in DEMO_DOCUMENTS if s == subject):
            provider = DEMO_CATALOG[code][1]
            if code not in held:
                held[code] = session(provider).store_document(
                    accounts[subject]["address"],
                    code,
                    demo_document(subject, code),
                    metadata={"demo": True, "serial": f"DEMO-{code.upper()}-{subject.upper()}-0001"},
                )
                issued += 1
            documents.append(
                {"subject": subject, "resource": code, "issuer": provider, "document_id": held[code]["document_id"]}
            )
    _say(f"documents: {issued} issued into the subjects' boxes, {len(documents) - issued} existed")
    return documents


def _seed_rights(
    session: _Sessions, accounts: dict[str, Any], documents: list[dict[str, Any]], previous: dict[str, Any] | None
) -> dict[str, Any]:
    """The plan's rights and clocks, one of each (SPEC §9.2, §9.4, §9.5), made once: Wang Wu's
    correction of his household register (2 working days), the tax service's data demand to the
    market regulator (5 and 10 working days), and an access request of the fund center to Li Si
    that expires a minute after seeding, unanswered."""
    if previous:
        _say("rights: correction, data demand and expiring access request already made")
        return previous
    register = next(d for d in documents if (d["subject"], d["resource"]) == ("wang", "household_register"))
    correction = session("wang").call(
        "POST",
        "/v1/corrections",
        json={"document_id": register["document_id"], "claim": "The address on my household register is out of date."},
    )
    demand = session("tax").call(
        "POST",
        "/v1/demands",
        json={
            "provider": accounts["amr"]["address"],
            "title": "Business licence changes, daily",
            "description": "Changes of registered capital and legal representative, for the tax registry (demo).",
            "resource_code": "business_license_changes",
        },
    )
    body = {
        "subject": accounts["li"]["address"],
        "resources": ["social_insurance"],
        "purpose": "provident-fund-withdrawal",
        "valid_for": 30 * 86400,
        "max_uses": 1,
        "note": "Left unanswered: it expires a minute after seeding.",
        "expires_in": 60,
    }
    request = session("hpf").call("POST", "/v1/access-requests", json=body)
    _say(
        f"rights: correction {correction['correction_id']} (due {correction.get('due_at')}), data demand {demand['demand_id']}, "
        f"access request {request['id']} expiring at {request.get('expires_at')}"
    )
    return {"correction": correction["correction_id"], "demand": demand["demand_id"], "access_request": request["id"]}


def _seed_grants(session: _Sessions, accounts: dict[str, Any]) -> list[dict[str, Any]]:
    grants: list[dict[str, Any]] = []
    signed = 0
    for spec in DEMO_GRANTS:
        signer, grantee = session(spec.subject), accounts[spec.grantee]["address"]
        purpose = "0x" + purpose_id(spec.purpose).hex()
        wanted = sorted("0x" + resource_id(code).hex() for code in spec.resources)
        found = [
            g
            for g in signer.grants(subject=signer.address, grantee=grantee, status="active")
            if g["purpose"] == purpose and sorted(g["resources"]) == wanted
        ]
        if found:
            grant_id = found[0]["grant_id"]
        else:
            grant_id = signer.grant(
                grantee,
                list(spec.resources),
                spec.purpose,
                valid_for=spec.valid_days * 86400,
                max_uses=spec.max_uses,
            )["grant_id"]
            signed += 1
        grants.append(
            {
                "grant_id": grant_id,
                "subject": spec.subject,
                "grantee": spec.grantee,
                "resources": list(spec.resources),
                "purpose": spec.purpose,
                "max_uses": spec.max_uses,
            }
        )
    _say(f"grants: {signed} signed by their subjects, {len(grants) - signed} existed")
    return grants


def _seed_release(
    session: _Sessions, accounts: dict[str, Any], grants: list[dict[str, Any]], previous: dict[str, Any] | None
) -> dict[str, Any]:
    """One release under the demo's first grant (once: skipped when the access log shows it)."""
    index, code = DEMO_RELEASE
    grant = grants[index]
    department, subject_slug = grant["grantee"], grant["subject"]
    log = session(subject_slug).access_log(accounts[subject_slug]["address"])
    done = [e for e in log if e["authority"] == grant["grant_id"] and e["kind"] == "grant"]
    if done:
        _say("release: already done")
        return {**(previous or {}), "grant_id": grant["grant_id"], "tx_hash": done[0]["tx_hash"]}
    dept = session(department)
    body = dept.release_request(grant["grant_id"], code)
    answer = dept.call("POST", "/v1/releases", json=body)
    dept_key = x25519.X25519PrivateKey.from_private_bytes(bytes.fromhex(accounts[department]["hpke_private_key"]))
    opened = open_release(
        answer,
        dept_key,
        grant_id=bytes.fromhex(grant["grant_id"][2:]),
        request_id=bytes.fromhex(body["message"]["requestId"][2:]),
    )
    if opened.content != demo_document(subject_slug, code):
        _fail("the demo release opened to unexpected content")
    _say(f"release: {MEMBERS_BY_SLUG[department].name} received {code} of {subject_slug} (tx {answer['tx_hash']})")
    return {
        "grant_id": grant["grant_id"],
        "subject": subject_slug,
        "department": department,
        "resource": code,
        "request_id": body["message"]["requestId"],
        "document_id": opened.document_id,
        "commitment": opened.commitment,
        "tx_hash": answer["tx_hash"],
    }


def _print_demo(demo: dict[str, Any], state: dict[str, str]) -> None:
    accounts = demo["accounts"]
    members = _table("demo members", "account", "name", "roles", "address", "state")
    for slug, entry in accounts.items():
        _row(members, slug, entry["name"], ", ".join(entry["roles"]), entry["address"], state.get(slug, "operator"))
    out.print(members)
    catalog = _table("catalog", "code", "name", "provider", "sensitivity")
    for code, (name, provider, sensitivity) in DEMO_CATALOG.items():
        _row(catalog, code, name, provider, sensitivity)
    out.print(catalog)
    held: dict[str, list[str]] = {}
    for doc in demo["documents"]:
        held.setdefault(doc["subject"], []).append(doc["resource"])
    boxes = _table("documents in the subjects' boxes", "subject", "documents")
    for subject, codes in held.items():
        _row(boxes, subject, ", ".join(codes))
    out.print(boxes)
    grants = _table("grants", "grant id", "subject", "grantee", "resources", "purpose")
    for g in demo["grants"]:
        _row(grants, g["grant_id"], g["subject"], g["grantee"], ", ".join(g["resources"]), g["purpose"])
    out.print(grants)
    release = demo.get("release") or {}
    _say(f"demo release: tx {release.get('tx_hash')} under grant {release.get('grant_id')}")
    first = demo["grants"][0]
    hpf = accounts[first["grantee"]]
    _say(
        "continue as the fund center, e.g.: "
        f"QCL_KEY=<{first['grantee']} private_key from {DEMO_FILE}> qcl client release {first['grant_id']} "
        f"household_register --hpke-key {hpf['hpke_key_file']} --out household_register.pdf"
    )
