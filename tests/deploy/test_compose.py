"""docker-compose.yaml validates: `docker compose config` when the client has Compose, else the structural check."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "docker"))
import check_compose  # noqa: E402

SECRET_KEYS = re.compile(r"PASSWORD|SECRET|FERNET|_KEY$|SQL_ALCHEMY_CONN|RESULT_BACKEND|TOKEN", re.I)


def _has_compose() -> bool:
    if not shutil.which("docker"):
        return False
    r = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True, timeout=20)
    return r.returncode == 0


def _resolved() -> dict:
    env = check_compose.read_env_file(ROOT / ".env.example")
    errors: list[str] = []
    doc = check_compose.interpolate(yaml.safe_load((ROOT / "docker-compose.yaml").read_text()), env, errors)
    assert errors == []
    return doc


def test_compose_config_validates():
    if _has_compose():
        r = subprocess.run(
            [
                "docker",
                "compose",
                "--env-file",
                ".env.example",
                "--profile",
                "sandbox",
                "--profile",
                "flower",
                "config",
                "--quiet",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode == 0, r.stderr
    r = subprocess.run(
        [sys.executable, str(ROOT / "docker" / "check_compose.py"), "--env-file", str(ROOT / ".env.example")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 problems" in r.stdout


def test_services_executor_and_worker_scalability():
    services = _resolved()["services"]
    for name in check_compose.REQUIRED_SERVICES:
        assert name in services, name
    worker = services["airflow-worker"]
    assert worker["command"] == "celery worker"
    assert "container_name" not in worker and not worker.get("ports"), "worker must scale with --scale"
    for name in check_compose.AIRFLOW_SERVICES:
        env = services[name]["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert re.match(r"redis://(:?@)?redis:6379/\d+$", env["AIRFLOW__CELERY__BROKER_URL"]), name
        assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql"), name
        assert "_PIP_ADDITIONAL_REQUIREMENTS" not in env, name
    # every Airflow container gets the image built from the Dockerfile
    airflow_image = {"context": ".", "target": "airflow"}
    assert all(services[n].get("build") == airflow_image for n in check_compose.AIRFLOW_SERVICES)
    assert services["sandbox"]["build"] == {"context": ".", "target": "sandbox"}  # never the production image


def test_no_secret_literal_in_compose():
    raw = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())
    text = (ROOT / "docker-compose.yaml").read_text()
    assert "_PIP_ADDITIONAL_REQUIREMENTS" not in text
    env_example = check_compose.read_env_file(ROOT / ".env.example")
    secrets = [v for k, v in env_example.items() if SECRET_KEYS.search(k) and len(v) >= 12]
    assert secrets, "expected secrets in .env.example"
    for v in secrets:
        assert v not in text, "a secret value from .env.example is written literally in docker-compose.yaml"

    def walk(node, path=""):
        if isinstance(node, dict):
            for k, v in node.items():
                if isinstance(v, str) and SECRET_KEYS.search(str(k)) and not str(k).endswith("_FILE"):
                    assert "${" in v, f"{path}/{k}: secret must come from the environment (${{...}})"
                walk(v, f"{path}/{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{path}[{i}]")

    walk(raw)


@pytest.mark.parametrize("missing", ["FERNET_KEY", "AIRFLOW_DB_PASSWORD", "WAREHOUSE_DB_PASSWORD"])
def test_missing_secret_stops_compose(missing, tmp_path):
    env = tmp_path / ".env"
    lines = [ln for ln in (ROOT / ".env.example").read_text().splitlines() if not ln.startswith(f"{missing}=")]
    env.write_text("\n".join(lines) + "\n")
    r = subprocess.run(
        [sys.executable, str(ROOT / "docker" / "check_compose.py"), "--env-file", str(env)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert r.returncode == 1 and f"required variable {missing} is missing" in r.stdout
