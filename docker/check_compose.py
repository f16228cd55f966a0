"""Static check of docker-compose.yaml where `docker compose config` is unavailable (no Compose v2).

    python docker/check_compose.py [--env-file .env.example] [--schema compose-spec.json]

Interpolates ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?err}, ${VAR?err} and $$ the way Compose
does (values from --env-file, then the process environment), resolves YAML anchors / merge keys,
optionally validates against the Compose JSON schema (compose-spec/schema/compose-spec.json), and
checks this project's rules. Needs PyYAML (and jsonschema with --schema). Exit 0 = OK.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
VAR = re.compile(r"\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))")
AIRFLOW_SERVICES = [
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-worker",
    "airflow-triggerer",
    "airflow-init",
]
REQUIRED_SERVICES = ["postgres", "warehouse-db", "redis", "minio", *AIRFLOW_SERVICES, "sandbox", "flower"]


def read_env_file(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        env[key.strip()] = value
    return env


def interpolate(node, env: dict[str, str], errors: list[str]):
    if isinstance(node, dict):
        return {k: interpolate(v, env, errors) for k, v in node.items()}
    if isinstance(node, list):
        return [interpolate(v, env, errors) for v in node]
    if not isinstance(node, str):
        return node

    def sub(m: re.Match) -> str:
        if m.group(1):
            return "$"
        name = m.group(2) or m.group(5)
        op, arg = m.group(3), m.group(4) or ""
        value = env.get(name)
        unset_or_empty = value is None or (op and op.startswith(":") and value == "")
        if op in (":-", "-") and unset_or_empty:
            return arg
        if op in (":?", "?") and unset_or_empty:
            errors.append(f"required variable {name} is missing: {arg}")
            return ""
        if value is None:
            errors.append(f"variable {name} is not set (Compose would substitute an empty string)")
            return ""
        return value

    return VAR.sub(sub, node)


def project_checks(doc: dict) -> list[str]:
    services = doc.get("services", {})
    problems = [f"service {name} is missing" for name in REQUIRED_SERVICES if name not in services]
    for name, svc in services.items():
        for dep, spec in (svc.get("depends_on") or {}).items():
            if dep not in services:
                problems.append(f"{name}: depends_on unknown service {dep}")
            elif spec.get("condition") == "service_healthy" and "healthcheck" not in services[dep]:
                problems.append(f"{name}: waits for {dep} to be healthy but {dep} has no healthcheck")
    worker = services.get("airflow-worker", {})
    if "container_name" in worker or worker.get("ports"):
        problems.append("airflow-worker must stay scalable: no container_name, no host ports")
    for name in AIRFLOW_SERVICES:
        env = services.get(name, {}).get("environment", {})
        if "_PIP_ADDITIONAL_REQUIREMENTS" in env:
            problems.append(f"{name}: _PIP_ADDITIONAL_REQUIREMENTS is not allowed (bake deps into the image)")
        for key in (
            "AIRFLOW__CORE__FERNET_KEY",
            "AIRFLOW__API_AUTH__JWT_SECRET",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
        ):
            problems.extend([f"{name}: {key} is empty"] if not env.get(key) else [])
    problems += [
        f"{n} must be behind a profile" for n in ("sandbox", "flower") if not services.get(n, {}).get("profiles")
    ]
    return problems


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--file", default=str(ROOT / "docker-compose.yaml"))
    p.add_argument("--env-file", default=str(ROOT / ".env.example"))
    p.add_argument("--schema", help="path to the Compose JSON schema (optional)")
    a = p.parse_args(argv)

    env = {**read_env_file(Path(a.env_file)), **os.environ}
    raw = yaml.safe_load(Path(a.file).read_text(encoding="utf-8"))
    errors: list[str] = []
    doc = interpolate(raw, env, errors)
    doc = {k: v for k, v in doc.items() if not k.startswith("x-")}
    if a.schema:
        import jsonschema

        schema = json.loads(Path(a.schema).read_text(encoding="utf-8"))
        validator = jsonschema.Draft7Validator(schema)
        errors += [f"schema: {'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]
    errors += project_checks(doc)
    for e in errors:
        print(f"FAIL {e}")
    services = doc.get("services", {})
    print(
        f"{len(services)} services, {len(errors)} problems"
        + (" (schema checked)" if a.schema else " (schema not checked)")
    )
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
