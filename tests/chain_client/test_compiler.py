"""One standard-JSON input, two compiler routes (native solc / npm solc) and Hardhat: same bytecode."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from chain_client import CompilationResult, compile_contracts, compiler_config, standard_json_input
from chain_client._compiler import _native_solc
from chain_client._paths import project_root

DEPLOYABLE = ("ConsentLedger", "AuditAnchor")


def test_settings_are_pinned_for_every_node() -> None:
    config = compiler_config()
    assert config["version"].count(".") == 2 and not config["version"].startswith(("^", "~"))
    assert config["settings"]["evmVersion"] == "shanghai"  # ganache 7.9 stops at shanghai


def test_input_embeds_every_import_and_excludes_tests() -> None:
    sources = standard_json_input()["sources"]
    assert "contracts/ConsentLedger.sol" in sources and "contracts/MemberRegistry.sol" in sources
    assert "@openzeppelin/contracts/utils/cryptography/EIP712.sol" in sources
    assert not any("/test/" in name or name.endswith(".t.sol") for name in sources)


def test_npm_route_compiles_and_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QCL_BUILD_DIR", str(tmp_path))
    first = compile_contracts(route="npm")
    assert first.route == "npm" and first["ConsentLedger"].bytecode.startswith("0x6")
    cached = list((tmp_path / "contracts").glob("*-npm.json"))
    assert len(cached) == 1
    again = compile_contracts(route="npm")
    assert again.source_hash == first.source_hash
    assert again["ConsentLedger"].deployed_bytecode == first["ConsentLedger"].deployed_bytecode


def test_source_hash_changes_with_the_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "copy"
    (root / "contracts").mkdir(parents=True)
    for src in (project_root() / "contracts").rglob("*"):
        dest = root / src.relative_to(project_root())
        if src.is_dir():
            dest.mkdir(parents=True, exist_ok=True)
        else:
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(src.read_bytes())
    monkeypatch.setenv("QCL_BUILD_DIR", str(tmp_path / "build"))
    base = compile_contracts(root=root)
    roles = root / "contracts" / "Roles.sol"
    roles.write_text(roles.read_text() + "\n// a comment changes the source hash\n")
    assert compile_contracts(root=root).source_hash != base.source_hash


@pytest.mark.skipif(
    _native_solc(compiler_config()["version"]) is None, reason="no native solc of the pinned version installed"
)
def test_native_and_npm_routes_agree() -> None:
    native = compile_contracts(route="native", use_cache=False)
    npm = compile_contracts(route="npm", use_cache=False)
    for name in DEPLOYABLE:
        assert native[name].bytecode == npm[name].bytecode


@pytest.mark.slow
def test_hardhat_builds_identical_bytecode(compiled: CompilationResult, tmp_path: Path) -> None:
    root = project_root()
    subprocess.run(
        [str(root / "node_modules/.bin/node"), str(root / "node_modules/hardhat/dist/src/cli.js"), "build", "--quiet"],
        cwd=root,
        check=True,
        capture_output=True,
        timeout=600,
    )
    for name in DEPLOYABLE:
        artifact = json.loads((root / f"build/hardhat/artifacts/contracts/{name}.sol/{name}.json").read_text())
        assert artifact["bytecode"] == compiled[name].bytecode, name
        assert artifact["deployedBytecode"] == compiled[name].deployed_bytecode, name
