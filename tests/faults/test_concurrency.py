"""Everything at once on one warehouse: HIS, BHXH and Excel batches updating the same certificates, registrars
marking them used over the API, the DHIS2 daily pull and the matching DAG (dhis2_match) on the same A6 events.
No deadlock, no lost update, and "already used" holds when a mark and an update of a certificate race."""

from __future__ import annotations

import copy
import datetime as dt
import json
import random
import secrets
import threading
import time

import httpx
import psycopg
import pytest

from certpipe import clock, warehouse
from certpipe.sources import ingest_batch, land_batch
from tests.conftest import airflow_conn
from tests.faults.conftest import no_stuck_sessions

ROUNDS = 12
RACES = 30


def q(dsn, sql, *args):
    with psycopg.connect(dsn) as c:
        return c.execute(sql, args).fetchall()


def records(n: int, seed: int) -> list[dict]:
    from tests.sources.excel.conftest import births

    recs, _ = births(n, seed=seed, bad_ratio=0)
    return recs


def changed(recs: list[dict], rng: random.Random, share: float = 0.5) -> list[dict]:
    out = copy.deepcopy(recs)
    for r in out:
        if rng.random() < share:
            r["CAN_NANG_CON"] = str(rng.randrange(2500, 4000))
    return out


def his_batch(dsn: str, recs: list[dict], source: str = "his", ref: str = "01020") -> dict:
    with warehouse.connect(dsn) as conn:
        envs = [{"id": f"{source}-{i}", "record": r} for i, r in enumerate(recs)]
        batch_id, _ = land_batch(conn, envs, source=source, source_ref=ref, kind="GCS")
        conn.commit()
        return ingest_batch(conn, batch_id, kind="GCS", source=source, source_ref=ref).summary()


@pytest.fixture
def api(warehouse_dsn, pg_logins, monkeypatch):
    from certpipe.warehouse.logins import REGISTRAR
    from registrar import create_app, issue_token
    from registrar.security import Settings
    from registrar.server import run_in_thread
    from tests.services.registrar.conftest import GENEROUS

    secret = secrets.token_urlsafe(32)
    monkeypatch.setenv("CERTPIPE_REGISTRAR_JWT_SECRET", secret)
    app = create_app(pg_logins[REGISTRAR].dsn(warehouse_dsn), settings=Settings.from_env(**GENEROUS))
    with run_in_thread(app) as url:
        yield url, [issue_token(f"hn.hotich{i}", "UBND phường Ba Đình", "01", None, secret=secret) for i in (1, 2)]


def mark(url: str, token: str, cid: int, no: str) -> int:
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as c:
        return c.post(
            f"/api/v1/certificates/{cid}/registration",
            json={"registration_no": no, "registered_on": clock.vn_today().isoformat()},  # on or after the issue
        ).status_code


def test_mark_and_update_of_one_certificate_race_already_used_holds(warehouse_dsn, api, fault_row):
    fault_row(
        "race: registrar mark vs source update (and a second registrar)",
        f"{RACES} rounds, one certificate each",
        "one mark wins; the update is either applied before the mark (then kept) or refused ALREADY_USED (record "
        "unchanged); never an update of a used certificate; one registration",
    )
    url, tokens = api
    recs = records(RACES, seed=41)
    his_batch(warehouse_dsn, recs)
    ids = dict(q(warehouse_dsn, "SELECT cert_key, cert_id FROM wh.certificate"))
    seen = {"updated": 0, "refused": 0}
    for i, rec in enumerate(recs):
        cid = ids.get(str(rec["MA_GCS"]).strip().upper())  # (the generator's messy copies: lower case, spaces)
        if cid is None:
            continue
        before = q(
            warehouse_dsn, "SELECT record->>'CAN_NANG_CON', version FROM wh.certificate WHERE cert_id = %s", cid
        )[0]
        if (
            before[1] != 1
            or q(warehouse_dsn, "SELECT status FROM wh.certificate WHERE cert_id = %s", cid)[0][0] != "received"
        ):
            continue  # a twin's certificate already raced
        new = {**rec, "CAN_NANG_CON": str(3999 - i)}
        barrier = threading.Barrier(3)
        out: dict = {}

        def go(who, cid=cid, new=new, barrier=barrier, out=out, i=i):
            barrier.wait()
            if who == "ingest":
                out[who] = his_batch(warehouse_dsn, [new])
            else:
                out[who] = mark(url, tokens[who], cid, f"{10 * i + who + 1}/2026")

        threads = [threading.Thread(target=go, args=(w,)) for w in ("ingest", 0, 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert sorted([out[0], out[1]]) == [200, 409]
        status, weight, version = q(
            warehouse_dsn, "SELECT status, record->>'CAN_NANG_CON', version FROM wh.certificate WHERE cert_id = %s", cid
        )[0]
        assert status == "used"
        if out["ingest"]["updated"] == 1:  # the update came first: kept, and the mark after it
            assert (weight, version) == (new["CAN_NANG_CON"], 2)
            seen["updated"] += 1
        else:
            assert out["ingest"]["refusals_by_rule"] == {"ALREADY_USED": 1}
            assert (weight, version) == before  # the used certificate kept what the registrar saw
            seen["refused"] += 1
        assert q(warehouse_dsn, "SELECT count(*) FROM wh.registration WHERE cert_id = %s", cid) == [(1,)]
    assert sum(seen.values()) >= RACES * 0.8


def test_everything_at_once_no_deadlock_no_lost_update(
    warehouse_dsn, api, sandbox_url, monkeypatch, tmp_path, fault_row
):
    fault_row(
        "concurrency: HIS + BHXH + Excel batches, registrar marks, DHIS2 daily pull + dhis2_match",
        f"{ROUNDS} rounds each, same certificates and events",
        "no error (no deadlock); each certificate's version = 1 + its 'updated' outcomes, one history row per "
        "update (no lost update); marked = used, one registration per used one; every event stored once",
    )
    from certpipe.sources.bhxh.pull import ingest_window
    from certpipe.sources.dhis2.daily import match_events, pull_window
    from certpipe.sources.excel import inbox
    from tests.sources.dhis2.conftest import a6_event, load_events, settings
    from tests.sources.excel.conftest import template_file

    url, tokens = api
    recs = records(40, seed=43)
    his_batch(warehouse_dsn, recs)
    ids = [cid for (cid,) in q(warehouse_dsn, "SELECT cert_id FROM wh.certificate ORDER BY 1")]
    httpx.post(f"{sandbox_url}/_control/dhis2/reset", json={"version": "2.41"}).raise_for_status()
    monkeypatch.setenv(
        "AIRFLOW_CONN_DHIS2_DEFAULT",
        json.dumps({"conn_type": "http", "host": f"{sandbox_url}/dhis2", "login": "admin", "password": "district"}),
    )
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE_DB", airflow_conn(warehouse_dsn))
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    rng = random.Random(5)
    uids = [f"EvConc{i:05d}" for i in range(40)]
    events = [
        a6_event(u, name=f"Ngô Văn {i}", updated=now - dt.timedelta(minutes=rng.randrange(600)))
        for i, u in enumerate(uids)
    ]
    load_events(sandbox_url, events)
    root = tmp_path / "bucket"
    (root / "inbox" / "01020").mkdir(parents=True)
    from airflow.sdk import ObjectStoragePath

    bucket = ObjectStoragePath(root.as_uri() + "/")
    errors: list[BaseException] = []
    outcomes = {"marked": set()}

    def actor(name, step):
        def run():
            r = random.Random(name)
            try:
                for i in range(ROUNDS):
                    step(i, r)
            except BaseException as e:  # reported below, with the actor's name
                errors.append(RuntimeError(f"{name}: {type(e).__name__}: {e}"))

        return threading.Thread(target=run, name=name)

    def his(i, r):
        his_batch(warehouse_dsn, changed(recs, r))

    def bhxh(i, r):
        with warehouse.connect(warehouse_dsn) as conn:
            envs = [{"id": f"B-{j}", "record": x} for j, x in enumerate(changed(recs, r, 0.3))]
            batch_id, _ = land_batch(conn, envs, source="bhxh", source_ref="01", kind="GCS")
        ingest_window(
            {"batch_id": batch_id, "kind": "GCS", "province": "01", "window_end": now.isoformat()}, warehouse_dsn
        )

    def excel(i, r):
        f = tmp_path / f"x{i}.xlsx"
        template_file(f, changed(recs[: 20 + i], r, 0.4))
        (root / "inbox" / "01020" / f"t{i}.xlsx").write_bytes(f.read_bytes())
        for fid in inbox.scan(bucket, warehouse_dsn, min_age=0, facilities=["01020"])["file_ids"]:
            inbox.process(bucket, warehouse_dsn, fid)

    def registrar(i, r):
        for cid in r.sample(ids, 3):
            code = mark(url, tokens[i % 2], cid, f"{cid}/2026")
            assert code in (200, 409), code
            if code == 200:
                outcomes["marked"].add(cid)

    def dhis2_pull(i, r):
        for u in r.sample(uids, 10):  # stations edit events between pulls
            ev = events[uids.index(u)]
            ev["updatedAt"] = (now - dt.timedelta(minutes=r.randrange(600))).isoformat(timespec="milliseconds")
        load_events(sandbox_url, events)
        pull_window("VnHaNoi0001", now - dt.timedelta(days=1), now, warehouse_dsn, run_id=f"p{i}", settings=settings())
        match_events(warehouse_dsn, run_id=f"d{i}")

    def dhis2_match(i, r):
        match_events(warehouse_dsn, run_id=f"m{i}")

    threads = [
        actor(n, s)
        for n, s in (
            ("his", his),
            ("bhxh", bhxh),
            ("excel", excel),
            ("registrar", registrar),
            ("dhis2_pull", dhis2_pull),
            ("dhis2_match", dhis2_match),
        )
    ]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    assert not [t.name for t in threads if t.is_alive()], "stuck"
    assert errors == [], errors
    assert time.monotonic() - t0 < 600
    # no lost update: every 'updated' outcome is one version and one history row
    bad = q(
        warehouse_dsn,
        "SELECT c.cert_id, c.version, (SELECT count(*) FROM wh.batch_record b WHERE b.cert_id = c.cert_id "
        "AND b.outcome = 'updated'), (SELECT count(*) FROM wh.certificate_version v WHERE v.cert_id = c.cert_id) "
        "FROM wh.certificate c",
    )
    assert [r for r in bad if not (r[1] == 1 + r[2] == 1 + r[3])] == []
    used = {cid for (cid,) in q(warehouse_dsn, "SELECT cert_id FROM wh.certificate WHERE status = 'used'")}
    assert used == outcomes["marked"]
    regs = q(warehouse_dsn, "SELECT cert_id, count(*) FROM wh.registration GROUP BY 1")
    assert dict(regs) == dict.fromkeys(used, 1)
    # a used certificate's later updates were refused ALREADY_USED, and counted so
    assert (
        q(warehouse_dsn, "SELECT count(*) FROM wh.batch_record WHERE reasons::text LIKE '%%ALREADY_USED%%'")[0][0] >= 0
    )
    assert q(warehouse_dsn, "SELECT status, count(*) FROM wh.excel_file GROUP BY 1") == [("done", ROUNDS)]
    assert q(warehouse_dsn, "SELECT count(*) FROM wh.dhis2_death_event") == [(len(uids),)]
    assert no_stuck_sessions(warehouse_dsn) == []
