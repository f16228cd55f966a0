"""Every source × every network/server fault, through sandbox/faultproxy.py in front of the sandbox stand-ins:
5xx, timeouts, 429 + Retry-After, connection resets, truncated and malformed bodies, very slow answers.

Each case: a run meets the fault on every try (a persistent outage) → the task fails with a retryable error
(never Airflow's "do not retry") and writes nothing (no batch, no watermark move, the directory kept); the next run
meets it once (a hiccup) → retried inside the task, it finishes with everything: nothing lost, nothing twice. A
slow answer (within the client's timeout) simply succeeds."""

from __future__ import annotations

import datetime as dt
import json

import httpx
import psycopg
import pytest

from certpipe.errors import CertpipeError
from sandbox.faultproxy import KINDS
from tests.conftest import airflow_conn

CLIENT = {"attempts": 2, "backoff": 0.01, "max_backoff": 0.1, "timeout": 1.0}
HOLD = 2.5  # a "timeout" answer holds longer than the client's timeout
SLOW = 0.5  # a "slow" answer comes within it
LABEL = {
    "status": "HTTP 503",
    "throttle": "HTTP 429 + Retry-After",
    "timeout": "timeout (no answer)",
    "reset": "connection reset (RST)",
    "truncated": "body cut off mid-way",
    "malformed": "malformed JSON body (HTTP 200)",
    "slow": "very slow answer (within the timeout)",
}


def q(dsn, sql, *args):
    with psycopg.connect(dsn) as c:
        return c.execute(sql, args).fetchall()


def terminal(e: BaseException) -> bool:
    try:
        from airflow.sdk.exceptions import AirflowFailException
    except ImportError:  # pragma: no cover
        return False
    return isinstance(e, AirflowFailException)


# ---------------------------------------------------------------- the sources: a run, and what "done" means


class His:
    name, path = "HIS", "/his/01020/api/v1/certificates"

    def setup(self, url, proxy, monkeypatch, dsn):
        httpx.post(
            f"{url}/_control/reset", json={"seed": 3, "births": 30, "deaths": 10, "facilities": ["01020"]}
        ).raise_for_status()
        monkeypatch.setenv(
            "AIRFLOW_CONN_HIS_01020",
            json.dumps(
                {"conn_type": "http", "host": f"{proxy.url}/his/01020", "login": "01020", "password": "sandbox-01020"}
            ),
        )
        from certpipe import config

        (self.hospital,) = config.hospitals([{"facility": "01020", "name": "BV", **CLIENT}])
        self.url, self.dsn = url, dsn

    def run(self):
        from certpipe.sources.his.pull import acknowledge, extract, ingest_landed

        for kind in ("GCS", "GBT"):
            batch = extract(self.hospital, kind, self.dsn)
            acknowledge(self.hospital, ingest_landed(batch, self.dsn), self.dsn)

    def written(self):
        return (
            q(self.dsn, "SELECT count(*) FROM wh.ingest_batch")[0][0]
            + q(self.dsn, "SELECT count(*) FROM wh.source_watermark")[0][0]
        )

    def check_done(self):
        feed = {
            e["id"]
            for kind in ("GCS", "GBT")
            for e in httpx.get(
                f"{self.url}/his/01020/api/v1/certificates",
                auth=("01020", "sandbox-01020"),
                params={"kind": kind, "page_size": 1000},
            ).json()["items"]
        }
        acks = httpx.get(f"{self.url}/_control/his/01020/acks").json()["latest"]
        assert set(acks) == feed  # every record answered
        landed = q(self.dsn, "SELECT count(DISTINCT source_record_id) FROM wh.landing_record")[0][0]
        assert landed == len(feed)
        n, d = q(self.dsn, "SELECT count(*), count(DISTINCT (kind, cert_key)) FROM wh.certificate")[0]
        assert n == d > 0
        assert q(self.dsn, "SELECT count(*) FROM wh.source_watermark") == [(2,)]


class Bhxh:
    name, path = "BHXH", "/bhxh/api/v1/certificates"
    start = dt.datetime(2026, 11, 20, 9, tzinfo=dt.timezone(dt.timedelta(hours=7)))

    def setup(self, url, proxy, monkeypatch, dsn):
        from certpipe.http.auth import RenewingTokenAuth
        from tests.sources.bhxh.conftest import load_windows, window_data

        httpx.post(f"{url}/_control/reset", json={"seed": 7, "births": 10, "deaths": 4}).raise_for_status()
        self.data = window_data(births=12, deaths=6, facilities=("01020",))
        load_windows(url, self.data)
        monkeypatch.setenv(
            "AIRFLOW_CONN_BHXH_DEFAULT",
            json.dumps(
                {"conn_type": "http", "host": f"{proxy.url}/bhxh", "login": "bhxh-sandbox", "password": "sandbox-bhxh"}
            ),
        )
        RenewingTokenAuth._cache.clear()
        self.dsn = dsn

    def run(self):
        from certpipe.sources.bhxh.pull import ingest_window, pull_window

        for kind in ("GCS", "GBT"):
            end = self.start + dt.timedelta(hours=3)
            batch = pull_window("01", kind, self.start, end, self.dsn, client=CLIENT)
            ingest_window(batch, self.dsn)

    def written(self):
        return (
            q(self.dsn, "SELECT count(*) FROM wh.ingest_batch")[0][0]
            + q(self.dsn, "SELECT count(*) FROM wh.source_watermark")[0][0]
        )

    def check_done(self):
        want = sum(len(d["items"]) for d in self.data.values())
        assert q(self.dsn, "SELECT count(DISTINCT source_record_id) FROM wh.landing_record") == [(want,)]
        n, d = q(self.dsn, "SELECT count(*), count(DISTINCT (kind, cert_key)) FROM wh.certificate")[0]
        assert n == d > 0
        assert q(self.dsn, "SELECT count(*) FROM wh.source_watermark") == [(2,)]


class Dhis2:
    name, path = "DHIS2", "/dhis2/api/tracker/events"
    end = dt.datetime.now(dt.UTC).replace(microsecond=0)

    def setup(self, url, proxy, monkeypatch, dsn):
        from tests.sources.dhis2.conftest import a6_event, load_events

        httpx.post(f"{url}/_control/dhis2/reset", json={"version": "2.41"}).raise_for_status()
        moment = self.end - dt.timedelta(hours=3)
        self.uids = [f"EvFault{i:04d}" for i in range(7)]
        load_events(url, [a6_event(u, name=f"Lê Văn {i}", updated=moment) for i, u in enumerate(self.uids)])
        monkeypatch.setenv(
            "AIRFLOW_CONN_DHIS2_DEFAULT",
            json.dumps({"conn_type": "http", "host": f"{proxy.url}/dhis2", "login": "admin", "password": "district"}),
        )
        self.dsn = dsn

    def run(self):
        from certpipe.sources.dhis2.daily import match_events, pull_window
        from tests.sources.dhis2.conftest import ROOT, settings

        pull_window(
            ROOT, self.end - dt.timedelta(days=1), self.end, self.dsn, run_id="f", settings=settings(client=CLIENT)
        )
        match_events(self.dsn)

    def written(self):
        return (
            q(self.dsn, "SELECT count(*) FROM wh.dhis2_death_event")[0][0]
            + q(self.dsn, "SELECT count(*) FROM wh.source_watermark")[0][0]
        )

    def check_done(self):
        got = [u for (u,) in q(self.dsn, "SELECT event_uid FROM wh.dhis2_death_event ORDER BY 1")]
        assert got == self.uids
        assert q(self.dsn, "SELECT count(*) FROM wh.source_watermark") == [(1,)]


class SecServer:
    name, path = "security server", "/secserver/"

    def setup(self, url, proxy, monkeypatch, dsn):
        from tests.sources.secserver.conftest import secserver_conn

        httpx.post(f"{url}/_control/secserver/reset").raise_for_status()
        monkeypatch.setenv("AIRFLOW_CONN_SECSERVER_DEFAULT", secserver_conn(proxy.url, **CLIENT))
        self.url, self.dsn = url, dsn

    def run(self):
        from certpipe.sources.secserver.directory import refresh_directory

        refresh_directory("secserver_default", self.dsn, run_id="f")

    def written(self):
        return q(self.dsn, "SELECT count(*) FROM wh.secserver_directory")[0][0]

    def check_done(self):
        want = httpx.get(f"{self.url}/_control/secserver/directory").json()
        assert q(self.dsn, "SELECT count(*) FROM wh.secserver_directory") == [(len(want),)]
        assert q(self.dsn, "SELECT status FROM wh.secserver_directory_refresh ORDER BY refresh_id")[-1] == ("applied",)


SOURCES = {"his": His, "bhxh": Bhxh, "dhis2": Dhis2, "secserver": SecServer}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("source", list(SOURCES))
def test_source_fault(source, kind, sandbox_url, fault_proxy, warehouse_dsn, monkeypatch, fault_row):
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE_DB", airflow_conn(warehouse_dsn))
    s = SOURCES[source]()
    fault_row(
        LABEL[kind],
        f"{s.name} pull",
        "answer within the timeout: the run succeeds, complete"
        if kind == "slow"
        else "every try: the task fails retryable, nothing written; once: retried in the task, complete; no duplicate",
    )
    s.setup(sandbox_url, fault_proxy, monkeypatch, warehouse_dsn)
    opts = {"seconds": HOLD if kind == "timeout" else SLOW}
    if kind != "slow":
        fault_proxy.add(kind, path=s.path, count=100, **opts)
        with pytest.raises(CertpipeError) as err:
            s.run()
        assert not terminal(err.value), f"{type(err.value).__name__}: Airflow would not retry"
        assert s.written() == 0, "a failed pull wrote something"
        fault_proxy.clear()
    fault_proxy.add(kind, path=s.path, count=1, **opts)
    s.run()
    assert (kind, s.path) in fault_proxy.used or any(k == kind for k, _ in fault_proxy.used)
    s.check_done()
