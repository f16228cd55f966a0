"""The image installs exactly the lock: requirements.lock with apache-airflow pinned, nothing at container start."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out, buf = [], ""
    for line in DOCKERFILE.splitlines():
        s = line.strip()
        if not buf and (not s or s.startswith("#")):
            continue
        if s.startswith("#"):
            continue
        buf += " " + s[:-1] if s.endswith("\\") else " " + s
        if not s.endswith("\\"):
            word, _, rest = buf.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
            buf = ""
    return out


def lock_pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==([^\s;]+)", line)
        if m:
            pins[m.group(1).lower().replace("_", "-")] = m.group(2)
    return pins


def test_base_image_and_airflow_pin_match_the_lock():
    pins = lock_pins(ROOT / "requirements.lock")
    ins = instructions()
    base = next(a for i, a in ins if i == "FROM")
    m = re.fullmatch(r"apache/airflow:([\d.]+)-python3\.11 AS airflow", base)
    assert m, base
    assert pins["apache-airflow"] == m.group(1)
    args = dict(a.split("=", 1) for i, a in ins if i == "ARG" and "=" in a)
    assert args["AIRFLOW_VERSION"] == pins["apache-airflow"]


def test_pip_installs_the_lock_with_airflow_pinned():
    ins = instructions()
    copies = [a for i, a in ins if i == "COPY"]
    assert any(shlex.split(a)[-2:] == ["requirements.lock", "/tmp/requirements.lock"] for a in copies)
    runs = [a for i, a in ins if i == "RUN"]
    installs = [cmd.strip() for r in runs for cmd in r.split(";") if re.search(r"\bpip install\b", cmd)]
    # one install of the lock; the project itself goes on top without dependencies
    project = [i for i in installs if "/opt/certpipe" in i]
    installs = [i for i in installs if i not in project]
    assert len(installs) == 1, installs
    assert len(project) == 1 and "--no-deps" in project[0]
    argv = shlex.split(installs[0])
    assert '"apache-airflow==${AIRFLOW_VERSION}"' in installs[0] or "apache-airflow==${AIRFLOW_VERSION}" in argv
    req = argv[argv.index("-r") + 1]
    assert req == "/tmp/runtime.lock"
    # runtime.lock is the lock minus the local-only tools, and the build fails if Airflow is not pinned in it
    run = next(r for r in runs if "pip install" in r)
    assert "cp /tmp/requirements.lock /tmp/runtime.lock" in run
    assert 'grep -qx "apache-airflow==${AIRFLOW_VERSION}" /tmp/runtime.lock' in run
    assert "--no-deps" not in argv and "--upgrade" not in argv and "-U" not in argv


def test_dev_only_packages_are_not_runtime_dependencies():
    ins = instructions()
    args = dict(a.split("=", 1) for i, a in ins if i == "ARG" and "=" in a)
    dropped = shlex.split(args["DEV_ONLY_PACKAGES"])[0].split()
    pins = lock_pins(ROOT / "requirements.lock")
    # Nothing the deployment needs is dropped: Airflow, providers, celery and the redis client stay.
    for needed in (
        "apache-airflow",
        "apache-airflow-providers-celery",
        "celery",
        "redis",
        "apache-airflow-providers-amazon",
        "apache-airflow-providers-smtp",
        "psycopg",
    ):
        assert needed in pins, f"{needed} missing from requirements.lock"
        assert needed not in dropped


def test_celery_and_redis_are_pinned_in_requirements():
    top = (ROOT / "requirements.txt").read_text()
    assert re.search(r"^apache-airflow-providers-celery\b", top, re.M)
    assert re.search(r"^redis\b", top, re.M)
    for lock in ("requirements.lock", "requirements-dev.lock"):
        pins = lock_pins(ROOT / lock)
        assert {"apache-airflow-providers-celery", "celery", "kombu", "redis"} <= pins.keys(), lock
    assert lock_pins(ROOT / "requirements.lock")["celery"] == lock_pins(ROOT / "requirements-dev.lock")["celery"]


def test_no_pip_additional_requirements_anywhere():
    for name in ("Dockerfile", "docker-compose.yaml", ".env.example", "docker/init.sh"):
        text = (ROOT / name).read_text()
        lines = [ln for ln in text.splitlines() if "_PIP_ADDITIONAL_REQUIREMENTS" in ln]
        assert all(ln.lstrip().startswith("#") for ln in lines), f"{name}: _PIP_ADDITIONAL_REQUIREMENTS in use"


def test_the_production_stage_holds_no_sandbox_nor_dev_tools():
    ins = instructions()
    stages, current = {}, None
    for i, a in ins:
        if i == "FROM":
            current = a.split()[-1]
        elif i == "COPY":
            stages.setdefault(current, []).append(shlex.split(a)[-2])
    assert "sandbox/" in stages["sandbox"]
    assert not {"sandbox/", "devtools/", "tests/", "scripts/"} & set(stages["airflow"])
    ignore = (ROOT / ".dockerignore").read_text().split()
    assert "!devtools/" not in ignore and "!tests/" not in ignore
