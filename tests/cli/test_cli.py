"""The API client commands of ``qcl``: ``admin``, ``client`` and ``demo`` (cli/admin.py, cli/client.py, cli/demo.py).

Argument and key errors run in-process with Typer's CliRunner; the commands against an API run
in-process on the ``platform`` fixture (the CLI's sessions pointed at its TestClient); the demo
runs end to end against ``qcl dev`` started as a subprocess, as a person would.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import x25519
from eth_account import Account
from typer.testing import CliRunner, Result

from chain_client import free_port
from chain_client._paths import project_root
from chain_client.nodes import port_in_use
from cli import _common as cli_common
from cli._common import DEMO_FILE
from cli.demo import DEMO_CATALOG, DEMO_DOCUMENTS, DEMO_GRANTS, DEMO_MEMBERS, demo_document
from cli.main import app
from qcl_client import ApiError, QclClient
from tests.api.conftest import Platform

QCL = str(Path(sys.executable).with_name("qcl"))
CARD = b"%PDF-1.7\n% synthetic identity card for a CLI test\n%%EOF\n"
NO_ENV: dict[str, str | None] = {"QCL_KEY": None, "QCL_API": None, "QCL_DATA_DIR": None}


def _run(args: list[str], **env: str | None) -> Result:
    return CliRunner().invoke(app, args, env={**NO_ENV, **env})


def _text(result: Result) -> str:
    """The output as one line (Rich wraps at 80 columns when not on a terminal)."""
    return " ".join(result.output.split())


def _failed(result: Result, *needles: str) -> str:
    text = _text(result)
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert "Traceback" not in result.output and not isinstance(result.exception, AssertionError), result.output
    for needle in needles:
        assert needle in text, (needle, result.output)
    return text


def _address() -> str:
    return str(Account.create().address)


def _key_hex() -> str:
    return "0x" + bytes(Account.create().key).hex()


# ---- arguments and keys (no API) -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["admin", "onboard"], "Missing argument"),
        (["admin", "onboard", "0x1234", "--role", "SUBJECT", "--name", "x"], "is not an Ethereum address"),
        (["admin", "onboard", "0x" + "11" * 20, "--name", "x"], "Missing option '--role'"),
        (["admin", "onboard", "0x" + "11" * 20, "--role", "KING", "--name", "x"], "Invalid value for '--role'"),
        (
            ["admin", "catalog", "add", "id_card", "--name", "x", "--provider", "0x" + "11" * 20, "--sensitivity", "5"],
            "Invalid value for '--sensitivity'",
        ),
        (
            ["admin", "catalog", "add", "ID CARD", "--name", "x", "--provider", "0x" + "11" * 20, "--sensitivity", "2"],
            "is not a catalog code",
        ),
        (["client", "release", "0x12", "id_card", "--hpke-key", "k", "--out", "o"], "must be 0x followed by 64 hex"),
        (["client", "request", "0x" + "ab" * 32, "id_card"], "Missing option '--out-request'"),
        (["client", "keygen"], "Missing option '--out'"),
    ],
)
def test_argument_errors_are_usage_errors(args: list[str], needle: str) -> None:
    _failed(_run(args), needle)


def test_a_consumer_needs_an_hpke_key_and_only_a_consumer_has_one() -> None:
    address = "0x" + "11" * 20
    _failed(_run(["admin", "onboard", address, "--role", "consumer", "--name", "x"]), "a CONSUMER needs --hpke-key")
    with_key = ["admin", "onboard", address, "--role", "SUBJECT", "--name", "x", "--hpke-key", "0x" + "22" * 32]
    _failed(_run(with_key), "only a CONSUMER registers an HPKE key")
    short = ["admin", "onboard", address, "--role", "CONSUMER", "--name", "x", "--hpke-key", "0x" + "22" * 31]
    _failed(_run(short), "must be 32 (X25519) or 1216")


def test_a_missing_key_is_one_clear_error(tmp_path: Path) -> None:
    _failed(_run(["client", "login"]), "no key: pass --key or set QCL_KEY")
    _failed(_run(["client", "login", "--key", "0x1234"]), "neither a private key", "nor a readable file")
    (tmp_path / "key").write_text("not a key\n")
    _failed(_run(["client", "login", "--key", str(tmp_path / "key")]), "does not hold a private key")
    _failed(_run(["client", "login"], QCL_KEY="0x" + "00" * 32), "not a valid secp256k1 private key")
    # the ADMIN commands fall back to the dev accounts file only, and say where they looked
    text = _failed(_run(["admin", "catalog", "list"], QCL_DATA_DIR=str(tmp_path / "dev")), "no --key / QCL_KEY given")
    # Rich may wrap a long path anywhere (an xdist worker's temporary directory is longer): compare without spaces
    assert str(tmp_path / "dev" / "accounts.json") in "".join(text.split())


def test_an_unreachable_api_is_one_clear_error() -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    _failed(_run(["client", "login", "--key", _key_hex(), "--api", dead]), f"cannot reach the API at {dead}")
    _failed(_run(["admin", "catalog", "list", "--key", _key_hex()], QCL_API=dead), f"cannot reach the API at {dead}")
    _failed(_run(["client", "login", "--key", _key_hex(), "--api", "127.0.0.1:8000"]), "must be an http:// or https://")


def test_keygen_writes_a_private_key_0600_and_prints_the_public_key(tmp_path: Path) -> None:
    path = tmp_path / "dept.hpke"
    result = _run(["client", "keygen", "--out", str(path)])
    assert result.exit_code == 0, result.output
    assert path.stat().st_mode & 0o777 == 0o600
    key = x25519.X25519PrivateKey.from_private_bytes(bytes.fromhex(path.read_text().strip()))
    assert "0x" + key.public_key().public_bytes_raw().hex() == result.stdout.strip()
    _failed(_run(["client", "keygen", "--out", str(path)]), "exists; refusing to overwrite")
    assert _run(["client", "keygen", "--out", str(path), "--force"]).exit_code == 0
    assert path.read_text() != key.private_bytes_raw().hex() + "\n"
    _failed(_run(["client", "keygen", "--out", str(tmp_path / "no" / "such" / "dir")]), "does not exist")


def test_open_refuses_what_is_not_a_release_answer(tmp_path: Path) -> None:
    key = tmp_path / "k"
    assert _run(["client", "keygen", "--out", str(key)]).exit_code == 0
    ids = ["--grant-id", "0x" + "11" * 32, "--request-id", "0x" + "22" * 32]
    (tmp_path / "a.json").write_text("{not json")
    _failed(_run(["client", "open", str(tmp_path / "a.json"), "--hpke-key", str(key), "--out", "o", *ids]), "not JSON")
    (tmp_path / "a.json").write_text(json.dumps({"hello": 1}))
    answer = ["client", "open", str(tmp_path / "a.json"), "--hpke-key", str(key), "--out", str(tmp_path / "o")]
    _failed(_run([*answer, *ids]), "is not a release answer")
    (tmp_path / "a.json").write_text(json.dumps({"sealed": "AAAA", "document": {"salt": "0x00", "commitment": "0x"}}))
    _failed(_run(answer), "pass --grant-id and --request-id")
    _failed(_run([*answer, *ids]), "does not open")
    (tmp_path / "bad.hpke").write_text("xyz")
    _failed(_run([*answer[:3], "--hpke-key", str(tmp_path / "bad.hpke"), "--out", "o", *ids]), "raw X25519 private key")
    assert not (tmp_path / "o").exists()


# ---- against an API (in-process, on the platform fixture) ----------------------------------------


@pytest.fixture
def api(platform: Platform, monkeypatch: pytest.MonkeyPatch) -> Platform:
    """The CLI's sessions talk to the platform's TestClient instead of a network address."""

    def connect(base_url: str, private_key: str) -> QclClient:
        return QclClient(http=platform.http, account=Account.from_key(private_key))

    monkeypatch.setattr(cli_common, "_connect", connect)
    return platform


def _admin_key(p: Platform) -> str:
    return "0x" + bytes(p.deployed.admin.key).hex()


def test_admin_onboards_suspends_and_keeps_the_catalog(api: Platform, tmp_path: Path) -> None:
    p, admin = api, ["--key", _admin_key(api)]
    member = _address()
    result = _run(
        ["admin", "onboard", member, "--role", "subject", "--name", "Citizen [Li]", "--org-code", "X-1", *admin]
    )
    assert result.exit_code == 0, result.output
    assert member in result.stdout and "Citizen [Li]" in result.stdout  # names are never Rich markup
    assert p.admin.call("GET", f"/v1/members/{member}")["roles"] == ["SUBJECT"]
    _failed(_run(["admin", "onboard", member, "--role", "SUBJECT", "--name", "again", *admin]), "409 member_exists")

    assert _run(["admin", "suspend", member, *admin]).exit_code == 0
    assert p.admin.call("GET", f"/v1/members/{member}")["suspended"] is True
    _failed(_run(["admin", "suspend", member, *admin]), "suspension_unchanged")
    assert _run(["admin", "suspend", member, "--reinstate", *admin]).exit_code == 0
    assert p.admin.call("GET", f"/v1/members/{member}")["suspended"] is False

    add = ["admin", "catalog", "add", "land_use", "--name", "Land use permit", "--provider", p.provider.address]
    assert _run([*add, "--sensitivity", "2", *admin]).exit_code == 0
    _failed(_run([*add, "--sensitivity", "2", *admin]), "resource_exists")
    listed = _run(["admin", "catalog", "list", *admin])
    assert listed.exit_code == 0, listed.output
    assert all(code in listed.stdout for code in ("id_card", "tax_record", "land_use"))

    # a member that is not an ADMIN may list the catalog but not administer
    citizen = ["--key", "0x" + bytes(p.citizen.account.key).hex()]
    assert _run(["admin", "catalog", "list", *citizen]).exit_code == 0
    _failed(_run(["admin", "suspend", member, *citizen]), "is not an ADMIN")


def test_admin_uses_the_dev_key_only_on_the_dev_deployment(api: Platform, tmp_path: Path) -> None:
    p = api
    data_dir = tmp_path / "dev"
    data_dir.mkdir()
    admin = {"address": p.deployed.admin.address, "private_key": _admin_key(p)}
    (data_dir / "accounts.json").write_text(json.dumps({"admin": admin, "relayer": admin}))
    onboard = ["admin", "onboard", _address(), "--role", "PROVIDER", "--name", "Tax", "--data-dir", str(data_dir)]
    _failed(_run(onboard), "is not the dev deployment of")  # no manifest: not provably the dev deployment
    other = json.loads(p.deployed.ledger.deployment.to_json())
    (data_dir / "deployment.json").write_text(json.dumps({**other, "contracts": {"ConsentLedger": _address()}}))
    _failed(_run(onboard), "is not the dev deployment of")
    (data_dir / "deployment.json").write_text(p.deployed.ledger.deployment.to_json())
    result = _run(onboard)
    assert result.exit_code == 0, result.output
    assert p.admin.call("GET", f"/v1/members/{onboard[2]}")["roles"] == ["PROVIDER"]


def _json_out(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    text = result.stdout
    return json.loads(text[text.index("{") :])


def test_an_auditor_is_enrolled_with_an_auditors_cosignature(api: Platform, tmp_path: Path) -> None:
    """SPEC §9.8: `admin onboard --role AUDITOR` prints what an auditor signs; `client cosign` signs it."""
    p, admin = api, ["--key", _admin_key(api)]
    newcomer = _address()
    onboard = ["admin", "onboard", newcomer, "--role", "AUDITOR", "--name", "Provincial audit office", *admin]
    printed = _run(onboard)
    message = _json_out(printed)
    assert message["account"] == newcomer and int(message["deadline"]) > time.time()
    assert "NOT onboarded" in _text(printed)
    both = [*onboard[:3], "--role", "ADMIN", "--role", "AUDITOR", "--name", "x", *admin]
    _failed(_run(both), "both ADMIN and AUDITOR")
    with pytest.raises(ApiError) as missing:  # not a member yet
        p.admin.call("GET", f"/v1/members/{newcomer}")
    assert missing.value.status == 404
    message_file, approval_file = tmp_path / "enrolment.json", tmp_path / "approval.json"
    message_file.write_text(json.dumps(message))
    citizen_key = ["--key", "0x" + bytes(p.citizen.account.key).hex()]
    _failed(
        _run(["client", "cosign", str(message_file), "--out", str(approval_file), *citizen_key]), "is not an AUDITOR"
    )
    auditor_key = ["--key", "0x" + bytes(p.auditor.account.key).hex()]
    signed = _run(["client", "cosign", str(message_file), "--out", str(approval_file), *auditor_key])
    assert signed.exit_code == 0, signed.output
    assert json.loads(approval_file.read_text())["message"]["account"] == newcomer
    other = _address()
    _failed(
        _run(["admin", "onboard", other, "--role", "AUDITOR", "--name", "x", "--approval", str(approval_file), *admin]),
        f"approves {newcomer}, not {other}",
    )
    enrolled = _run([*onboard, "--approval", str(approval_file)])
    assert enrolled.exit_code == 0, enrolled.output
    assert p.admin.call("GET", f"/v1/members/{newcomer}")["roles"] == ["AUDITOR"]
    _failed(_run([*onboard, "--approval", str(approval_file)]), "nonce_used")  # an approval works once


def test_the_subject_pauses_resumes_and_revokes(api: Platform) -> None:
    p = api
    grant_id = p.citizen.grant(p.dept.address, ["id_card"], "loan-application")["grant_id"]
    citizen = ["--key", "0x" + bytes(p.citizen.account.key).hex()]
    paused = _run(["client", "pause", grant_id, *citizen])
    assert paused.exit_code == 0, paused.output
    assert "paused" in _text(paused)
    assert (p.citizen.grant_detail(grant_id)["status"], p.citizen.grant_detail(grant_id)["pause_sequence"]) == (
        "paused",
        1,
    )
    resumed = _run(["client", "resume", grant_id, *citizen])
    assert resumed.exit_code == 0, resumed.output
    assert (p.citizen.grant_detail(grant_id)["status"], p.citizen.grant_detail(grant_id)["pause_sequence"]) == (
        "active",
        2,
    )
    dept = ["--key", "0x" + bytes(p.dept.account.key).hex()]
    _failed(_run(["client", "pause", grant_id, *dept]), "signature_invalid")  # only the subject's signature counts
    assert _run(["client", "revoke", grant_id, *citizen]).exit_code == 0
    assert p.citizen.grant_detail(grant_id)["status"] == "revoked"
    _failed(_run(["client", "revoke", grant_id, *citizen]), "grant_revoked")


def test_client_login_request_release_and_open(api: Platform, tmp_path: Path) -> None:
    p = api
    dept = QclClient(http=p.http, account=Account.create())
    dept_key = "0x" + bytes(dept.account.key).hex()
    hpke = tmp_path / "dept.hpke"
    public = _run(["client", "keygen", "--out", str(hpke)]).stdout.strip()
    onboard = ["admin", "onboard", dept.address, "--role", "CONSUMER", "--name", "Fund center", "--hpke-key", public]
    assert _run([*onboard, "--key", _admin_key(p)]).exit_code == 0

    (tmp_path / "key").write_text(dept_key + "\n")  # --key may name a file holding the key
    login = _run(["client", "login", "--key", str(tmp_path / "key")])
    assert login.exit_code == 0 and "CONSUMER" in login.stdout and dept.address in login.stdout

    p.provider.store_document(p.citizen.address, "id_card", CARD)
    grant_id = p.citizen.grant(dept.address, ["id_card"], "loan-application", max_uses=3)["grant_id"]
    out = tmp_path / "card.pdf"
    release = ["client", "release", grant_id, "id_card", "--hpke-key", str(hpke), "--out", str(out)]
    result = _run([*release, "--save-answer", str(tmp_path / "answer.json")], QCL_KEY=dept_key)
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == CARD and out.stat().st_mode & 0o777 == 0o600
    answer = json.loads((tmp_path / "answer.json").read_text())
    assert answer["tx_hash"] in _text(result) and answer["document"]["document_id"] in _text(result)

    opened = tmp_path / "opened.pdf"
    open_cmd = ["client", "open", str(tmp_path / "answer.json"), "--hpke-key", str(hpke), "--out", str(opened)]
    assert _run(open_cmd).exit_code == 0 and opened.read_bytes() == CARD
    wrong = ["--grant-id", grant_id, "--request-id", "0x" + "33" * 32]
    _failed(_run([*open_cmd, *wrong]), "does not open with this HPKE key")

    request = tmp_path / "request.json"
    asked = _run(["client", "request", grant_id, "id_card", "--out-request", str(request)], QCL_KEY=dept_key)
    assert asked.exit_code == 0, asked.output
    body = json.loads(request.read_text())
    assert body["message"]["grantId"] == grant_id and body["signature"].startswith("0x")
    again = [*release, "--request", str(request)]
    first = _run(again, QCL_KEY=dept_key)
    assert first.exit_code == 0, first.output
    replayed = _run(again, QCL_KEY=dept_key)  # the same signed request: the same release (SPEC §9.7)
    assert replayed.exit_code == 0, replayed.output
    tx = re.search(r"tx\s+(0x[0-9a-f]{64})", first.output.replace("\n", " "))
    assert tx is not None and tx.group(1) in replayed.output.replace("\n", " ")
    _failed(_run([*release[:3], "tax_record", *release[4:], "--request", str(request)], QCL_KEY=dept_key), "another")

    other = tmp_path / "other.hpke"
    assert _run(["client", "keygen", "--out", str(other)]).exit_code == 0
    wrong_key = [*release[:4], "--hpke-key", str(other), "--out", str(out)]
    _failed(_run(wrong_key, QCL_KEY=dept_key), "is not the HPKE key registered", "nothing was requested")
    assert [e["grantee"] for e in p.citizen.access_log(p.citizen.address)] == [dept.address] * 2
    _failed(_run(release, QCL_KEY="0x" + bytes(p.citizen.account.key).hex()), "403 role_required")


# ---- the demo, end to end against `qcl dev` ------------------------------------------------------


def _wait_health(url: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "exited"
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("no /health answer")


def _qcl(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([QCL, *args], env=env, cwd=project_root(), capture_output=True, text=True, timeout=300)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 0, done.stderr
    return done


@pytest.mark.slow
def test_demo_seed_then_a_department_continues_with_qcl_client(tmp_path: Path) -> None:
    data_dir = tmp_path / "dev"
    api_port, chain_port = free_port(), free_port()
    env = dict(os.environ)
    env.pop("QCL_KEY", None)
    env.update(
        {
            "QCL_DATA_DIR": str(data_dir),
            "QCL_API_PORT": str(api_port),
            "QCL_CHAIN_PORT": str(chain_port),
            "QCL_API": f"http://127.0.0.1:{api_port}",
        }
    )
    url = env["QCL_API"]
    proc = subprocess.Popen([QCL, "dev"], env=env, cwd=project_root(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_health(f"{url}/health", proc)
        _qcl("demo", "seed", env=env)
        first = json.loads((data_dir / DEMO_FILE).read_text())
        _qcl("demo", "seed", env=env)  # a second run reuses the accounts and skips what exists
        demo = json.loads((data_dir / DEMO_FILE).read_text())
        assert (data_dir / DEMO_FILE).stat().st_mode & 0o077 == 0
        accounts: dict[str, Any] = demo["accounts"]
        assert {k: v["address"] for k, v in accounts.items()} == {k: v["address"] for k, v in first["accounts"].items()}
        assert demo["grants"] == first["grants"] and demo["release"]["tx_hash"] == first["release"]["tx_hash"]
        scan = demo["scan_to_authorise"]  # SPEC §9.6: a counter grant as a QR, and the event feed
        assert scan["qr_text"].startswith("qcl-grant:") and Path(scan["qr_png"]).is_file()
        rights = demo["rights"]  # made once: a correction, a data demand, an access request that expires
        assert rights == first["rights"]

        admin_key = json.loads((data_dir / "accounts.json").read_text())["admin"]["private_key"]
        admin = QclClient.connect(url, admin_key)
        assert admin.login() == ["ADMIN"] and accounts["bureau"]["address"] == admin.address
        for member in DEMO_MEMBERS:
            entry = accounts[member.slug]
            assert Account.from_key(entry["private_key"]).address == entry["address"]
            found = admin.call("GET", f"/v1/members/{entry['address']}")
            assert (sorted(found["roles"]), found["name"]) == (sorted(member.roles), member.name)
            if member.consumer:
                hpke = x25519.X25519PrivateKey.from_private_bytes(bytes.fromhex(entry["hpke_private_key"]))
                assert found["hpke_public_key"] == "0x" + hpke.public_key().public_bytes_raw().hex()
        catalog = {r["code"]: r for r in admin.call("GET", "/v1/catalog")["items"]}
        assert set(catalog) == set(DEMO_CATALOG)
        for code, (_, provider, sensitivity) in DEMO_CATALOG.items():
            assert (catalog[code]["provider"], catalog[code]["sensitivity"]) == (
                accounts[provider]["address"],
                sensitivity,
            )

        sessions = {slug: QclClient.connect(url, accounts[slug]["private_key"]) for slug in ("zhang", "li", "wang")}
        sessions["quancheng"] = QclClient.connect(url, accounts["quancheng"]["private_key"])
        for slug, client in sessions.items():
            client.login()
            held = sorted(d["resource"] for d in client.documents())  # exactly once, after two runs
            assert held == sorted(code for s, code in DEMO_DOCUMENTS if s == slug)
            expected = next(code for s, code in DEMO_DOCUMENTS if s == slug)
            doc = next(d for d in client.documents() if d["resource"] == expected)
            assert client.read_document(doc["document_id"]) == demo_document(slug, expected)
        assert len(demo["grants"]) == len(DEMO_GRANTS)

        wang_corrections = sessions["wang"].call("GET", "/v1/corrections")["items"]
        assert [c["correction_id"] for c in wang_corrections] == [rights["correction"]]
        assert wang_corrections[0]["status"] == "open" and wang_corrections[0]["due_at"] > time.time()
        tax = QclClient.connect(url, accounts["tax"]["private_key"])
        tax.login()
        demands = tax.call("GET", "/v1/demands")["items"]
        assert [(d["demand_id"], d["provider"]) for d in demands] == [(rights["demand"], accounts["amr"]["address"])]
        li_requests = sessions["li"].access_requests()
        assert [(r["id"], r["status"]) for r in li_requests] == [(rights["access_request"], "pending")]
        assert li_requests[0]["expires_at"] <= time.time() + 60

        zhang, release = sessions["zhang"], demo["release"]
        log = zhang.access_log(zhang.address)
        assert [(e["kind"], e["authority"], e["grantee"], e["tx_hash"]) for e in log] == [
            ("grant", release["grant_id"], accounts["hpf"]["address"], release["tx_hash"])
        ]
        auditor = QclClient.connect(url, accounts["audit"]["private_key"])
        auditor.login()
        assert auditor.access_log(zhang.address) == log

        # a person continues as the fund center with the keys of the demo file
        hpke_file = tmp_path / "hpf.hpke"
        hpke_file.write_text(accounts["hpf"]["hpke_private_key"])
        out = tmp_path / "household_register.pdf"
        grant_id = release["grant_id"]
        client_env = {**env, "QCL_KEY": accounts["hpf"]["private_key"]}
        args = ["client", "release", grant_id, "household_register", "--hpke-key", str(hpke_file), "--out", str(out)]
        done = _qcl(*args, env=client_env)
        assert out.read_bytes() == demo_document("zhang", "household_register")
        assert len(zhang.access_log(zhang.address)) == 2
        assert " ".join(done.stdout.split()).count("0x") >= 3  # document id, commitment, tx hash
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode in (0, 130), err.decode()
    assert "Traceback" not in err.decode()
    assert not port_in_use(api_port) and not port_in_use(chain_port)


def test_the_dev_accounts_file_names_a_first_auditor(tmp_path: Path) -> None:
    """SPEC §9.8: dev mode writes one auditor to accounts.json; an older file gains one, keeping its keys."""
    from api.runtime import dev_accounts

    path = tmp_path / "dev" / "accounts.json"
    created = dev_accounts(path)
    assert created.auditor is not None and path.stat().st_mode & 0o077 == 0
    assert set(json.loads(path.read_text())) == {"admin", "relayer", "auditor"}
    assert dev_accounts(path).auditor.address == created.auditor.address  # type: ignore[union-attr]
    admin = {"address": created.admin.address, "private_key": "0x" + bytes(created.admin.key).hex()}
    path.write_text(json.dumps({"admin": admin, "relayer": admin}))
    upgraded = dev_accounts(path)
    assert upgraded.admin.address == created.admin.address and upgraded.auditor is not None
    assert json.loads(path.read_text())["auditor"]["address"] == upgraded.auditor.address
