"""Compile the project's contracts from one standard-JSON input.

The input is built in one place (:func:`standard_json_input`) from ``contracts/compiler.json``,
the settings file Hardhat reads too. Every imported source (OpenZeppelin included) is resolved
here and embedded in the input, so both compiler routes see exactly the same bytes:

* a native ``solc`` of the pinned version, through py-solc-x, when one is installed;
* otherwise the official npm ``solc`` (WebAssembly), through ``solc_compile.cjs``.

Artifacts are cached by the SHA-256 of the input (sources + settings + version).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ._paths import node_binary, node_modules, npm_package, project_root
from .errors import CompilationFailed, ToolMissing

Route = Literal["native", "npm"]

_IMPORT_RE = re.compile(r'^\s*import\s+(?:[^"\']*?\bfrom\s+)?["\']([^"\']+)["\']\s*;', re.MULTILINE)
_OUTPUTS = ["abi", "evm.bytecode.object", "evm.deployedBytecode.object", "evm.methodIdentifiers"]


@dataclass(frozen=True)
class CompiledContract:
    name: str
    source: str
    abi: list[dict[str, Any]]
    bytecode: str
    deployed_bytecode: str


@dataclass(frozen=True)
class CompilationResult:
    """Artifacts of one compilation, keyed by contract name."""

    contracts: dict[str, CompiledContract]
    solc_version: str
    source_hash: str
    route: Route

    def __getitem__(self, name: str) -> CompiledContract:
        return self.contracts[name]


def compiler_config(root: Path | None = None) -> dict[str, Any]:
    """The pinned compiler version and settings from ``contracts/compiler.json``."""
    path = (root or project_root()) / "contracts" / "compiler.json"
    config: dict[str, Any] = json.loads(path.read_text())
    return config


def _deployable_sources(contracts_dir: Path) -> list[Path]:
    return sorted(
        p
        for p in contracts_dir.rglob("*.sol")
        if "test" not in p.relative_to(contracts_dir).parts and not p.name.endswith(".t.sol")
    )


def _resolve_import(importer: str, target: str) -> str:
    if target.startswith("."):
        parts: list[str] = importer.split("/")[:-1]
        for piece in target.split("/"):
            if piece == "..":
                parts.pop()
            elif piece != ".":
                parts.append(piece)
        return "/".join(parts)
    return target


def _read_source(unit: str, root: Path) -> str:
    for base in (root, node_modules()):
        candidate = base / unit
        if candidate.is_file():
            return candidate.read_text()
    raise CompilationFailed(f"cannot resolve import {unit!r} (looked in {root} and {node_modules()})")


def standard_json_input(root: Path | None = None) -> dict[str, Any]:
    """The standard-JSON input for every deployable contract under ``contracts/``."""
    root = root or project_root()
    pending = [p.relative_to(root).as_posix() for p in _deployable_sources(root / "contracts")]
    sources: dict[str, dict[str, str]] = {}
    while pending:
        unit = pending.pop()
        if unit in sources:
            continue
        content = _read_source(unit, root)
        sources[unit] = {"content": content}
        pending.extend(_resolve_import(unit, t) for t in _IMPORT_RE.findall(content))
    settings = dict(compiler_config(root)["settings"])
    settings["outputSelection"] = {"*": {"*": _OUTPUTS}}
    return {"language": "Solidity", "sources": dict(sorted(sources.items())), "settings": settings}


def source_hash(input_json: dict[str, Any], version: str) -> str:
    blob = json.dumps({"input": input_json, "version": version}, sort_keys=True).encode()
    return "0x" + hashlib.sha256(blob).hexdigest()


def _native_solc(version: str) -> str | None:
    """Path of a native solc of exactly ``version``, if one is installed."""
    try:
        import solcx  # py-solc-x
    except ImportError:  # pragma: no cover - py-solc-x is a dependency
        return None
    candidates = [shutil.which("solc")]
    try:  # a solc that py-solc-x installed earlier (its own folder; nothing is downloaded here)
        if any(str(v) == version for v in solcx.get_installed_solc_versions()):
            candidates.append(str(solcx.get_solcx_install_folder() / f"solc-v{version}"))
    except Exception:  # noqa: BLE001 - py-solc-x raises several types for "not installed"
        pass
    for path in candidates:
        if not path:
            continue
        try:
            out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30).stdout
        except OSError:
            continue
        if f"Version: {version}+" in out:
            return path
    return None


def _compile_native(solc: str, input_json: dict[str, Any], version: str) -> dict[str, Any]:
    import solcx

    output: dict[str, Any] = solcx.compile_standard(input_json, solc_binary=solc)
    return output


def _compile_npm(input_json: dict[str, Any], version: str) -> dict[str, Any]:
    solc_pkg = npm_package("solc")
    installed = json.loads((solc_pkg / "package.json").read_text())["version"]
    if installed != version:
        raise ToolMissing(
            "solc", f"npm solc {installed} is installed but contracts/compiler.json pins {version}: run `make install`."
        )
    script = Path(__file__).with_name("solc_compile.cjs")
    proc = subprocess.run(
        [node_binary(), str(script), str(solc_pkg)],
        input=json.dumps(input_json).encode(),
        capture_output=True,
        timeout=600,
    )
    if proc.returncode != 0:
        raise CompilationFailed(f"npm solc failed: {proc.stderr.decode(errors='replace').strip()}")
    result = json.loads(proc.stdout)
    output: dict[str, Any] = result["output"]
    return output


def _cache_dir(root: Path) -> Path:
    return Path(os.environ.get("QCL_BUILD_DIR", root / "build")) / "contracts"


def compile_contracts(
    *, route: Route | None = None, root: Path | None = None, use_cache: bool = True
) -> CompilationResult:
    """Compile every deployable contract; reuse a cached result for the same input.

    ``route`` forces the native or npm compiler (``QCL_SOLC`` sets the default; "auto" picks
    native when a matching solc is installed).
    """
    root = root or project_root()
    version = compiler_config(root)["version"]
    input_json = standard_json_input(root)
    digest = source_hash(input_json, version)
    wanted = route or os.environ.get("QCL_SOLC", "auto")
    native = _native_solc(version) if wanted in ("auto", "native") else None
    if wanted == "native" and native is None:
        raise ToolMissing("solc", f"no native solc {version} is installed (QCL_SOLC=native).")
    chosen: Route = "native" if native else "npm"

    cache = _cache_dir(root) / f"{digest[2:]}-{chosen}.json"
    if use_cache and cache.is_file():
        return _result(json.loads(cache.read_text()), version, digest, chosen)

    output = _compile_native(native, input_json, version) if native else _compile_npm(input_json, version)
    errors = [e for e in output.get("errors", []) if e.get("severity") == "error"]
    if errors:
        raise CompilationFailed("\n".join(e.get("formattedMessage", e["message"]) for e in errors))
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(f".{os.getpid()}.tmp")  # one per process: parallel test workers compile at once
    tmp.write_text(json.dumps(output["contracts"]))
    tmp.replace(cache)
    return _result(output["contracts"], version, digest, chosen)


def _result(contracts: dict[str, Any], version: str, digest: str, route: Route) -> CompilationResult:
    found: dict[str, CompiledContract] = {}
    for source, by_name in contracts.items():
        for name, art in by_name.items():
            bytecode = art["evm"]["bytecode"]["object"]
            if not bytecode:  # interfaces, libraries without code, abstract contracts
                if name not in found:
                    found[name] = CompiledContract(name, source, art["abi"], "", "")
                continue
            found[name] = CompiledContract(
                name=name,
                source=source,
                abi=art["abi"],
                bytecode="0x" + bytecode,
                deployed_bytecode="0x" + art["evm"]["deployedBytecode"]["object"],
            )
    return CompilationResult(contracts=found, solc_version=version, source_hash=digest, route=route)
