"""The dev deployment as a person starts it: `qcl dev` (what `make run` calls), Ctrl-C, clear failures."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from chain_client import free_port
from chain_client._paths import project_root
from chain_client.nodes import port_in_use

QCL = str(Path(sys.executable).with_name("qcl"))


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "QCL_DATA_DIR": str(tmp_path / "dev"),
            "QCL_API_PORT": str(free_port()),
            "QCL_CHAIN_PORT": str(free_port()),
            **extra,
        }
    )
    return env


def _wait_health(url: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "exited"
        try:
            response = httpx.get(url, timeout=2)
            if response.status_code == 200:
                body: dict[str, object] = response.json()
                return body
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("no /health answer")


@pytest.mark.slow
def test_dev_starts_answers_health_and_ctrl_c_frees_both_ports(tmp_path: Path) -> None:
    env = _env(tmp_path)
    api_port, chain_port = int(env["QCL_API_PORT"]), int(env["QCL_CHAIN_PORT"])
    timings = []
    deployments = []
    for _ in range(2):  # the second start reuses the persisted chain and deployment
        start = time.monotonic()
        proc = subprocess.Popen(
            [QCL, "dev"], env=env, cwd=project_root(), stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        try:
            health = _wait_health(f"http://127.0.0.1:{api_port}/health", proc)
            timings.append(time.monotonic() - start)
            assert health["status"] == "ok" and health["chain_id"] == 31337
            deployments.append(health["contracts"])
            accounts = json.loads((tmp_path / "dev" / "accounts.json").read_text())
            assert set(accounts) == {"admin", "relayer", "auditor"}
            assert accounts["admin"]["private_key"].startswith("0x") and len(accounts["admin"]["private_key"]) == 66
            assert (tmp_path / "dev" / "accounts.json").stat().st_mode & 0o077 == 0
        finally:
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=60)
        assert proc.returncode in (0, 130), err.decode()
        assert "Traceback" not in err.decode()
        assert not port_in_use(api_port) and not port_in_use(chain_port)
    assert deployments[0] == deployments[1], "the second run must reuse the deployment"
    assert timings[1] < 30


def test_dead_chain_url_is_one_clear_error(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    proc = subprocess.run([QCL, "dev"], env=_env(tmp_path, QCL_CHAIN=dead), capture_output=True, timeout=120)
    err = proc.stderr.decode()
    assert proc.returncode == 2
    assert f"{dead} does not answer" in err
    assert "Traceback" not in err


def test_invalid_chain_setting_is_one_clear_error(tmp_path: Path) -> None:
    proc = subprocess.run([QCL, "dev"], env=_env(tmp_path, QCL_CHAIN="geth-unknown"), capture_output=True, timeout=60)
    assert proc.returncode == 2
    assert "QCL_CHAIN must be one of" in proc.stderr.decode()
    assert "Traceback" not in proc.stderr.decode()


def test_missing_node_is_one_clear_error(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "env", "python3"):  # a PATH with Python but no node or npm
        found = shutil.which(tool)
        assert found is not None
        (bin_dir / tool).symlink_to(found)
    proc = subprocess.run(
        ["bash", str(project_root() / "scripts" / "check-tools.sh")],
        env={"PATH": str(bin_dir), "PYTHON": sys.executable},
        capture_output=True,
        timeout=60,
    )
    err = proc.stderr.decode()
    assert proc.returncode == 1
    assert "node not found" in err and "npm not found" in err
