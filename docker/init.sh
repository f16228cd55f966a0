#!/usr/bin/env bash
# One-shot initialisation for the compose stack (service `airflow-init`, runs as root).
# Idempotent: safe to run on every `docker compose up`.
#   1. checks the required settings        4. warehouse service logins, migrations as the owner (alembic)
#   2. Airflow metadata DB migration        5. connections warehouse_db, warehouse_quality, minio_default
#   3. simple-auth admin password           6. MinIO buckets
# Secrets arrive as environment variables (from .env); nothing secret is printed.
set -euo pipefail

log() { printf '\n[init] %s\n' "$*"; }
die() { printf '\n[init] ERROR: %s\n' "$*" >&2; exit 1; }

AIRFLOW_HOME="${AIRFLOW_HOME:-/opt/airflow}"
PASSWORDS_FILE="${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE:-${AIRFLOW_HOME}/config/simple_auth_manager_passwords.json}"

# 1. Required settings ---------------------------------------------------------------------------
missing=()
for v in AIRFLOW__CORE__FERNET_KEY AIRFLOW__API_AUTH__JWT_SECRET AIRFLOW_ADMIN_USER AIRFLOW_ADMIN_PASSWORD \
         WAREHOUSE_DB_HOST WAREHOUSE_DB_USER WAREHOUSE_DB_PASSWORD WAREHOUSE_DB_NAME \
         MINIO_ENDPOINT_URL MINIO_ROOT_USER MINIO_ROOT_PASSWORD; do
  [[ -n "${!v:-}" ]] || missing+=("$v")
done
((${#missing[@]} == 0)) || die "missing settings: ${missing[*]} (copy .env.example to .env and fill it in)"

# Placeholder or weak secrets (the LOCAL-DEV DEFAULTs of .env.example, well-known words, short values) are refused:
# a stack started with them would run with secrets everybody knows. Nothing secret is printed, only the names.
# (Generate values as .env.example explains.)
weak=()
for v in AIRFLOW__CORE__FERNET_KEY AIRFLOW__API_AUTH__JWT_SECRET AIRFLOW_ADMIN_PASSWORD WAREHOUSE_DB_PASSWORD \
         MINIO_ROOT_PASSWORD AIRFLOW_DB_PASSWORD; do
  val="${!v:-}"
  [[ -n "${val}" || "${v}" != AIRFLOW_DB_PASSWORD ]] || continue  # optional here (used by compose only)
  lower="${val,,}"
  decoded="$(printf '%s' "${val}" | base64 -d 2>/dev/null | tr '[:upper:]' '[:lower:]' || true)"
  if ((${#val} < 16)) || [[ "${lower}" == *change* || "${lower}" == *local-dev* || "${lower}" == *placeholder* \
        || "${lower}" == *example* || "${decoded}" == *change* || "${decoded}" == *local-dev* \
        || "${lower}" =~ ^(airflow|admin|password|postgres|minio|secret|certpipe)[0-9]*$ ]]; then
    weak+=("$v")
  fi
done
((${#weak[@]} == 0)) || die "placeholder, empty or weak secrets: ${weak[*]} (at least 16 characters, not the .env.example values)"

if [[ -z "${AIRFLOW_UID:-}" ]]; then
  echo "[init] WARNING: AIRFLOW_UID not set; files in the volumes will be owned by 50000."
  echo "[init]          On Linux put AIRFLOW_UID=\$(id -u) in .env."
fi
AIRFLOW_UID="${AIRFLOW_UID:-50000}"

mkdir -p "${AIRFLOW_HOME}/logs" "${AIRFLOW_HOME}/config" "$(dirname "${PASSWORDS_FILE}")"

log "Airflow version: $(airflow version)"
# Creates the default config file in the shared config volume if missing (as the official init does).
airflow config list >/dev/null

# 2. Metadata DB --------------------------------------------------------------------------------
log "Migrating the Airflow metadata database"
airflow db migrate

# 3. Admin password (SimpleAuthManager reads it from the passwords file; other users keep theirs) --
log "Setting the password of admin user '${AIRFLOW_ADMIN_USER}'"
PASSWORDS_FILE="${PASSWORDS_FILE}" python - <<'PY'
import json, os
path = os.environ["PASSWORDS_FILE"]
try:
    with open(path) as f:
        passwords = json.loads(f.read().strip() or "{}")
except FileNotFoundError:
    passwords = {}
passwords[os.environ["AIRFLOW_ADMIN_USER"]] = os.environ["AIRFLOW_ADMIN_PASSWORD"]
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
with os.fdopen(fd, "w") as f:
    f.write(json.dumps(passwords) + "\n")
PY

# 4. Warehouse: one login per service, migrations as the owner ---------------------------------------
# WAREHOUSE_DB_USER is the warehouse server's superuser: used here only, to create the service logins
# (certpipe.warehouse.logins: generated passwords in ${SECRETS_DIR}, 0600), hand the database to certpipe_owner
# and migrate as that owner. The DAGs connect as certpipe_ingest_login, the Data quality page as
# certpipe_quality_login: no container connects as the superuser at run time.
SECRETS_DIR="${CERTPIPE_SECRETS_DIR:-${AIRFLOW_HOME}/config/secrets}"
log "Service logins and migrations of the certificate warehouse (${WAREHOUSE_DB_HOST}/${WAREHOUSE_DB_NAME})"
SECRETS_DIR="${SECRETS_DIR}" python - <<'PY'
import json, os
from pathlib import Path
from urllib.parse import quote
from certpipe import warehouse
from certpipe.warehouse import logins as L
e = os.environ
admin = "postgresql://{}:{}@{}:5432/{}".format(
    quote(e["WAREHOUSE_DB_USER"], safe=""), quote(e["WAREHOUSE_DB_PASSWORD"], safe=""),
    e["WAREHOUSE_DB_HOST"], e["WAREHOUSE_DB_NAME"])
secrets = Path(e["SECRETS_DIR"])
secrets.mkdir(parents=True, exist_ok=True)
secrets.chmod(0o700)
logins = L.ensure_logins(admin, secrets)
L.create_database(admin, e["WAREHOUSE_DB_NAME"], L.OWNER, (L.INGEST, L.REGISTRAR, L.ANALYST, L.QUALITY))
moved = L.adopt(admin, L.OWNER)
if moved:
    print(f"{moved} objects handed to {L.OWNER}")
warehouse.migrate(logins[L.OWNER].dsn(admin))
conns = {}
for conn_id, login, what in (("warehouse_db", L.INGEST, "DAG tasks"), ("warehouse_quality", L.QUALITY, "Data quality page")):
    conns[conn_id] = {"conn_type": "postgres", "host": e["WAREHOUSE_DB_HOST"], "port": 5432,
                      "schema": e["WAREHOUSE_DB_NAME"], "login": login, "password": logins[login].password,
                      "description": f"Certificate warehouse, {what} (login {login})"}
L.write_secret(secrets / "warehouse_connections.json", json.dumps(conns))
print("warehouse at head; logins ready")
PY

# 5. Connections (recreated so that changed credentials take effect; warehouse ones from a 0600 file) ----------
log "Creating connections warehouse_db, warehouse_quality and minio_default"
airflow connections import --overwrite "${SECRETS_DIR}/warehouse_connections.json" >/dev/null

# Without the amazon provider the CLI would silently store the type as `generic`.
python -c "import airflow.providers.amazon" 2>/dev/null \
  || die "apache-airflow-providers-amazon is not installed in the image (needed for the aws connection type)"
minio_extra=$(python -c 'import json, os; print(json.dumps({"endpoint_url": os.environ["MINIO_ENDPOINT_URL"], "region_name": "us-east-1"}))')
airflow connections delete minio_default >/dev/null 2>&1 || true
airflow connections add minio_default \
  --conn-type aws \
  --conn-description "MinIO (S3-compatible) watched buckets" \
  --conn-login "${MINIO_ROOT_USER}" --conn-password "${MINIO_ROOT_PASSWORD}" \
  --conn-extra "${minio_extra}"

# 6. Buckets (through the connection just created, which also proves it works) --------------------
log "Creating MinIO buckets: ${MINIO_BUCKETS:-<none>}"
python - <<'PY'
import os
from airflow.providers.amazon.aws.hooks.s3 import S3Hook
hook = S3Hook(aws_conn_id="minio_default")
for bucket in os.environ.get("MINIO_BUCKETS", "").split():
    if hook.check_for_bucket(bucket):
        print(f"bucket {bucket}: exists")
    else:
        hook.create_bucket(bucket_name=bucket)
        print(f"bucket {bucket}: created")
PY

# Ownership of the shared volumes (the other services run as AIRFLOW_UID:0) ------------------------
chown -R "${AIRFLOW_UID}:0" "${AIRFLOW_HOME}/logs" "${AIRFLOW_HOME}/config"
chmod 600 "${PASSWORDS_FILE}"
chmod 700 "${SECRETS_DIR}"
find "${SECRETS_DIR}" -type f -exec chmod 600 {} +

log "Done. Log in at http://localhost:8080 as '${AIRFLOW_ADMIN_USER}'."
