"""``qcl admin``: onboard and suspend members, keep the data catalog (ADMIN), through the API."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any

import typer

from qcl_client import QclClient

from ._common import (
    DEFAULT_API,
    DEFAULT_DATA_DIR,
    AddressArg,
    AdminKeyOpt,
    ApiOpt,
    DataDirOpt,
    RoleName,
    _admin,
    _check_address,
    _check_code,
    _fail,
    _guard,
    _member_table,
    _read_json,
    _record,
    _row,
    _say,
    _table,
    out,
)

admin_app = typer.Typer(
    help="Administration (ADMIN): onboard and suspend members, keep the data catalog.", no_args_is_help=True
)
catalog_app = typer.Typer(help="The data catalog: register and list resources.", no_args_is_help=True)
admin_app.add_typer(catalog_app, name="catalog")


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
