"""Issue 17 §7: secrets in owner-only files, logs owner-only, every port on loopback, each process only its own
secrets, and the compose init refuses placeholder or empty secrets."""

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from devtools import stack

ROOT = Path(__file__).resolve().parents[2]


def env_example() -> dict:
    sys.path.insert(0, str(ROOT / "docker"))
    import check_compose

    return check_compose.read_env_file(ROOT / ".env.example")


def init_env(tmp_path: Path, **over) -> dict:
    e = env_example()
    fake = tmp_path / "bin"
    fake.mkdir(exist_ok=True)
    (fake / "airflow").write_text('#!/bin/sh\necho fake-airflow "$@" >&2\nexit 7\n')
    (fake / "airflow").chmod(0o755)
    env = {
        "PATH": f"{fake}:{os.environ['PATH']}",
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__CORE__FERNET_KEY": e["FERNET_KEY"],
        "AIRFLOW__API_AUTH__JWT_SECRET": e["AIRFLOW__API_AUTH__JWT_SECRET"],
        "AIRFLOW_ADMIN_USER": "admin",
        "AIRFLOW_ADMIN_PASSWORD": e["AIRFLOW_ADMIN_PASSWORD"],
        "AIRFLOW_DB_PASSWORD": e["AIRFLOW_DB_PASSWORD"],
        "WAREHOUSE_DB_HOST": "warehouse-db",
        "WAREHOUSE_DB_USER": "certpipe",
        "WAREHOUSE_DB_PASSWORD": e["WAREHOUSE_DB_PASSWORD"],
        "WAREHOUSE_DB_NAME": "warehouse",
        "MINIO_ENDPOINT_URL": "http://minio:9000",
        "MINIO_ROOT_USER": "certpipe-minio",
        "MINIO_ROOT_PASSWORD": e["MINIO_ROOT_PASSWORD"],
        "AIRFLOW_UID": str(os.getuid()),
    }
    env.update(over)
    return env


def run_init(env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(ROOT / "docker" / "init.sh")], env=env, capture_output=True, text=True)


def test_init_refuses_the_placeholder_secrets_of_env_example(tmp_path):
    r = run_init(init_env(tmp_path))
    assert r.returncode == 1 and "placeholder, empty or weak secrets" in r.stderr
    for name in (
        "AIRFLOW__CORE__FERNET_KEY",
        "AIRFLOW__API_AUTH__JWT_SECRET",
        "AIRFLOW_ADMIN_PASSWORD",
        "WAREHOUSE_DB_PASSWORD",
        "MINIO_ROOT_PASSWORD",
        "AIRFLOW_DB_PASSWORD",
    ):
        assert name in r.stderr
    for value in env_example().values():
        if len(value) >= 8:
            assert value not in r.stdout + r.stderr  # names only, never a value
    assert "fake-airflow" not in r.stderr  # refused before anything ran


@pytest.mark.parametrize("weak", ["", "airflow", "short", "changeme-changeme-changeme"])
def test_init_refuses_empty_or_weak_secrets(tmp_path, weak):
    r = run_init(init_env(tmp_path, WAREHOUSE_DB_PASSWORD=weak))
    assert r.returncode == 1 and "WAREHOUSE_DB_PASSWORD" in r.stderr


def test_init_accepts_generated_secrets(tmp_path):
    import secrets

    from cryptography.fernet import Fernet

    strong = {
        k: secrets.token_urlsafe(24)
        for k in (
            "AIRFLOW__API_AUTH__JWT_SECRET",
            "AIRFLOW_ADMIN_PASSWORD",
            "AIRFLOW_DB_PASSWORD",
            "WAREHOUSE_DB_PASSWORD",
            "MINIO_ROOT_PASSWORD",
        )
    }
    r = run_init(init_env(tmp_path, AIRFLOW__CORE__FERNET_KEY=Fernet.generate_key().decode(), **strong))
    assert "placeholder" not in r.stderr and "fake-airflow" in r.stderr  # went on to Airflow (a fake here)


@pytest.fixture
def state(tmp_path, monkeypatch):
    monkeypatch.setattr(stack, "STATE", tmp_path)
    monkeypatch.setattr(stack, "SECRETS", tmp_path / "secrets")
    monkeypatch.setattr(stack, "PIDS", tmp_path / "pids.json")
    return tmp_path


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_bring_up_keeps_secrets_and_logs_owner_only_and_ports_on_loopback(state, monkeypatch):
    monkeypatch.setenv("CERTPIPE_REGISTRAR_JWT_SECRET", "x" * 40)  # must not leak into Airflow's environment
    monkeypatch.setenv("AIRFLOW__CORE__FERNET_KEY", "not-ours")
    env = stack.airflow_env("postgresql://certpipe_airflow:pw@127.0.0.1:1/airflow")
    assert env["AIRFLOW__API__HOST"] == "127.0.0.1"
    assert env["AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST"] == "127.0.0.1"
    assert "CERTPIPE_REGISTRAR_JWT_SECRET" not in env and env["AIRFLOW__CORE__FERNET_KEY"] != "not-ours"
    assert env["AIRFLOW__LOGGING__FILE_TASK_HANDLER_NEW_FILE_PERMISSIONS"] == "0o600"
    passwords = Path(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
    for f in (passwords, state / "fernet_key", state / "jwt_secret"):
        assert mode(f) == 0o600, f
    assert not {k for k in stack.base_env() if "SECRET" in k or "PASSWORD" in k or k.startswith("AIRFLOW")}
    proc = stack._start("probe", ["sh", "-c", "echo hello"], stack.base_env())
    proc.wait(10)
    log = state / "logs" / "probe.log"
    assert log.read_text().strip() == "hello" and mode(log) == 0o600 and mode(state / "logs") == 0o700


def test_embedded_postgres_password_file_is_owner_only(pg_server):
    from tests.conftest import _TMP

    files = list(_TMP.glob("*.superuser"))
    assert files and all(mode(f) == 0o600 for f in files)
