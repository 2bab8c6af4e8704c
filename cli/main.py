"""The ``qcl`` command line."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
import uvicorn
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from api.app import create_app
from api.runtime import bootstrap, open_node, open_vault, release_relayer
from api.settings import Settings
from chain_client import ChainError, compile_contracts, free_port
from chain_client.nodes import port_in_use
from vault import VaultError

from ._console import console, fail, say
from .admin import admin_app
from .audit import audit_app
from .backup import vault_backup, vault_restore
from .client import client_app
from .demo import demo_app
from .qr import grant_app
from .worker import exit_without_stragglers, run_worker

app = typer.Typer(help="Quanchenglian ledger: development and operations commands.", no_args_is_help=True)
vault_app = typer.Typer(
    help="The digital safe-deposit box: key ring, rotation, backup and restore.", no_args_is_help=True
)
vault_app.command("backup")(vault_backup)
vault_app.command("restore")(vault_restore)
app.add_typer(vault_app, name="vault")
app.add_typer(admin_app, name="admin")
app.add_typer(client_app, name="client")
app.add_typer(demo_app, name="demo")
app.add_typer(audit_app, name="audit")
app.add_typer(grant_app, name="grant")


@app.command()
def dev() -> None:
    """Start the development deployment (SPEC §8): chain, contracts and API. Ctrl-C stops all."""
    try:
        settings = Settings()
    except ValueError as exc:
        fail(f"invalid configuration: {exc}")
        return
    if port_in_use(settings.api_port, settings.api_host):
        fail(f"{settings.api_host}:{settings.api_port} is already in use (set QCL_API_PORT)")
    node = None
    try:
        where = (
            settings.chain
            if "://" in settings.chain
            else f"{settings.chain} on {settings.chain_host}:{settings.chain_port}"
        )
        say(f"starting chain: {where}")
        node = open_node(settings)
        if settings.chain_restart:
            node.supervise()  # a node that dies is started again from its state file
        say(f"chain {node.chain_id} answers at {node.url or 'in-process'}")
        ledger = bootstrap(settings, node, say)
        say(f"dev accounts in {settings.accounts_path} (admin {ledger.tx.address})")
        say(f"API on http://{settings.api_host}:{settings.api_port}  (docs: /docs, health: /health) — Ctrl-C stops")
        vault = open_vault(settings, ledger)
        api = create_app(settings, ledger=ledger, vault=vault, relayer=release_relayer(settings, ledger, vault.store))
        uvicorn.run(api, **settings.uvicorn_options(), log_level="warning", loop="uvloop", http="httptools")  # type: ignore[arg-type]
    except ChainError as exc:
        fail(str(exc))
    finally:
        if node is not None:
            node.stop(timeout=max(3.0, settings.shutdown_timeout))
            say("chain stopped")
        exit_without_stragglers()


@app.command()
def serve(
    workers: Annotated[int, typer.Option("--workers", min=1, max=64, help="API processes (uvicorn workers)")] = 1,
) -> None:
    """Serve the API (stateless: no background loop; run `qcl worker` beside it) against QCL_CHAIN.

    With more than one process QCL_CHAIN must be the JSON-RPC URL of a running node, and the
    database should be PostgreSQL (QCL_DATABASE_URL).
    """
    try:
        settings = Settings()
    except ValueError as exc:
        fail(f"invalid configuration: {exc}")
    if workers > 1 and not settings.chain.startswith(("http://", "https://")):
        fail("`qcl serve --workers N` needs QCL_CHAIN set to a node's URL (each process connects to it)")
    uvicorn.run(
        "api.asgi:serve_app",
        factory=True,
        **settings.uvicorn_options(),  # type: ignore[arg-type]
        workers=workers,
        # a process answers the supervisor's pings only once spawned and imported, and late when
        # busy with a burst: under a loaded host or a container's CPU quota that takes longer than
        # uvicorn's 5 s, and the supervisor killed and restarted processes before they ever served,
        # or mid-load
        timeout_worker_healthcheck=60,
        loop="uvloop",
        http="httptools",
        # the supervisor's own lines (a process started, one that stopped answering replaced) are
        # what an operator needs to see; requests are not logged one by one
        log_level="info",
        access_log=False,
    )
    exit_without_stragglers()


@app.command()
def worker() -> None:
    """Background work: the release relayer, the chain indexer, checkpoints (one active at a time)."""
    run_worker()


@app.command("bench", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def bench(ctx: typer.Context) -> None:
    """The release-path benchmark (scripts/bench_release.py; its options pass through, e.g.
    `qcl bench --releases 5000 --clients 32 128`), or `qcl bench faults` (scripts/bench_faults.py:
    faults injected under load): each rewrites its section of BENCHMARKS.md."""
    import subprocess

    from chain_client._paths import project_root

    args = list(ctx.args)
    name = "bench_faults.py" if args[:1] == ["faults"] else "bench_release.py"  # `qcl bench faults …`
    script = project_root() / "scripts" / name
    raise typer.Exit(subprocess.call([sys.executable, str(script), *args[name == "bench_faults.py" :]]))


@app.command("compile")
def compile_cmd() -> None:
    """Compile the contracts (cached by source hash) and print their sizes."""
    try:
        result = compile_contracts()
    except ChainError as exc:
        fail(str(exc))
        return
    for name, art in sorted(result.contracts.items()):
        if art.source.startswith("contracts/") and art.deployed_bytecode:
            console.print(f"{name:20} {len(art.deployed_bytecode) // 2 - 1:6} bytes  ({art.source})")
    console.print(f"solc {result.solc_version} via {result.route}; source hash {result.source_hash}")


@app.command("free-port")
def free_port_cmd() -> None:
    """Print a free TCP port on 127.0.0.1 (used by scripts and tests)."""
    print(free_port())


@vault_app.command("rotate")
def vault_rotate() -> None:
    """Rotate the key-encryption key: re-wrap every data key, retire unused versions (resumable)."""
    try:
        settings = Settings()
        vault = open_vault(settings, None)
    except (ValueError, VaultError) as exc:
        fail(str(exc))
        return
    with Progress(
        TextColumn("[bold cyan]qcl[/] re-wrapping data keys"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("rotate", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        try:
            report = vault.rotate(progress=progress)
        except VaultError as exc:
            fail(str(exc))
            return
    retired = ", ".join(map(str, report.retired)) or "none"
    say(f"key version {report.version} is current; {report.rewrapped} data keys re-wrapped; retired: {retired}")


@vault_app.command("status")
def vault_status() -> None:
    """Key versions of the key ring and how many documents each wraps."""
    try:
        settings = Settings()
        vault = open_vault(settings, None)
        counts = vault.key_usage()
    except (ValueError, VaultError) as exc:
        fail(str(exc))
        return
    say(f"profile {vault.keyring.profile.name}; current key version {vault.keyring.current_version()}")
    for version in vault.keyring.versions():
        say(f"  version {version}: {counts.get(version, 0)} data keys")


def main() -> None:  # pragma: no cover - console entry point
    sys.exit(app())
