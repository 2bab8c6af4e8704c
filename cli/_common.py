"""What the ``qcl admin``, ``qcl client`` and ``qcl demo`` commands share: options, key and
session handling, output.

Every such command is an API client (:class:`qcl_client.QclClient`): it signs locally with the key
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
from collections.abc import Iterator
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
from qcl_client import ApiError, DecryptionError, LoginRefused, QclClient, ReleaseError

from ._console import fail, say

DEFAULT_API = default_api_url()
DEFAULT_DATA_DIR = Path(".qcl/dev")
DEMO_FILE = "demo-accounts.json"
CODE_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,63}$")  # api.routers.catalog.CODE_PATTERN
BYTES32_PATTERN = re.compile(r"^0x[0-9a-fA-F]{64}$")

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
