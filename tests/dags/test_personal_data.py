"""Personal data (names, ID numbers, dates of birth) never reaches logs, XCom or the UI."""

import httpx

from tests.dags.conftest import FACILITIES
from tests.dags.test_his_pull import run_dag

PII_FIELDS = (
    "HOTEN_NND",
    "HO_TEN_NND",
    "TEN_CON",
    "HO_TEN_CON",
    "HO_TEN_CHA",
    "HO_TEN",
    "NGUOI_THANTHICH",
    "SO_CCCD_NND",
    "SO_GIAYTO",
    "NGAYSINH_NND",
    "NGAY_SINH",
    "MA_BHXH_NND",
    "MA_BHXH",
)


def personal_values(url: str) -> set[str]:
    values = set()
    for f in FACILITIES:
        for kind in ("GCS", "GBT"):
            page = 1
            while True:
                body = httpx.get(
                    f"{url}/his/{f}/api/v1/certificates",
                    auth=(f, f"sandbox-{f}"),
                    params={"kind": kind, "page": page, "page_size": 1000},
                ).json()
                for env in body["items"]:
                    rec = env["record"]
                    values.update(str(rec[k]).strip() for k in PII_FIELDS if rec.get(k) and len(str(rec[k])) >= 6)
                if not body["has_more"]:
                    break
                page += 1
    return values


def test_no_personal_data_in_logs_or_xcom(his_env, capfd, caplog):
    import os
    from pathlib import Path

    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    pii = personal_values(his_env)
    assert len(pii) > 100
    run = run_dag()
    assert run.state == "success"
    out, err = capfd.readouterr()
    texts = {"stdout": out, "stderr": err, "caplog": caplog.text}
    for p in Path(os.environ["AIRFLOW_HOME"]).rglob("*.log"):
        texts[str(p)] = p.read_text(errors="replace")
    with create_session() as session:
        rows = session.query(XComModel).filter(XComModel.run_id == run.run_id).all()
        texts["xcom"] = "\n".join(str(r.value) for r in rows)
    assert rows, "expected XCom values (batch ids and counts)"
    assert "batch_id" in texts["xcom"]
    for where, text in texts.items():
        leaked = sorted(v for v in pii if v in text)
        assert not leaked, f"{len(leaked)} personal value(s) found in {where}"
