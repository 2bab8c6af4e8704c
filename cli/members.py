"""``qcl admin``, ``qcl client`` and ``qcl demo``: the platform operated through its HTTP API.

Every command here is an API client (:class:`qcl_client.QclClient`): it signs locally with the key
given by ``--key`` / ``QCL_KEY`` (a hex private key, or a file holding one) and talks to the API at
``--api`` / ``QCL_API`` (default: ``QCL_PUBLIC_URL``, else ``http://QCL_API_HOST:QCL_API_PORT``, the
address ``qcl dev`` serves on). Only the ADMIN commands and ``demo seed`` fall back to the dev ADMIN key of
``<QCL_DATA_DIR>/accounts.json``, and only after checking that the API serves the very deployment
whose manifest lies next to that file. Failures are one line on stderr and exit code 2.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import httpx
import typer
from cryptography.hazmat.primitives.asymmetric import x25519
from eth_account import Account
from eth_utils import is_address, to_checksum_address
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from api.runtime import dev_accounts
from api.settings import default_api_url
from chain_client.ids import purpose_id, resource_id
from qcl_client import ApiError, DecryptionError, LoginRefused, OpenedRelease, QclClient, ReleaseError, open_release

from ._console import fail, say
from .qr import demo_scan_to_authorise

DEFAULT_API = default_api_url()
DEFAULT_DATA_DIR = Path(".qcl/dev")
DEMO_FILE = "demo-accounts.json"
CODE_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,63}$")  # api.routers.catalog.CODE_PATTERN
BYTES32_PATTERN = re.compile(r"^0x[0-9a-fA-F]{64}$")

admin_app = typer.Typer(
    help="Administration (ADMIN): onboard and suspend members, keep the data catalog.", no_args_is_help=True
)
catalog_app = typer.Typer(help="The data catalog: register and list resources.", no_args_is_help=True)
admin_app.add_typer(catalog_app, name="catalog")
client_app = typer.Typer(
    help="A member's side: log in, HPKE key pairs, signed release requests, releases.", no_args_is_help=True
)
demo_app = typer.Typer(help="A realistic demo on the dev deployment (synthetic data only).", no_args_is_help=True)

#: Columns holding identifiers: kept on one line where the width allows (they are meant to be copied).
HEX_COLUMNS = {"address", "provider", "tx", "grant id", "document", "commitment", "resource id", "request id"}


class _Out:
    """Tables and results on stdout (progress and errors go to stderr through ``cli._console``).

    Output to a pipe or file is laid out 200 columns wide, so identifiers are not folded.
    """

    def print(self, *objects: Any, soft_wrap: bool = False) -> None:
        console = Console(highlight=False)
        if not console.is_terminal:
            console = Console(highlight=False, width=200)
        console.print(*objects, soft_wrap=soft_wrap)


out = _Out()


# ---- output and errors ---------------------------------------------------------------------------


def _say(message: str) -> None:
    say(escape(message))


def _fail(message: str) -> NoReturn:
    fail(escape(message), 2)
    raise typer.Exit(2)  # not reached: _fail raises


@contextlib.contextmanager
def _guard(api: str) -> Iterator[None]:
    """Turn API refusals, network failures and unexpected answers into one line and exit code 2."""
    try:
        yield
    except ApiError as exc:
        _fail(f"the API refused ({exc.status} {exc.code}): {exc.body.get('detail') or exc.body}")
    except LoginRefused as exc:
        _fail(f"not signing in to {api}: {exc}")
    except httpx.TimeoutException:
        _fail(f"the API at {api} did not answer in time")
    except httpx.HTTPError as exc:
        _fail(f"cannot reach the API at {api}: {exc or type(exc).__name__}")
    except ReleaseError as exc:
        _fail(_release_message(exc))
    except (ValueError, KeyError) as exc:  # e.g. a 2xx answer that is not the API's JSON
        _fail(f"unexpected answer from {api}: {type(exc).__name__}: {exc}")


def _release_message(exc: ReleaseError) -> str:
    if isinstance(exc, DecryptionError):
        return "the release does not open with this HPKE key, grant id and request id (DecryptionError)"
    return f"{type(exc).__name__}: {exc}"


def _table(title: str, *columns: str) -> Table:
    table = Table(title=title, title_justify="left", header_style="bold")
    for column in columns:
        table.add_column(column, overflow="fold", no_wrap=column in HEX_COLUMNS)
    return table


def _row(table: Table, *values: object) -> None:
    """Add a row of plain text (names and details come from outside: never parsed as markup)."""
    table.add_row(*(Text("-" if value is None or value == "" else str(value)) for value in values))


def _record(title: str, fields: dict[str, object]) -> Table:
    """One result as a two-column table (field, value): long identifiers stay on one line."""
    table = Table(title=title, title_justify="left", header_style="bold")
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold", no_wrap=True)
    for name, value in fields.items():
        _row(table, name, value)
    return table


# ---- option types --------------------------------------------------------------------------------


class RoleName(StrEnum):
    ADMIN = "ADMIN"
    PROVIDER = "PROVIDER"
    CONSUMER = "CONSUMER"
    AUDITOR = "AUDITOR"
    SUBJECT = "SUBJECT"


def _check_address(value: str) -> str:
    if not is_address(value):
        raise typer.BadParameter(f"{value!r} is not an Ethereum address (0x followed by 40 hex digits)")
    return str(to_checksum_address(value))


def _check_bytes32(value: str | None) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not BYTES32_PATTERN.match(value):
        raise typer.BadParameter(f"{value!r} must be 0x followed by 64 hex digits")
    return value.lower()


def _check_code(value: str) -> str:
    if not CODE_PATTERN.match(value):
        raise typer.BadParameter(f"{value!r} is not a catalog code (lower-case letters, digits, _ and -)")
    return value


ApiOpt = Annotated[str, typer.Option("--api", envvar="QCL_API", help="base URL of the Quanchenglian API")]
KeyOpt = Annotated[
    str | None,
    typer.Option(
        "--key",
        envvar="QCL_KEY",
        show_default=False,
        help="your Ethereum private key (hex), or a file holding it; prefer the env var to the command line",
    ),
]
AdminKeyOpt = Annotated[
    str | None,
    typer.Option(
        "--key",
        envvar="QCL_KEY",
        show_default=False,
        help="an ADMIN's private key (hex, or a file); default on the dev deployment: the admin key of accounts.json",
    ),
]
DataDirOpt = Annotated[
    Path, typer.Option("--data-dir", envvar="QCL_DATA_DIR", help="the dev deployment's directory (accounts.json)")
]
AddressArg = Annotated[str, typer.Argument(callback=_check_address, metavar="ADDRESS", help="the member's account")]
GrantIdArg = Annotated[str, typer.Argument(callback=_check_bytes32, metavar="GRANT_ID", help="0x + 64 hex digits")]
CodeArg = Annotated[str, typer.Argument(callback=_check_code, metavar="RESOURCE_CODE", help="catalog code")]


# ---- keys and sessions ---------------------------------------------------------------------------


def _private_key(value: str, source: str = "--key / QCL_KEY") -> str:
    """A hex private key given directly, or read from the file ``value`` names."""
    text = value.strip()
    if not re.fullmatch(r"(0x)?[0-9a-fA-F]{64}", text):
        path = Path(text).expanduser()
        if not path.is_file():
            _fail(f"{source} is neither a private key (64 hex digits) nor a readable file")
        try:
            text = path.read_text().strip()
        except OSError as exc:
            _fail(f"cannot read the key file {path}: {exc.strerror}")
        if not re.fullmatch(r"(0x)?[0-9a-fA-F]{64}", text):
            _fail(f"the key file {path} does not hold a private key (64 hex digits)")
    try:
        Account.from_key(text)
    except ValueError:
        _fail(f"{source} is not a valid secp256k1 private key")
    return text if text.startswith("0x") else "0x" + text


def _connect(api: str, private_key: str) -> QclClient:
    """The session used by every command (tests replace this to run the CLI against a TestClient)."""
    return QclClient.connect(api.rstrip("/"), private_key)


def _check_api(api: str) -> None:
    if not api.startswith(("http://", "https://")):
        _fail(f"--api / QCL_API must be an http:// or https:// URL, got {api!r}")


def _member(api: str, key: str | None) -> QclClient:
    _check_api(api)
    if not key:
        _fail("no key: pass --key or set QCL_KEY to your Ethereum private key (hex, or a file holding it)")
    return _connect(api, _private_key(key))


def _is_dev_deployment(client: QclClient, data_dir: Path) -> bool:
    """Does the API serve the deployment whose manifest the dev directory holds?"""
    manifest = data_dir / "deployment.json"
    if not manifest.is_file():
        return False
    try:
        local = json.loads(manifest.read_text())
    except (OSError, ValueError):
        return False
    health = client.call("GET", "/health")
    contracts = {name: str(addr).lower() for name, addr in dict(health.get("contracts") or {}).items()}
    ours = {name: str(addr).lower() for name, addr in dict(local.get("contracts") or {}).items()}
    return bool(ours) and contracts == ours and health.get("chain_id") == local.get("chain_id")


def _admin(api: str, key: str | None, data_dir: Path, *, require_admin: bool = True) -> tuple[QclClient, bool]:
    """Log in as ADMIN; returns the session and whether the dev accounts file supplied the key."""
    _check_api(api)
    from_dev = False
    with _guard(api):
        if key:
            client = _connect(api, _private_key(key))
        else:
            accounts = data_dir / "accounts.json"
            if not accounts.is_file():
                _fail(
                    f"no --key / QCL_KEY given, and no dev accounts file {accounts} "
                    "(set QCL_DATA_DIR to the dev deployment's directory, or pass an ADMIN key)"
                )
            probe = _connect(api, Account.create().key)
            if not _is_dev_deployment(probe, data_dir):
                _fail(
                    f"no --key / QCL_KEY given, and {api} is not the dev deployment of {data_dir} "
                    "(its contracts differ from deployment.json); pass an ADMIN key"
                )
            try:
                admin_key = "0x" + bytes(dev_accounts(accounts).admin.key).hex()
            except (OSError, ValueError, KeyError) as exc:
                _fail(f"cannot read the dev ADMIN key from {accounts}: {exc}")
            client, from_dev = _connect(api, admin_key), True
        roles = client.login()
    if require_admin and "ADMIN" not in roles:
        _fail(f"{client.address} is not an ADMIN (roles: {', '.join(roles) or 'none'})")
    return client, from_dev


# ---- files ---------------------------------------------------------------------------------------


def _write_private(path: Path, data: bytes, *, exclusive: bool = False) -> None:
    """Write ``data`` to ``path`` with mode 0600 (the mode is set before any byte is written)."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    try:
        fd = os.open(path, flags, 0o600)
        os.fchmod(fd, 0o600)  # an existing file keeps its mode on O_TRUNC
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
    except FileExistsError:
        _fail(f"{path} exists; refusing to overwrite a key (pass --force to replace it)")
    except OSError as exc:
        _fail(f"cannot write {path}: {exc.strerror}")


def _write_json(path: Path, body: Any, *, private: bool = False) -> None:
    data = (json.dumps(body, indent=2) + "\n").encode()
    if private:
        tmp = path.with_name(path.name + ".tmp")
        _write_private(tmp, data)
        tmp.replace(path)
        return
    try:
        path.write_bytes(data)
    except OSError as exc:
        _fail(f"cannot write {path}: {exc.strerror}")


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text())
    except OSError as exc:
        _fail(f"cannot read {what} {path}: {exc.strerror}")
    except ValueError as exc:
        _fail(f"{what} {path} is not JSON: {exc}")


def _check_writable(path: Path) -> None:
    parent = path.expanduser().resolve().parent
    if not parent.is_dir():
        _fail(f"cannot write {path}: the directory {parent} does not exist")


def _load_hpke_key(path: Path) -> x25519.X25519PrivateKey:
    """A raw X25519 private key in hex (what ``qcl client keygen`` writes)."""
    try:
        text = path.read_text().strip()
    except OSError as exc:
        _fail(f"cannot read the HPKE key {path}: {exc.strerror}")
    text = text[2:] if text.startswith("0x") else text
    try:
        raw = bytes.fromhex(text)
        if len(raw) != 32:
            raise ValueError
        return x25519.X25519PrivateKey.from_private_bytes(raw)
    except ValueError:
        _fail(f"{path} does not hold a raw X25519 private key (64 hex digits, as `qcl client keygen` writes)")


def _public_hex(key: x25519.X25519PrivateKey) -> str:
    return "0x" + key.public_key().public_bytes_raw().hex()


# ---- qcl admin -----------------------------------------------------------------------------------


def _member_table(title: str, body: dict[str, Any]) -> Table:
    return _record(
        title,
        {
            "address": body.get("address"),
            "roles": ", ".join(body.get("roles") or []),
            "name": body.get("name"),
            "org code": body.get("org_code"),
            "org id": body.get("org_id"),
            "HPKE key": body.get("hpke_public_key"),
            "suspended": "yes" if body.get("suspended") else "no",
            "tx": body.get("tx_hash"),
        },
    )


@admin_app.command("onboard")
def admin_onboard(
    address: AddressArg,
    role: Annotated[list[RoleName], typer.Option("--role", case_sensitive=False, help="a role; repeat for several")],
    name: Annotated[str, typer.Option("--name", help="the member's name (kept off chain)")],
    org_code: Annotated[
        str | None, typer.Option("--org-code", help="organisation code; only its keccak256 goes on chain")
    ] = None,
    hpke_key: Annotated[
        str | None,
        typer.Option("--hpke-key", metavar="HEX", help="HPKE public key (32 or 1216 bytes hex); CONSUMER only"),
    ] = None,
    approval: Annotated[
        Path | None,
        typer.Option(
            "--approval",
            metavar="FILE",
            help="AUDITOR only: the enrolment approval an existing auditor signed (`qcl client cosign`)",
        ),
    ] = None,
    api: ApiOpt = DEFAULT_API,
    key: AdminKeyOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
) -> None:
    """Onboard a member: roles and HPKE key on chain, name and org code off chain.

    An AUDITOR needs an existing auditor's co-signature (SPEC §9.8): without --approval this prints
    the AuditorEnrolment message (JSON) for that auditor to sign with `qcl client cosign`; run it
    again with --approval FILE (the signed approval) to enrol.
    """
    roles = list(dict.fromkeys(r.value for r in role))
    if approval is not None and "AUDITOR" not in roles:
        _fail("--approval is only for enrolling an AUDITOR (add --role AUDITOR or drop --approval)")
    if "AUDITOR" in roles and "ADMIN" in roles:
        _fail("no account may hold both ADMIN and AUDITOR (separation of duties)")
    public: bytes | None = None
    if hpke_key is not None:
        text = hpke_key.strip().removeprefix("0x")
        try:
            public = bytes.fromhex(text)
        except ValueError:
            _fail("--hpke-key must be hex")
        if len(public) not in (32, 1216):
            _fail(f"--hpke-key must be 32 (X25519) or 1216 (MLKEM768-X25519) bytes, got {len(public)}")
    if "CONSUMER" in roles and public is None:
        _fail("a CONSUMER needs --hpke-key (create a key pair with `qcl client keygen --out FILE`)")
    if "CONSUMER" not in roles and public is not None:
        _fail("only a CONSUMER registers an HPKE key; drop --hpke-key or add --role CONSUMER")
    signed_approval: dict[str, Any] | None = None
    if approval is not None:
        signed_approval = _read_approval(approval, address)
    client, _ = _admin(api, key, data_dir)
    if "AUDITOR" in roles and signed_approval is None:
        message = QclClient.auditor_enrolment_message(address)
        _say(
            f"{address} is NOT onboarded yet: an AUDITOR is enrolled only with an existing auditor's signature. "
            "Give the AuditorEnrolment message below (JSON) to an auditor, who signs it with "
            "`qcl client cosign FILE --out APPROVAL`; then run this command again with --approval APPROVAL."
        )
        out.print(json.dumps(message, indent=2), soft_wrap=True)
        return
    with _guard(api):
        body = client.onboard(
            address, roles, name, org_code=org_code, hpke_public_key=public, auditor_approval=signed_approval
        )
    out.print(_member_table("member onboarded", body))


def _read_approval(path: Path, address: str) -> dict[str, Any]:
    """A signed AuditorEnrolment approval (as `qcl client cosign` writes it) for ``address``."""
    body = _read_json(path, "the approval")
    try:
        message, signature = body["message"], body["signature"]
        same = str(message["account"]).lower() == address.lower()
        _ = (int(message["nonce"]), int(message["deadline"]))  # both must be integers
        if not (isinstance(signature, str) and re.fullmatch(r"0x[0-9a-fA-F]{130}", signature)):
            raise TypeError
    except (KeyError, TypeError, ValueError):
        _fail(f"{path} is not a signed AuditorEnrolment approval (as `qcl client cosign` writes it)")
    if not same:
        _fail(f"{path} approves {message['account']}, not {address}")
    return {"message": dict(message), "signature": signature}


@admin_app.command("suspend")
def admin_suspend(
    address: AddressArg,
    reinstate: Annotated[bool, typer.Option("--reinstate", help="lift the suspension instead")] = False,
    api: ApiOpt = DEFAULT_API,
    key: AdminKeyOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
) -> None:
    """Suspend a member (it can do nothing until reinstated), or reinstate it with --reinstate."""
    client, _ = _admin(api, key, data_dir)
    with _guard(api):
        body = client.suspend(address, suspended=not reinstate)
    out.print(_member_table("member reinstated" if reinstate else "member suspended", body))


@catalog_app.command("add")
def catalog_add(
    code: Annotated[str, typer.Argument(callback=_check_code, metavar="CODE", help="catalog code, e.g. id_card")],
    name: Annotated[str, typer.Option("--name", help="what the resource is")],
    provider: Annotated[
        str, typer.Option("--provider", callback=_check_address, metavar="ADDRESS", help="the active PROVIDER")
    ],
    sensitivity: Annotated[
        int, typer.Option("--sensitivity", min=1, max=4, help="1 public … 4 highly sensitive (3-4: named consent)")
    ],
    api: ApiOpt = DEFAULT_API,
    key: AdminKeyOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
) -> None:
    """Register a data resource: its provider and sensitivity go on chain."""
    client, _ = _admin(api, key, data_dir)
    with _guard(api):
        body = client.register_resource(code, name, provider, sensitivity)
    fields = {"code": code, "name": name, "provider": provider, "sensitivity": sensitivity}
    out.print(_record("resource registered", {**fields, "resource id": body["resource"], "tx": body.get("tx_hash")}))


def _catalog(client: QclClient) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    while True:
        page = client.call("GET", "/v1/catalog", params={"offset": len(items), "limit": 500})
        items.extend(page["items"])
        if not page["items"] or len(items) >= int(page["total"]):
            return items


@catalog_app.command("list")
def catalog_list(api: ApiOpt = DEFAULT_API, key: AdminKeyOpt = None, data_dir: DataDirOpt = DEFAULT_DATA_DIR) -> None:
    """Every catalog resource with its current provider and sensitivity (any member may list)."""
    client, _ = _admin(api, key, data_dir, require_admin=False)
    with _guard(api):
        items = _catalog(client)
    table = _table(f"data catalog ({len(items)} resources)", "code", "name", "provider", "sensitivity")
    for item in items:
        _row(table, item["code"], item["name"], item["provider"], item["sensitivity"])
    out.print(table)


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
    return _connect(api, "0x" + bytes(auditor.key).hex())


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

    state: dict[str, str] = {}
    with _guard(api):
        for member in DEMO_MEMBERS:
            entry = accounts[member.slug]
            hpke = bytes.fromhex(entry["hpke_public_key"][2:]) if member.consumer else None
            approval = None
            if "AUDITOR" in member.roles:  # co-signed by the dev deployment's first auditor (SPEC §9.8)
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

        added = 0
        for code, (name, provider, sensitivity) in DEMO_CATALOG.items():
            address = accounts[provider]["address"]
            try:
                admin.register_resource(code, name, address, sensitivity)
                added += 1
            except ApiError as exc:
                if exc.code != "resource_exists":
                    raise
        _say(f"catalog: {added} resources registered, {len(DEMO_CATALOG) - added} existed")

        sessions: dict[str, QclClient] = {}

        def session(slug: str) -> QclClient:
            if slug not in sessions:
                sessions[slug] = _connect(api, accounts[slug]["private_key"])
                sessions[slug].login()
            return sessions[slug]

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
                doc = held[code]
                documents.append(
                    {"subject": subject, "resource": code, "issuer": provider, "document_id": doc["document_id"]}
                )
        demo["documents"] = documents
        _say(f"documents: {issued} issued into the subjects' boxes, {len(documents) - issued} existed")

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
        demo["grants"] = grants
        _write_json(demo_path, demo, private=True)
        _say(f"grants: {signed} signed by their subjects, {len(grants) - signed} existed")

        index, code = DEMO_RELEASE
        grant = grants[index]
        department, subject_slug = grant["grantee"], grant["subject"]
        subject_address = accounts[subject_slug]["address"]
        log = session(subject_slug).access_log(subject_address)
        done = [e for e in log if e["authority"] == grant["grant_id"] and e["kind"] == "grant"]
        if done:
            release = {**(previous.get("release") or {}), "grant_id": grant["grant_id"], "tx_hash": done[0]["tx_hash"]}
            _say("release: already done")
        else:
            dept = session(department)
            body = dept.release_request(grant["grant_id"], code)
            answer = dept.call("POST", "/v1/releases", json=body)
            dept_key = x25519.X25519PrivateKey.from_private_bytes(
                bytes.fromhex(accounts[department]["hpke_private_key"])
            )
            opened = open_release(
                answer,
                dept_key,
                grant_id=bytes.fromhex(grant["grant_id"][2:]),
                request_id=bytes.fromhex(body["message"]["requestId"][2:]),
            )
            if opened.content != demo_document(subject_slug, code):
                _fail("the demo release opened to unexpected content")
            release = {
                "grant_id": grant["grant_id"],
                "subject": subject_slug,
                "department": department,
                "resource": code,
                "request_id": body["message"]["requestId"],
                "document_id": opened.document_id,
                "commitment": opened.commitment,
                "tx_hash": answer["tx_hash"],
            }
            _say(
                f"release: {MEMBERS_BY_SLUG[department].name} received {code} of {subject_slug} (tx {answer['tx_hash']})"
            )
        demo["release"] = release
        demo["scan_to_authorise"] = demo_scan_to_authorise(session("li"), session("hpf"), data_dir)
    _write_json(demo_path, demo, private=True)
    _print_demo(demo, state)


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
