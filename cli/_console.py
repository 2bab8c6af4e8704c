"""Where ``qcl`` writes progress and errors (stderr): one line each, errors end the command."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console

console = Console(stderr=True)


def say(message: str) -> None:
    console.print(f"[bold cyan]qcl[/] {message}")


def fail(message: str, code: int = 2) -> NoReturn:
    console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)
