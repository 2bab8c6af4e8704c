"""The container deployment (Dockerfile, deploy/compose.yaml, .dockerignore; issue 16).

No Docker engine runs on the project's machines, so the image is never built here. What can be
checked without one is: every command the image and the compose file run is a `qcl` subcommand
whose options parse; every QCL_* variable they set is a setting the code reads; the compose
environment is a valid production configuration; the files the Dockerfile copies exist and are
not ignored; the image runs as a non-root user with a health check on GET /health; and the whole
compose stack run as plain processes (the chain's command on anvil, the worker, `qcl serve
--workers 2` on PostgreSQL, with the compose environment) passes both health checks and takes a
backup with the command the compose file documents.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import secrets
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer
import yaml
from eth_account import Account

from api.settings import Settings
from chain_client import free_port
from cli.main import app
from tests.conftest import create_pg_database, drop_pg_database

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "deploy" / "compose.yaml"
QCL = str(Path(sys.executable).with_name("qcl"))
ANVIL = ROOT / "node_modules" / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"
PACKAGES = ["chain_client", "audit", "db", "vault", "api", "cli", "qcl_client"]
QCL_SERVICES = ("worker", "api")


# ---- reading the files -----------------------------------------------------------------------------


def _instructions(text: str) -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (KEYWORD, arguments), continuation lines joined."""
    joined = re.sub(r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")))
    out = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, rest = line.strip().partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def _stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = [[]]
    for keyword, rest in _instructions(DOCKERFILE.read_text()):
        if keyword == "FROM":
            stages.append([])
        stages[-1].append((keyword, rest))
    return stages  # [0]: the global ARGs, then one list per stage


def _exec_form(rest: str) -> list[str]:
    value = json.loads(rest)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), rest
    return value


def _env_instruction(rest: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in shlex.split(rest))


def _compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


_VAR = re.compile(r"\$\{([A-Z0-9_]+)(?::([?-])([^}]*))?\}")


def _interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error} against ``env``."""

    def one(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3)
        if env.get(name):
            return env[name]
        if op == "?":
            raise KeyError(f"{name}: {arg}")
        return arg if op == "-" else ""

    return _VAR.sub(one, value)


def _known_variables() -> set[str]:
    """QCL_* names the code reads: every Settings field, and those read from os.environ directly."""
    names = {f"QCL_{name.upper()}" for name in Settings.model_fields}
    pattern = re.compile(r"os\.environ(?:\.get\(|\[)\s*\"(QCL_[A-Z0-9_]+)\"")
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            names.update(pattern.findall(path.read_text()))
    return names


def _secrets() -> dict[str, str]:
    """Values for the compose file's required variables, as an operator's .env would give them."""
    return {
        "POSTGRES_PASSWORD": secrets.token_hex(12),
        "QCL_VAULT_PASSPHRASE": "deploy test passphrase " + secrets.token_hex(8),
        "QCL_JWT_SECRET": secrets.token_hex(32),
        "QCL_OPERATOR_KEY": Account.create().key.to_0x_hex(),
        "QCL_RELAYER_KEY": Account.create().key.to_0x_hex(),
        "QCL_RELEASE_KEY": Account.create().key.to_0x_hex(),
        "QCL_FIRST_AUDITORS": json.dumps([Account.create().address]),
    }


def _service_env(service: str, given: dict[str, str]) -> dict[str, str]:
    raw = _compose()["services"][service].get("environment") or {}
    return {key: _interpolate(str(value), given) for key, value in raw.items()}


def _subcommand(args: list[str]) -> Any:
    """Parse ``qcl ARGS`` as the command line would (options, ranges), without running it: its context."""
    command: Any = typer.main.get_command(app)  # Typer's own click: groups have ``commands``
    rest = list(args)
    while hasattr(command, "commands"):
        assert rest, f"`qcl {' '.join(args)}` names no command"
        sub = command.get_command(command.context_class(command), rest[0])
        assert sub is not None, f"`qcl {' '.join(args)}`: {rest[0]!r} is not a qcl command"
        command, rest = sub, rest[1:]
    return command.make_context(args[-1], rest)


# ---- the files -------------------------------------------------------------------------------------


def test_compose_runs_qcl_subcommands_with_known_settings() -> None:
    compose = _compose()
    services = compose["services"]
    assert {"db", "chain", "worker", "api"} <= set(services)
    assert services["api"]["command"] == ["serve", "--workers", "2"]
    assert services["worker"]["command"] == ["worker"]
    known = _known_variables()
    for name in QCL_SERVICES:
        service = services[name]
        ctx = _subcommand(list(service["command"]))
        assert ctx.command.name in ("serve", "worker")
        env = service["environment"]
        unknown = sorted(key for key in env if key.startswith("QCL_") and key not in known)
        assert not unknown, f"{name} sets variables no code reads: {unknown}"
        assert not [key for key in env if not key.startswith("QCL_")], env
        assert service["volumes"] == ["qcl-data:/var/lib/qcl"]  # the manifest and key ring, shared
    assert _subcommand(["serve", "--workers", "2"]).params["workers"] == 2
    # the API starts after the worker has deployed (or reused) the contracts
    assert services["api"]["depends_on"]["worker"]["condition"] == "service_healthy"
    assert services["worker"]["depends_on"]["db"]["condition"] == "service_healthy"
    assert "/var/lib/postgresql/data" in services["db"]["volumes"][0]


def test_the_compose_environment_is_a_valid_production_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    given = _secrets()
    for name in QCL_SERVICES:
        env = _service_env(name, given)
        for key in [k for k in os.environ if k.startswith("QCL_")]:
            monkeypatch.delenv(key)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        settings = Settings(_env_file=None)  # type: ignore[call-arg]
        assert settings.env == "production" and settings.chain == "http://chain:8545"
        assert settings.vault_database_url.startswith("postgresql+psycopg://qcl:")
        assert settings.vault_keyring_path == Path("/var/lib/qcl/keyring.json")
    # every secret is required: a missing one stops `docker compose` with its message
    for missing in given:
        partial = {k: v for k, v in given.items() if k != missing}
        with pytest.raises(KeyError, match=missing):
            for name in QCL_SERVICES:
                _service_env(name, partial)


def test_the_dockerfile_builds_one_non_root_image_with_a_health_check() -> None:
    stages = _stages()
    args = dict(rest.split("=", 1) for keyword, rest in stages[0] if keyword == "ARG")
    assert args["PYTHON_IMAGE"].startswith("python:3.11-slim")
    final = stages[-1]
    assert final[0][0] == "FROM" and final[0][1].startswith("${PYTHON_IMAGE}")
    keywords = [k for k, _ in final]
    user = [rest for k, rest in final if k == "USER"]
    assert user and user[-1] not in ("root", "0") and keywords.index("USER") < keywords.index("ENTRYPOINT")
    entrypoint = _exec_form(next(rest for k, rest in final if k == "ENTRYPOINT"))
    cmd = _exec_form(next(rest for k, rest in final if k == "CMD"))
    assert entrypoint == ["qcl"] and cmd == ["serve"]
    health = next(rest for k, rest in final if k == "HEALTHCHECK")
    assert "CMD [" in health and "/health" in health
    env = {}
    for k, rest in final:
        if k == "ENV":
            env.update(_env_instruction(rest))
    unknown = sorted(key for key in env if key.startswith("QCL_") and key not in _known_variables())
    assert not unknown, unknown
    assert env["QCL_API_HOST"] == "0.0.0.0" and env["QCL_DATA_DIR"] == "/var/lib/qcl"
    text = DOCKERFILE.read_text()
    assert "pip install -c constraints.txt ." in text  # the pinned versions
    assert "qcl compile" in text  # the compiled contracts are in the image


def test_the_dockerfile_copies_files_that_exist_and_are_not_ignored() -> None:
    ignored = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for needed in (".git", ".venv", "node_modules", "build", ".qcl", ".env", "tests"):
        assert needed in ignored, needed
    copies = [rest for stage in _stages() for k, rest in stage if k == "COPY" and not rest.startswith("--from")]
    assert copies
    for rest in copies:
        *sources, _dest = shlex.split(rest)
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
            hit = [p for p in ignored if fnmatch.fnmatch(source, p) or fnmatch.fnmatch(source.split("/")[0], p)]
            assert not hit, f"COPY {source} is excluded by .dockerignore {hit}"


def test_the_image_commands_run_as_plain_processes() -> None:
    stages = _stages()
    final = stages[-1]
    entrypoint = _exec_form(next(rest for k, rest in final if k == "ENTRYPOINT"))
    cmd = _exec_form(next(rest for k, rest in final if k == "CMD"))
    commands = [cmd, *(_compose()["services"][name]["command"] for name in QCL_SERVICES)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for command in commands:
        argv = [QCL, *entrypoint[1:], *command, "--help"]
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, (argv, done.stdout, done.stderr)
        assert "Usage: qcl" in done.stdout


# ---- the stack as plain processes -----------------------------------------------------------------


def _healthcheck_argv(test: list[str]) -> list[str]:
    """A compose/Dockerfile exec-form check with ``python`` as this interpreter."""
    argv = test[1:] if test[0] in ("CMD", "CMD-SHELL") else test
    return [sys.executable if argv[0] == "python" else argv[0], *argv[1:]]


def _passes(argv: list[str], env: dict[str, str]) -> bool:
    try:
        return subprocess.run(argv, env=env, capture_output=True, timeout=60).returncode == 0
    except subprocess.TimeoutExpired:  # a loaded machine: the check itself ran out of time
        return False


def _wait(check: Any, what: str, procs: dict[str, subprocess.Popen[bytes]], logs: Path, timeout: float = 420) -> None:
    """Until ``check()``; fails when a process exits or after ``timeout`` (two API processes start in
    about 40 s on the shared 2-core machine under load, much faster when it is quiet)."""
    deadline = time.monotonic() + timeout
    while not check():
        for name, proc in procs.items():
            assert proc.poll() is None, f"{name} exited: {(logs / (name + '.log')).read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(1.0)


@pytest.fixture
def database() -> Iterator[str]:
    url = create_pg_database("qcl_deploy")
    yield url
    drop_pg_database(url)


@pytest.mark.slow
def test_the_compose_stack_runs_as_plain_processes(database: str, tmp_path: Path) -> None:
    compose = _compose()
    final = _stages()[-1]
    image_env: dict[str, str] = {}
    for k, rest in final:
        if k == "ENV":
            image_env.update(_env_instruction(rest))
    chain_port, api_port = free_port(), free_port()
    data = tmp_path / "qcl"
    data.mkdir()
    given = _secrets()
    procs: dict[str, subprocess.Popen[bytes]] = {}

    def spawn(name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        log = (tmp_path / f"{name}.log").open("wb")
        procs[name] = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)

    # the compose file's values, with the containers' names and paths mapped to this machine
    def local(value: str) -> str:
        value = re.sub(r"postgresql\+psycopg://qcl:[^@]*@db:5432/qcl", database, value)
        value = value.replace("http://chain:8545", f"http://127.0.0.1:{chain_port}")
        return value.replace("/var/lib/qcl", str(data))

    try:
        chain_args = [str(a) for a in compose["services"]["chain"]["command"]]
        chain_args[chain_args.index("--port") + 1] = str(chain_port)
        chain_args[chain_args.index("--host") + 1] = "127.0.0.1"
        chain_args[chain_args.index("--state") + 1] = str(tmp_path / "anvil-state.json")
        spawn("chain", [str(ANVIL), *chain_args])
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "QCL_SOLC": image_env["QCL_SOLC"],
            **{k: local(v) for k, v in _service_env("worker", given).items()},
            "QCL_API_HOST": "127.0.0.1",
            "QCL_API_PORT": str(api_port),
            "QCL_PUBLIC_URL": f"http://127.0.0.1:{api_port}",
        }
        worker = compose["services"]["worker"]
        spawn("worker", [QCL, *worker["command"]], env)
        worker_check = _healthcheck_argv(worker["healthcheck"]["test"])
        _wait(lambda: _passes(worker_check, env), "the worker's health check (contracts deployed)", procs, tmp_path)
        spawn("api", [QCL, *compose["services"]["api"]["command"]], env)
        health = next(rest for k, rest in final if k == "HEALTHCHECK")
        api_check = _healthcheck_argv(_exec_form(health.split("CMD", 1)[1].strip()))
        _wait(lambda: _passes(api_check, env), "the image's HEALTHCHECK against `qcl serve`", procs, tmp_path)
        chain = httpx.get(f"http://127.0.0.1:{api_port}/v1/chain", timeout=10).json()
        assert chain["chain_id"] == 31337, chain
        # the backup command the compose file documents, in the running stack
        backup = data / "backup.qclbak"
        done = subprocess.run(
            [QCL, "vault", "backup", str(backup)], env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert backup.is_file() and "key versions 1" in " ".join(done.stderr.split())
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
    for name in ("worker", "api"):
        assert "Traceback" not in (tmp_path / f"{name}.log").read_text(), name


def test_the_runtime_stage_starts_from_the_compiler_cache_without_a_compiler(tmp_path: Path) -> None:
    """What the runtime stage copies from the build stage is enough: the contracts are not compiled
    again (no Node.js, no solc in the image), and the source hash is the repository's."""
    from chain_client import compile_contracts

    compiled = compile_contracts(route="npm")  # the build stage's `qcl compile` (cached here too)
    final = _stages()[-1]
    env = _env_instruction(" ".join(rest for k, rest in final if k == "ENV"))
    root = Path(env["QCL_PROJECT_ROOT"])
    copied = [shlex.split(rest)[-1] for k, rest in final if k == "COPY" and rest.startswith("--from=build")]
    image = tmp_path / "image"
    build_dir = Path(os.environ.get("QCL_BUILD_DIR", ROOT / "build"))
    for dest in copied:
        if not dest.startswith(str(root) + "/"):
            continue  # the virtual environment: this interpreter's stands in for it
        relative = Path(dest).relative_to(root)
        source = build_dir / relative.relative_to("build") if relative.parts[0] == "build" else ROOT / relative
        target = image / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(source, target)
    assert (image / "build" / "contracts").exists() and (image / "contracts" / "compiler.json").exists()
    no_node = ":".join(p for p in os.environ.get("PATH", "").split(":") if not (Path(p) / "node").exists())
    run_env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PATH": no_node,
        "QCL_PROJECT_ROOT": str(image),
        "QCL_BUILD_DIR": str(image / "build"),
        "QCL_SOLC": env["QCL_SOLC"],
    }
    code = "from chain_client import compile_contracts as c; r = c(); print(r.source_hash, r.route)"
    done = subprocess.run([sys.executable, "-c", code], env=run_env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [compiled.source_hash, "npm"]


def test_the_wheel_the_image_installs_holds_every_package() -> None:
    """`pip install .` (not editable) installs only the packages pyproject.toml finds: every
    directory with an ``__init__.py`` must be one of them (api.services and api.schemas, among
    others, were missing from a hand-written list, which an editable install hides)."""
    import tomllib

    from setuptools import find_packages

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    found = set(find_packages(where=str(ROOT), include=config["include"], exclude=config.get("exclude", ())))
    on_disk = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for package in PACKAGES
        for init in (ROOT / package).rglob("__init__.py")
    }
    assert on_disk <= found, sorted(on_disk - found)
    assert {name.split(".")[0] for name in found} == set(PACKAGES), sorted(found)
