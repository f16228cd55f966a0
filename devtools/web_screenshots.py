"""Screenshots of the web faces for the README (docs/img/station.png, docs/img/console.png), taken in the real
browser (devtools/browser.py) against the registrar service on loopback over a fresh embedded PostgreSQL loaded
with sandbox births and deaths (synthetic people).

    python -m devtools.web_screenshots [--out docs/img]
"""

from __future__ import annotations

import argparse
import secrets
import tempfile
from pathlib import Path

from devtools import browser
from devtools.embedded_pg import EmbeddedPostgres, free_port

ROOT = Path(__file__).resolve().parents[1]


def load(dsn: str) -> None:
    from certpipe import warehouse
    from certpipe.core.ingest import ingest
    from sandbox.generate import generate_births, generate_deaths

    clean = {"bad_ratio": 0, "dup_ratio": 0, "resubmit_ratio": 0, "messy_ratio": 0}
    with warehouse.connect(dsn) as conn:
        for kind, facility, batch in (
            ("GCS", "01020", generate_births(12, facility="01020", seed=7, **clean)),
            ("GBT", "01020", generate_deaths(4, facility="01020", seed=7, **clean)),
        ):
            bid = warehouse.create_batch(conn, source="his", source_ref=facility, kind=kind)
            conn.commit()
            ingest(
                conn,
                batch_id=bid,
                kind=kind,
                source="his",
                source_ref=facility,
                records=[e["record"] for e in batch],
                record_ids=[e["id"] for e in batch],
            )
        conn.commit()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m devtools.web_screenshots")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    a = p.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    import psycopg

    from certpipe import warehouse
    from registrar import create_app
    from registrar.auth import issue_token
    from registrar.server import run_in_thread
    from registrar.web import stations

    pg = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="certpipe-shots-")) / "pg", free_port()).start()
    try:
        dsn = pg.create_database("warehouse")
        warehouse.migrate(dsn)
        load(dsn)
        credential = stations.add(dsn, "01020", "Bệnh viện thí điểm Hà Nội")
        with psycopg.connect(dsn) as c:
            key, person, issued, cert_id, prov = c.execute(
                "SELECT cert_key, person_id, issued_on, cert_id, record->>'MATINH_CU_TRU' FROM wh.certificate "
                "WHERE kind = 'GCS' ORDER BY cert_id LIMIT 1"
            ).fetchone()
        secret = secrets.token_urlsafe(32)
        app = create_app(dsn, jwt_secret=secret, db_role="certpipe_registrar")
        with run_in_thread(app) as url, browser.launch() as b:
            page = b.new_context(viewport={"width": 1366, "height": 768}, locale="vi-VN").new_page()
            page.goto(url + "/station/setup")
            page.fill("#credential", credential)
            page.click("button[type=submit]")
            page.wait_for_url(url + "/station")
            page.check('input[name=kind][value="GCS"]')
            page.fill("#number", key)
            page.fill("#factor", person)
            page.fill("#date", issued.isoformat())
            page.click("#station-form button[type=submit]")
            page.wait_for_selector("#cert-number")
            page.screenshot(path=str(a.out / "station.png"), full_page=True)
            page = b.new_context(viewport={"width": 1366, "height": 768}, locale="vi-VN").new_page()
            page.goto(url + "/console/login")
            page.fill("#token", issue_token("hn.hotich1", "UBND phường Ba Đình", prov, secret=secret))
            page.click("button[type=submit]")
            page.wait_for_url(url + "/console")
            page.goto(f"{url}/console/cert/{cert_id}")
            page.screenshot(path=str(a.out / "console.png"), full_page=False)
        print(f"wrote {a.out / 'station.png'} and {a.out / 'console.png'}")
    finally:
        pg.destroy()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
