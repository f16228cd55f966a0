"""The excel_inbox DAG end to end (dag.test()): a local bucket folder, and a real S3 server on loopback."""

from __future__ import annotations

import io
import os
from pathlib import Path

import openpyxl

from tests.sources.excel.conftest import FACILITY, births, deaths, his_export, template_file, xls_file


def run_dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    dag = bag.dags["excel_inbox"]
    for t in dag.tasks:
        t.retries = 0
    return dag.test()


def test_local_folder_end_to_end_without_personal_data_in_logs_or_xcom(excel_env, wh, tmp_path, monkeypatch, capfd):
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    root = tmp_path / "bucket"
    monkeypatch.setenv("AIRFLOW_VAR_CERTPIPE_INBOX_URL", root.as_uri())
    inbox = root / "inbox" / FACILITY
    inbox.mkdir(parents=True)
    gcs, _ = births(40, seed=21)
    gbt, _ = deaths(15, seed=21)
    his_export(tmp_path / "his.xlsx", [("GCS", "GCS", gcs), ("GBT", "GBT", gbt)])
    personal_name = "giay-chung-sinh-Nguyen-Thi-Lan-Huong.xlsx"  # staff do name files after patients
    (inbox / personal_name).write_bytes((tmp_path / "his.xlsx").read_bytes())
    (inbox / "cu.xls").write_bytes(xls_file(tmp_path / "cu.xls").read_bytes())

    run = run_dag()
    assert run.state == "success"
    rows = dict(wh.execute("SELECT status, count(*) FROM wh.excel_file GROUP BY 1"))
    assert rows == {"done": 1, "quarantined": 1}
    assert wh.execute("SELECT count(*) FROM wh.certificate WHERE last_source = 'excel'").fetchone()[0] > 0
    assert not any(inbox.iterdir())
    assert len(list((root / "processed" / FACILITY).iterdir())) == 1
    assert len(list((root / "quarantine" / FACILITY).iterdir())) == 1
    assert len(list((root / "results" / FACILITY).iterdir())) == 2
    assert [p.name for p in (root / "template").iterdir()] == ["mau-nhap-giay-chung-sinh-giay-bao-tu.xlsx"]

    # personal data: the file name and the people in it appear nowhere in logs or XCom
    pii = {personal_name, "Nguyen-Thi-Lan-Huong"}
    pii.update(r[k] for r in gcs for k in ("HOTEN_NND", "TEN_CON", "SO_CCCD_NND") if r.get(k) and len(r[k]) >= 6)
    out, err = capfd.readouterr()
    texts = {"stdout": out, "stderr": err}
    for p in Path(os.environ["AIRFLOW_HOME"]).rglob("*.log"):
        texts[str(p)] = p.read_text(errors="replace")
    with create_session() as session:
        xcoms = session.query(XComModel).filter(XComModel.run_id == run.run_id).all()
        texts["xcom"] = "\n".join(str(x.value) for x in xcoms)
    assert "file_id" in texts["xcom"]
    for where, text in texts.items():
        leaked = sorted(v for v in pii if v in text)
        assert not leaked, f"{len(leaked)} personal value(s) in {where}"

    # nothing new in the inbox: the next run does nothing
    before = wh.execute("SELECT count(*) FROM wh.ingest_batch").fetchone()[0]
    assert run_dag().state == "success"
    assert wh.execute("SELECT count(*) FROM wh.ingest_batch").fetchone()[0] == before


def test_s3_bucket_end_to_end(excel_env, wh, s3_bucket, tmp_path, monkeypatch):
    """The same DAG on S3-compatible object storage, by configuration alone."""
    monkeypatch.setenv("AIRFLOW_VAR_CERTPIPE_INBOX_URL", s3_bucket["url"])
    monkeypatch.setenv("AIRFLOW_VAR_CERTPIPE_INBOX_CONN_ID", s3_bucket["conn_id"])
    s3, name = s3_bucket["client"], s3_bucket["bucket"]
    gcs, gcs_bad = births(30, seed=31)
    data = template_file(tmp_path / "a.xlsx", gcs).read_bytes()
    s3.put_object(Bucket=name, Key=f"pilot/inbox/{FACILITY}/thang-11.xlsx", Body=data)
    s3.put_object(Bucket=name, Key=f"pilot/inbox/{FACILITY}/thang-11-gui-lai.xlsx", Body=data)

    assert run_dag().state == "success"
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=name, Prefix="pilot/")["Contents"])
    assert not [k for k in keys if k.startswith("pilot/inbox/")]
    assert not [k for k in keys if k.startswith("pilot/processing/")]  # the twin is answered with the original
    processed = [k for k in keys if k.startswith(f"pilot/processed/{FACILITY}/") and "-trung-" not in k]
    results = [k for k in keys if k.startswith(f"pilot/results/{FACILITY}/") and "-trung-" not in k]
    assert len(processed) == 1 and len(results) == 1
    assert len([k for k in keys if k.startswith(f"pilot/results/{FACILITY}/")]) == 2
    assert "pilot/template/mau-nhap-giay-chung-sinh-giay-bao-tu.xlsx" in keys
    assert s3.get_object(Bucket=name, Key=processed[0])["Body"].read() == data

    f = wh.execute("SELECT status, counts FROM wh.excel_file").fetchone()
    assert f[0] == "done" and f[1]["received"] == len(gcs) and f[1]["refused"] >= len(gcs_bad)
    book = openpyxl.load_workbook(io.BytesIO(s3.get_object(Bucket=name, Key=results[0])["Body"].read()))
    ws = book["Giấy chứng sinh"]
    assert ws.max_row - 1 == len(gcs)
    refused = [r for r in ws.iter_rows(min_row=2) if r[1].value == "Không nhận"]
    assert len(refused) == f[1]["refused"] and all(any(c.comment for c in r) for r in refused)

    # the next run has nothing to do; nothing is ingested twice
    batches = wh.execute("SELECT count(*) FROM wh.ingest_batch").fetchone()[0]
    assert run_dag().state == "success"
    assert wh.execute("SELECT count(*) FROM wh.ingest_batch").fetchone()[0] == batches
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=name, Prefix="pilot/")["Contents"])
    assert len([k for k in keys if k.startswith(f"pilot/processed/{FACILITY}/")]) == 2
    assert len([k for k in keys if k.startswith(f"pilot/results/{FACILITY}/")]) == 2
    assert not [k for k in keys if k.startswith(("pilot/inbox/", "pilot/processing/"))]
