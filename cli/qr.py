"""``qcl grant qr`` and ``qcl grant relay``: scan to authorise (SPEC §9.6, 扫码授权).

The citizen's side signs a one-time counter grant and shows it as a QR code (in the terminal, and
as PNG or SVG with ``segno``); the clerk's side relays a scanned ``qcl-grant:`` text, after checking
that it is addressed to the clerk's own account and within the counter limits.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import httpx
import segno
import typer
from eth_account import Account

from api.settings import default_api_url
from qcl_client import ApiError, QclClient, QrGrantError

from ._console import fail, say

DEFAULT_API = default_api_url()

grant_app = typer.Typer(help="Scan to authorise: counter grants as QR codes (SPEC §9.6).", no_args_is_help=True)

ApiOpt = Annotated[str, typer.Option("--api", envvar="QCL_API", help="base URL of the Quanchenglian API")]
KeyOpt = Annotated[
    str | None,
    typer.Option("--key", envvar="QCL_KEY", help="your private key (hex, or a file holding it)", show_default=False),
]


def _key(value: str | None) -> str:
    if not value:
        fail("no key: pass --key or set QCL_KEY to your Ethereum private key (hex, or a file holding it)")
    path = Path(value)
    text = path.read_text().strip() if len(value) < 200 and path.is_file() else value.strip()
    try:
        Account.from_key(text)
    except ValueError:
        fail("--key is not a valid secp256k1 private key")
    return text if text.startswith("0x") else "0x" + text


def _connect(api: str, private_key: str) -> QclClient:
    """The session (tests replace this to run against a TestClient)."""
    return QclClient.connect(api.rstrip("/"), private_key)


def _guarded(api: str, action):  # type: ignore[no-untyped-def]
    try:
        return action()
    except QrGrantError as exc:
        fail(f"not a valid counter grant: {exc}")
    except ApiError as exc:
        fail(f"the API refused ({exc.status} {exc.code}): {exc.body.get('detail') or exc.body}")
    except httpx.HTTPError as exc:
        fail(f"cannot reach the API at {api}: {exc or type(exc).__name__}")


@grant_app.command("qr")
def grant_qr(
    grantee: Annotated[str, typer.Option("--grantee", help="the department's account (the one scanning)")],
    resource: Annotated[list[str], typer.Option("--resource", help="catalog code; repeat for several")],
    purpose: Annotated[str, typer.Option("--purpose", help="purpose code")],
    valid_for: Annotated[int, typer.Option("--valid-for", min=60, help="seconds, at most 86400 (one day)")] = 3600,
    max_uses: Annotated[int, typer.Option("--max-uses", min=1, help="releases allowed (at least 1)")] = 1,
    png: Annotated[Path | None, typer.Option("--png", help="also write the QR as PNG")] = None,
    svg: Annotated[Path | None, typer.Option("--svg", help="also write the QR as SVG")] = None,
    terminal: Annotated[bool, typer.Option("--terminal/--no-terminal", help="draw the QR in the terminal")] = True,
    api: ApiOpt = DEFAULT_API,
    key: KeyOpt = None,
) -> None:
    """Sign a one-time counter grant and show it as a QR code; its text goes to stdout last."""
    client = _connect(api, _key(key))
    text: str = _guarded(
        api, lambda: client.grant_qr(grantee, resource, purpose, valid_for=valid_for, max_uses=max_uses)
    )
    code = segno.make(text, error="m", micro=False)
    if terminal:
        code.terminal(out=sys.stdout, compact=True)
    if png is not None:
        code.save(str(png), kind="png", scale=4, border=4)
        say(f"QR written to {png} (version {code.version})")
    if svg is not None:
        code.save(str(svg), kind="svg", scale=4, border=4)
        say(f"QR written to {svg}")
    typer.echo(text)


@grant_app.command("relay")
def grant_relay(
    text: Annotated[str, typer.Argument(metavar="TEXT", help="the scanned qcl-grant:… text ('-' reads stdin)")],
    api: ApiOpt = DEFAULT_API,
    key: KeyOpt = None,
) -> None:
    """As the department at the counter: relay a scanned grant addressed to you (POST /v1/grants)."""
    if text == "-":
        text = sys.stdin.read()
    client = _connect(api, _key(key))
    _guarded(api, client.login)
    recorded = _guarded(api, lambda: client.relay_qr(text))
    typer.echo(f"grant {recorded['grant_id']} recorded in block {recorded['block_number']} (tx {recorded['tx_hash']})")


def demo_scan_to_authorise(citizen: QclClient, desk: QclClient, data_dir: Path) -> dict[str, Any]:
    """What ``qcl demo seed`` shows of notifications and scan to authorise: a citizen's counter
    grant for a department (one use, one hour) drawn as a QR to ``<data_dir>/demo-grant-qr.png``
    and left unrelayed, and the department's event feed so far."""
    text = citizen.grant_qr(desk.address, ["tax_record"], "provident-fund-withdrawal", valid_for=3600, max_uses=1)
    png = data_dir / "demo-grant-qr.png"
    segno.make(text, error="m", micro=False).save(str(png), kind="png", scale=4, border=4)
    events = int(desk.call("GET", "/v1/events", params={"limit": 1})["total"])
    say(f"scan to authorise: a counter grant as a QR in {png} (relay it with `qcl grant relay TEXT`)")
    say(f"events: the department has {events} so far (GET /v1/events; POST /v1/webhooks to have them pushed)")
    return {"qr_text": text, "qr_png": str(png), "department_events": events}
