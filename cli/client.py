"""``qcl client``: a member's side through the API: log in, co-sign, pause, resume and revoke grants,
HPKE key pairs, signed release requests, releases and opening them."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from cryptography.hazmat.primitives.asymmetric import x25519

from chain_client.ids import resource_id
from qcl_client import OpenedRelease, QclClient, ReleaseError, open_release

from ._common import (
    DEFAULT_API,
    ApiOpt,
    CodeArg,
    GrantIdArg,
    KeyOpt,
    _check_address,
    _check_bytes32,
    _check_writable,
    _fail,
    _guard,
    _load_hpke_key,
    _member,
    _public_hex,
    _read_json,
    _record,
    _release_message,
    _say,
    _write_json,
    _write_private,
    out,
)

client_app = typer.Typer(
    help="A member's side: log in, HPKE key pairs, signed release requests, releases.", no_args_is_help=True
)

# ---- qcl client ----------------------------------------------------------------------------------


@client_app.command("login")
def client_login(api: ApiOpt = DEFAULT_API, key: KeyOpt = None) -> None:
    """Sign in (EIP-4361) and print your account and roles."""
    client = _member(api, key)
    with _guard(api):
        roles = client.login()
    out.print(_record("logged in", {"address": client.address, "roles": ", ".join(roles)}))


@client_app.command("cosign")
def client_cosign(
    message_file: Annotated[
        Path, typer.Argument(metavar="FILE", help="the AuditorEnrolment message `qcl admin onboard` printed (JSON)")
    ],
    out_file: Annotated[
        Path | None, typer.Option("--out", help="where to write the signed approval (default: print it)")
    ] = None,
    api: ApiOpt = DEFAULT_API,
    key: KeyOpt = None,
) -> None:
    """As an AUDITOR: sign an AuditorEnrolment, approving another account as AUDITOR (SPEC §9.8)."""
    body = _read_json(message_file, "the enrolment message")
    message = body.get("message", body) if isinstance(body, dict) else {}
    try:
        account = _check_address(str(message["account"]))
        nonce, deadline = int(message["nonce"]), int(message["deadline"])
    except (KeyError, TypeError, ValueError, typer.BadParameter):
        _fail(f"{message_file} is not an AuditorEnrolment message (account, nonce, deadline)")
    if deadline <= time.time():
        _fail(f"the enrolment message expired at {deadline}; ask for a new one")
    fields = {"account": account, "nonce": nonce, "deadline": deadline}
    if out_file is not None:
        _check_writable(out_file)
    client = _member(api, key)
    with _guard(api):
        roles = client.login()
        if "AUDITOR" not in roles:
            _fail(f"{client.address} is not an AUDITOR (roles: {', '.join(roles) or 'none'}); only an auditor approves")
        if client.address.lower() == account.lower():
            _fail("an auditor cannot approve its own enrolment")
        signed = client.sign_auditor_enrolment(fields)
    if out_file is None:
        out.print(json.dumps(signed, indent=2), soft_wrap=True)
        return
    _write_json(out_file, signed)
    _say(f"approval of {account} as AUDITOR written to {out_file}; give it to the ADMIN (`--approval {out_file}`)")


def _grant_status(client: QclClient, grant_id: str, title: str, answer: dict[str, Any]) -> None:
    detail = client.grant_detail(grant_id)
    fields = {
        "grant": grant_id,
        "status": detail["status"],
        "pause sequence": detail["pause_sequence"],
        "uses": detail["uses"],
        "tx": answer.get("tx_hash"),
    }
    out.print(_record(title, fields))


@client_app.command("pause")
def client_pause(grant_id: GrantIdArg, api: ApiOpt = DEFAULT_API, key: KeyOpt = None) -> None:
    """As the subject: pause a grant (no release until resumed); signs the next pause sequence."""
    client = _member(api, key)
    with _guard(api):
        client.login()
        answer = client.pause(grant_id)
        _grant_status(client, grant_id, "grant paused", answer)


@client_app.command("resume")
def client_resume(grant_id: GrantIdArg, api: ApiOpt = DEFAULT_API, key: KeyOpt = None) -> None:
    """As the subject: resume a paused grant; signs the next pause sequence."""
    client = _member(api, key)
    with _guard(api):
        client.login()
        answer = client.resume(grant_id)
        _grant_status(client, grant_id, "grant resumed", answer)


@client_app.command("revoke")
def client_revoke(
    grant_id: GrantIdArg,
    grant_file: Annotated[
        Path | None,
        typer.Option(
            "--grant",
            metavar="FILE",
            help="the signed grant (POST /v1/grants body) of a grant never recorded, e.g. a lost QR code",
        ),
    ] = None,
    api: ApiOpt = DEFAULT_API,
    key: KeyOpt = None,
) -> None:
    """As the subject: revoke a grant for good. With --grant, also one signed but never recorded."""
    terms: dict[str, Any] | None = None
    if grant_file is not None:
        body = _read_json(grant_file, "the grant")
        terms = body.get("message", body) if isinstance(body, dict) else None
        if not isinstance(terms, dict) or "subject" not in terms:
            _fail(f"{grant_file} is not a Grant message or a signed grant body")
    client = _member(api, key)
    with _guard(api):
        client.login()
        answer = client.revoke(grant_id, grant=terms)
    out.print(_record("grant revoked", {"grant": grant_id, "tx": answer.get("tx_hash")}))


@client_app.command("keygen")
def client_keygen(
    out_file: Annotated[Path, typer.Option("--out", help="where to write the private key (hex, mode 0600)")],
    force: Annotated[bool, typer.Option("--force", help="replace an existing key file")] = False,
) -> None:
    """Create an X25519 HPKE key pair for receiving releases; prints the public key to register."""
    _check_writable(out_file)
    key = x25519.X25519PrivateKey.generate()
    _write_private(out_file, (key.private_bytes_raw().hex() + "\n").encode(), exclusive=not force)
    _say(f"HPKE private key written to {out_file} (mode 0600); keep it: releases sealed to it open only with it")
    _say("register the public key below with `qcl admin onboard ADDRESS --role CONSUMER --hpke-key HEX ...`")
    out.print(_public_hex(key), soft_wrap=True)


def _request_body(client: QclClient, grant_id: str, code: str, path: Path | None) -> dict[str, Any]:
    if path is None:
        return client.release_request(grant_id, code)
    body = _read_json(path, "the release request")
    try:
        message = body["message"]
        same = message["grantId"].lower() == grant_id and message["resource"].lower() == "0x" + resource_id(code).hex()
        _check_bytes32(message["requestId"])
    except (KeyError, TypeError, AttributeError, typer.BadParameter):
        _fail(f"{path} is not a signed ReleaseRequest body (as `qcl client request` writes)")
    if not same:
        _fail(f"{path} requests another grant or resource than {grant_id} / {code}")
    return dict(body)


@client_app.command("request")
def client_request(
    grant_id: GrantIdArg,
    resource: CodeArg,
    out_request: Annotated[Path, typer.Option("--out-request", help="where to write the signed request (JSON)")],
    api: ApiOpt = DEFAULT_API,
    key: KeyOpt = None,
) -> None:
    """Sign a ReleaseRequest (as the grantee) and write its body, to be sent later or by another system."""
    client = _member(api, key)
    _check_writable(out_request)
    with _guard(api):
        body = client.release_request(grant_id, resource)
    _write_json(out_request, body)
    message = body["message"]
    _say(f"signed ReleaseRequest written to {out_request}")
    deadline = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(int(message["deadline"])))
    fields = {"grant": grant_id, "resource": resource, "request id": message["requestId"], "deadline": deadline}
    out.print(_record("release request", fields))


def _print_release(opened: OpenedRelease, answer: dict[str, Any], out_file: Path) -> None:
    fields = {
        "document": opened.document_id,
        "commitment": opened.commitment,
        "tx": answer.get("tx_hash"),
        "plaintext": f"{out_file} ({len(opened.content)} bytes)",
    }
    out.print(_record("release opened, commitment checked", fields))


@client_app.command("release")
def client_release(
    grant_id: GrantIdArg,
    resource: CodeArg,
    hpke_key: Annotated[Path, typer.Option("--hpke-key", help="your HPKE private key file (from keygen)")],
    out_file: Annotated[Path, typer.Option("--out", help="where to write the plaintext (mode 0600)")],
    request: Annotated[
        Path | None, typer.Option("--request", help="send this signed request (from `request`) instead of a new one")
    ] = None,
    save_answer: Annotated[
        Path | None, typer.Option("--save-answer", help="also keep the sealed answer (for `qcl client open`)")
    ] = None,
    api: ApiOpt = DEFAULT_API,
    key: KeyOpt = None,
) -> None:
    """Request a release, open it with your HPKE key, check the commitment, write the plaintext."""
    client = _member(api, key)
    private = _load_hpke_key(hpke_key)
    for path in (out_file, save_answer):
        if path is not None:
            _check_writable(path)
    with _guard(api):
        client.login()
        registered = client.call("GET", f"/v1/members/{client.address}").get("hpke_public_key")
        if registered and registered.lower() != _public_hex(private):
            _fail(f"{hpke_key} is not the HPKE key registered for {client.address}; nothing was requested")
        body = _request_body(client, grant_id, resource, request)
        answer = client.call("POST", "/v1/releases", json=body)
    _say(f"release recorded on chain (tx {answer.get('tx_hash')}, block {answer.get('block_number')})")
    if save_answer is not None:  # before opening: the use is spent, the sealed answer must not be lost
        _write_json(save_answer, {**answer, "grant_id": grant_id, "request_id": body["message"]["requestId"]})
    with _guard(api):
        opened = open_release(
            answer,
            private,
            grant_id=bytes.fromhex(grant_id[2:]),
            request_id=bytes.fromhex(body["message"]["requestId"][2:]),
        )
    _write_private(out_file, opened.content)
    _print_release(opened, answer, out_file)


@client_app.command("open")
def client_open(
    answer_file: Annotated[Path, typer.Argument(metavar="ANSWER.json", help="a saved POST /v1/releases answer")],
    hpke_key: Annotated[Path, typer.Option("--hpke-key", help="your HPKE private key file (from keygen)")],
    out_file: Annotated[Path, typer.Option("--out", help="where to write the plaintext (mode 0600)")],
    grant_id: Annotated[
        str | None,
        typer.Option("--grant-id", callback=_check_bytes32, help="the grant released under (default: from the file)"),
    ] = None,
    request_id: Annotated[
        str | None,
        typer.Option("--request-id", callback=_check_bytes32, help="the request's id (default: from the file)"),
    ] = None,
) -> None:
    """Open a saved release answer offline and check its commitment."""
    private = _load_hpke_key(hpke_key)
    answer = _read_json(answer_file, "the release answer")
    if not isinstance(answer, dict) or not isinstance(answer.get("document"), dict) or "sealed" not in answer:
        _fail(f"{answer_file} is not a release answer (it needs `sealed` and `document`)")
    try:
        grant_id = grant_id or _check_bytes32(answer.get("grant_id"))
        request_id = request_id or _check_bytes32(answer.get("request_id"))
    except typer.BadParameter as exc:
        _fail(f"{answer_file}: {exc.message}")
    if not grant_id or not request_id:
        _fail("pass --grant-id and --request-id (the answer file does not record them)")
    _check_writable(out_file)
    try:
        opened = open_release(
            answer, private, grant_id=bytes.fromhex(grant_id[2:]), request_id=bytes.fromhex(request_id[2:])
        )
    except ReleaseError as exc:
        _fail(_release_message(exc))
    except (KeyError, ValueError, TypeError) as exc:
        _fail(f"{answer_file} is not a well-formed release answer: {exc}")
    _write_private(out_file, opened.content)
    _print_release(opened, answer, out_file)
