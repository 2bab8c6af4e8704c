"""Where the project's files are: the repository root, its contracts and its npm tools."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from .errors import ToolMissing


def project_root() -> Path:
    """The repository root (``QCL_PROJECT_ROOT`` overrides the checkout this package is in)."""
    override = os.environ.get("QCL_PROJECT_ROOT")
    if override:
        return Path(override).resolve()
    return Path(__file__).resolve().parent.parent


def node_modules() -> Path:
    return project_root() / "node_modules"


def node_binary() -> str:
    """The Node.js interpreter on PATH; a clear error when there is none."""
    found = shutil.which("node")
    if found is None:
        raise ToolMissing("node", "Node.js 20 or newer is needed: install it, then run `make run` again.")
    return found


def npm_package(name: str) -> Path:
    """Directory of an installed npm package; a clear error when it is missing."""
    path = node_modules() / name
    if not path.is_dir():
        raise ToolMissing(name, f"the npm package {name} is not installed under {node_modules()}: run `make install`.")
    return path
