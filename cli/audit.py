"""``qcl audit``: the auditor's commands, through the API with the auditor's own key."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from api.settings import default_api_url
from qcl_client import ApiError, LoginRefused, QclClient

audit_app = typer.Typer(help="Auditors: trail, verification, reports.", no_args_is_help=True)
console = Console(stderr=True)
out = Console()

ApiOption = Annotated[str, typer.Option("--api", envvar="QCL_API", help="API base URL")]
#: QCL_PUBLIC_URL, else http://QCL_API_HOST:QCL_API_PORT: where ``qcl dev`` serves.
DEFAULT_API = default_api_url()
KeyOption = Annotated[str | None, typer.Option("--key", envvar="QCL_KEY", help="the auditor's private key")]


def _client(api: str, key: str | None) -> QclClient:
    if not key:
        console.print("[bold red]error:[/] give the auditor's key with --key or QCL_KEY")
        raise typer.Exit(2)
    try:
        client = QclClient.connect(api, key)
        client.login()
    except (ApiError, LoginRefused, httpx.HTTPError, ValueError) as exc:
        console.print(f"[bold red]error:[/] cannot log in at {api}: {exc}")
        raise typer.Exit(2) from None
    return client


@audit_app.command("trail")
def trail(
    api: ApiOption = DEFAULT_API,
    key: KeyOption = None,
    subject: Annotated[str | None, typer.Option()] = None,
    grantee: Annotated[str | None, typer.Option()] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 100,
) -> None:
    """Grants, revocations, pauses, releases and emergencies in chain order."""
    client = _client(api, key)
    params = {k: v for k, v in {"subject": subject, "grantee": grantee, "limit": str(limit)}.items() if v}
    try:
        items = client.call("GET", "/v1/audit/trail", params=params)["items"]
    except (ApiError, httpx.HTTPError) as exc:
        console.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(2) from None
    table = Table("block", "event", "grant / emergency", "party", "tx")
    for e in items:
        args = e["args"]
        ref = args.get("grantId") or args.get("emergencyId") or ""
        party = args.get("grantee") or args.get("consumer") or args.get("subject") or ""
        table.add_row(str(e["block_number"]), e["event"], ref[:18] + "…", party, e["tx_hash"][:14] + "…")
    out.print(table)


_STAGES = {
    "events": "replaying events",
    "log": "comparing the release log",
    "calldata": "scanning calldata",
    "signatures": "checking signatures",
}


@audit_app.command("verify")
def verify(
    api: ApiOption = DEFAULT_API,
    key: KeyOption = None,
    from_block: Annotated[int, typer.Option(min=0)] = 0,
    to_block: Annotated[int | None, typer.Option(min=0)] = None,
    poll: Annotated[float, typer.Option(min=0.05, max=60, help="seconds between progress polls")] = 0.5,
    json_out: Annotated[Path | None, typer.Option("--json", help="write the report here")] = None,
) -> None:
    """SPEC §7 checks over a block range, run by the API as a job, with a progress bar; exit 1 on any violation."""
    client = _client(api, key)
    body = {"from_block": from_block}
    if to_block is not None:
        body["to_block"] = to_block
    try:
        job = client.call("POST", "/v1/audit/verifications", json=body)
        with Progress(
            TextColumn("[bold cyan]qcl[/] verifying: {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            console=console,
        ) as bar:
            task = bar.add_task("replaying events", total=job["total_events"])
            while job["status"] in ("queued", "running"):
                time.sleep(poll)
                job = client.call("GET", f"/v1/audit/verifications/{job['id']}")
                stage = _STAGES.get(job["stage"], job["stage"])
                bar.update(task, completed=job["events"], description=stage)
            bar.update(task, completed=job["events"], description="done")
    except (ApiError, httpx.HTTPError) as exc:
        console.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(2) from None
    if job["status"] == "failed":
        error = job["error"] or {}
        console.print(f"[bold red]error:[/] {error.get('code')}: {error.get('detail')}")
        raise typer.Exit(2)
    combined = job["report"]
    violations = combined["violations"]
    head = combined["to_block"]
    if json_out:
        json_out.write_text(json.dumps(combined, indent=2))
    for v in violations:
        out.print(
            f"[red]check {v['check']} {v['code']}[/]: {v['detail']} (tx {v.get('tx_hash')}, entry {v.get('log_index')})"
        )
    for r in combined.get("relocated", []):
        out.print(
            f"[yellow]relocated[/]: entry {r['log_index']} logged at block {r['logged_block']}, recorded again at "
            f"block {r['chain_block']} after its block was lost (tx {r['tx_hash']})"
        )
    verdict = "[green]no violation found[/]" if not violations else f"[red]{len(violations)} violation(s)[/]"
    out.print(
        f"{combined['releases']} releases, {combined['emergency_releases']} emergency releases, "
        f"{combined['grants']} grants in blocks {from_block}-{head}: {verdict}"
    )
    raise typer.Exit(0 if not violations else 1)


@audit_app.command("report")
def report(
    api: ApiOption = DEFAULT_API,
    key: KeyOption = None,
    subject: Annotated[str | None, typer.Option()] = None,
    department: Annotated[str | None, typer.Option()] = None,
    html: Annotated[Path | None, typer.Option(help="write the HTML page here")] = None,
) -> None:
    """An auditor's report for a subject or department (JSON on stdout, or an HTML page)."""
    client = _client(api, key)
    params = {k: v for k, v in {"subject": subject, "department": department}.items() if v}
    try:
        if html:
            page = client.http.get(
                "/v1/audit/reports",
                params=params | {"format": "html", "verify": "true"},
                headers={"Authorization": f"Bearer {client.token}"},
            )
            page.raise_for_status()
            html.write_text(page.text)
            console.print(f"[bold cyan]qcl[/] report written to {html}")
        else:
            out.print_json(json.dumps(client.call("GET", "/v1/audit/reports", params=params)))
    except (ApiError, httpx.HTTPError) as exc:
        console.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(2) from None
