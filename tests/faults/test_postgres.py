"""PostgreSQL stopped (fast shutdown) and restarted, or SIGKILLed with every server process, in the middle of an
ingest batch (the HIS task's ingest step, a subprocess), of a registrar marking a certificate used (the registrar
API over HTTP) and of the DHIS2 push (a subprocess, between DHIS2's answer and the outcome's commit)."""

from __future__ import annotations

import datetime as dt
import json
import threading

import httpx
import psycopg
import pytest

from certpipe import config, warehouse
from tests.conftest import airflow_conn
from tests.faults.conftest import advisory_held, no_stuck_sessions, wait_until, worker

GCS_LOCK = 7_261_001  # certpipe.core.ingest._LOCK_IDS["GCS"]
FAULTS = {"kill": "PostgreSQL SIGKILL (all server processes)", "restart": "PostgreSQL stopped (fast) and restarted"}


def crash(pg, how: str) -> None:
    if how == "kill":
        pg.kill()
    else:
        pg.stop("fast")
    pg.start()


def q(dsn, sql, *args):
    with psycopg.connect(dsn) as c:
        return c.execute(sql, args).fetchall()


@pytest.fixture
def his_big(sandbox_url, monkeypatch):
    """One HIS hospital with a feed large enough that its ingest takes a few seconds."""
    httpx.post(
        f"{sandbox_url}/_control/reset", json={"seed": 5, "births": 2000, "deaths": 5, "facilities": ["01020"]}
    ).raise_for_status()
    monkeypatch.setenv(
        "AIRFLOW_CONN_HIS_01020",
        json.dumps(
            {"conn_type": "http", "host": f"{sandbox_url}/his/01020", "login": "01020", "password": "sandbox-01020"}
        ),
    )
    (h,) = config.hospitals([{"facility": "01020", "name": "BV", "attempts": 2, "backoff": 0.05, "timeout": 30}])
    return h


@pytest.mark.parametrize("how", ["kill", "restart"])
def test_postgres_down_mid_ingest_batch(how, crash_pg, crash_db, his_big, sandbox_url, fault_row):
    fault_row(
        FAULTS[how],
        "HIS ingest batch (task subprocess, inside the upsert)",
        "batch rolled back whole (0 certificates, 0 outcomes); the task's retry ingests it: every record one outcome, "
        "counts add up, no duplicate; acknowledged; no session left",
    )
    from certpipe.sources.his.pull import extract

    batch = extract(his_big, "GCS", crash_db)
    assert batch["received"] > 2000
    proc = worker("his-ingest", json.dumps({"batch": batch, "dsn": crash_db}))
    wait_until(lambda: advisory_held(crash_db, GCS_LOCK) or proc.poll() is not None, 90, "the upsert to start")
    assert proc.poll() is None, proc.communicate()
    crash(crash_pg, how)
    _, _err = proc.communicate(timeout=60)
    assert proc.returncode != 0  # the task failed: Airflow retries it
    assert q(crash_db, "SELECT status FROM wh.ingest_batch WHERE batch_id = %s", batch["batch_id"]) == [("landed",)]
    assert q(crash_db, "SELECT count(*) FROM wh.certificate") == [(0,)]
    assert q(crash_db, "SELECT count(*) FROM wh.batch_record") == [(0,)]
    assert q(crash_db, "SELECT count(*) FROM wh.landing_record")[0][0] == batch["received"]  # landed data survived

    from certpipe.sources.his.pull import acknowledge, ingest_landed

    done = ingest_landed(batch, crash_db)  # the task's retry (in this process: the killed one was a subprocess)
    assert done["received"] == batch["received"]
    assert done["stored"] + done["updated"] + done["unchanged"] + done["refused"] == batch["received"]
    assert q(crash_db, "SELECT count(*), count(DISTINCT row_no) FROM wh.batch_record") == [(batch["received"],) * 2]
    n, distinct = q(crash_db, "SELECT count(*), count(DISTINCT (kind, cert_key)) FROM wh.certificate")[0]
    assert n == distinct == done["stored"]
    # a second retry (the task killed after its commit, before Airflow saw it) changes nothing and does not fail
    assert {k: v for k, v in ingest_landed(batch, crash_db).items() if k in done} == done
    acknowledge(his_big, batch, crash_db)
    acks = httpx.get(f"{sandbox_url}/_control/his/01020/acks").json()
    assert len(acks["latest"]) == len({e for (e,) in q(crash_db, "SELECT source_record_id FROM wh.landing_record")})
    assert no_stuck_sessions(crash_db) == []


@pytest.fixture
def registrar_api(crash_pg, crash_db, monkeypatch, tmp_path):
    import secrets

    from certpipe.warehouse import logins
    from registrar import create_app, issue_token
    from registrar.security import Settings
    from registrar.server import run_in_thread
    from tests.core.records import birth
    from tests.services.registrar.conftest import GENEROUS, load

    secret = secrets.token_urlsafe(32)
    monkeypatch.setenv("CERTPIPE_REGISTRAR_JWT_SECRET", secret)
    with warehouse.connect(crash_db) as conn:
        load(conn, [birth(1), birth(2)], "GCS", "01020")
    dsn = logins.ensure_logins(crash_pg.url, tmp_path / "secrets")[logins.REGISTRAR].dsn(crash_db)  # its own login
    app = create_app(dsn, settings=Settings.from_env(**GENEROUS))
    with run_in_thread(app) as url:
        yield url, issue_token("hn.hotich1", "UBND phường Ba Đình", "01", None, secret=secret)


def _waiting_on_lock(dsn: str) -> bool:
    try:
        return bool(
            q(
                dsn,
                "SELECT 1 FROM pg_stat_activity WHERE application_name = 'certpipe-registrar' "
                "AND wait_event_type = 'Lock'",
            )
        )
    except psycopg.OperationalError:
        return False


@pytest.mark.parametrize("how", ["kill", "restart"])
def test_postgres_down_mid_registrar_mark(how, crash_pg, crash_db, registrar_api, fault_row):
    fault_row(
        FAULTS[how],
        "registrar marking a certificate used (API, inside its transaction)",
        "the call fails (5xx), nothing marked; the registrar's retry marks it once; a repeated retry answers the same "
        "registration (200), another registration is refused 409 'already used'; one registration row",
    )
    url, token = registrar_api
    (cid,) = q(crash_db, "SELECT cert_id FROM wh.certificate WHERE cert_key = '00001.GCS.01020.25'")[0]
    body = {"registration_no": "125/2025", "registered_on": "2025-11-20"}
    got: dict = {}

    def mark():
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as c:
            try:
                got["first"] = c.post(f"/api/v1/certificates/{cid}/registration", json=body).status_code
            except httpx.HTTPError as e:
                got["first"] = type(e).__name__

    blocker = psycopg.connect(crash_db)  # holds the certificate's row: the mark waits inside its transaction
    blocker.execute("SELECT 1 FROM wh.certificate WHERE cert_id = %s FOR UPDATE", (cid,))
    t = threading.Thread(target=mark)
    t.start()
    wait_until(lambda: _waiting_on_lock(crash_db), 30, "the mark to wait on the row")
    crash(crash_pg, how)
    t.join(60)
    blocker.close()
    assert got["first"] != 200
    assert q(crash_db, "SELECT status FROM wh.certificate WHERE cert_id = %s", cid) == [("received",)]
    assert q(crash_db, "SELECT count(*) FROM wh.registration") == [(0,)]
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as c:
        first = c.post(f"/api/v1/certificates/{cid}/registration", json=body)
        replay = c.post(f"/api/v1/certificates/{cid}/registration", json=body)  # e.g. the answer was lost
        other = c.post(
            f"/api/v1/certificates/{cid}/registration",
            json={"registration_no": "126/2025", "registered_on": "2025-11-20"},
        )
    assert first.status_code == 200 and replay.status_code == 200
    assert replay.json()["registration_id"] == first.json()["registration_id"]
    assert other.status_code == 409 and other.json()["detail"].startswith("Giấy này đã được sử dụng")
    assert q(crash_db, "SELECT registration_no FROM wh.registration") == [("125/2025",)]
    assert q(crash_db, "SELECT status FROM wh.certificate WHERE cert_id = %s", cid) == [("used",)]
    assert no_stuck_sessions(crash_db) == []


@pytest.mark.parametrize("how", ["kill", "restart"])
def test_postgres_down_mid_dhis2_push(how, crash_pg, crash_db, sandbox_url, fault_proxy, monkeypatch, fault_row):
    fault_row(
        FAULTS[how],
        "DHIS2 push (subprocess, after DHIS2 created the events, before their outcomes are stored)",
        "the task fails, or finishes once the server is back; the next run finds its own events: one event per "
        "death in DHIS2, one outcome row per death, none 'error'",
    )
    from certpipe.sources.dhis2.keys import event_uid
    from tests.sources.dhis2.conftest import VARIABLE, add_gbt, sandbox_events

    httpx.post(f"{sandbox_url}/_control/dhis2/reset", json={"version": "2.41"}).raise_for_status()
    monkeypatch.setenv(
        "AIRFLOW_CONN_DHIS2_DEFAULT",
        json.dumps({"conn_type": "http", "host": f"{fault_proxy.url}/dhis2", "login": "admin", "password": "district"}),
    )
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE_DB", airflow_conn(crash_db))
    now = dt.datetime.now(dt.UTC)
    keys = [f"0004{i}.GBT.01020.26" for i in range(3)]
    with warehouse.connect(crash_db) as wh:
        for i, k in enumerate(keys):
            add_gbt(wh, k, name=f"TRẦN VĂN BA {i}", id_number=f"00104009876{i}", used_at=now - dt.timedelta(hours=1))
    args = {"start": (now - dt.timedelta(days=1)).isoformat(), "end": now.isoformat(), "dsn": crash_db}
    args["settings"] = VARIABLE
    fault_proxy.add(
        "slow", path="/dhis2/api/tracker", method="POST", seconds=4
    )  # the import: DHIS2 commits, then answers late
    proc = worker("dhis2-push", json.dumps(args))
    wait_until(lambda: ("slow", "/dhis2/api/tracker") in fault_proxy.used or proc.poll() is not None, 90, "import")
    assert proc.poll() is None, proc.communicate()
    crash(crash_pg, how)
    _, err = proc.communicate(timeout=90)
    created = {event_uid(k) for k in keys}
    assert created <= set(sandbox_events(sandbox_url))  # DHIS2 has them
    if proc.returncode != 0:  # the server was down when the outcomes were to be stored: the task failed
        assert q(crash_db, "SELECT count(*) FROM wh.dhis2_push WHERE outcome IN ('created', 'updated')") == [(0,)]
    # else: back before the outcomes were stored (each store opens its own connection): the run finished itself

    again = worker("dhis2-push", json.dumps(args))
    _out, err = again.communicate(timeout=120)
    assert again.returncode == 0, err[-2000:]
    events = sandbox_events(sandbox_url)
    ours = [uid for uid, e in events.items() if uid in created]
    assert sorted(ours) == sorted(created) and len(events) == len(created)  # nothing created twice
    rows = q(crash_db, "SELECT cert_id, outcome FROM wh.dhis2_push")
    assert len(rows) == 3 and {o for _, o in rows} <= {"created", "updated"}
    assert no_stuck_sessions(crash_db) == []
