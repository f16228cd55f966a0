"""The columnar ingestion path against the row-by-row one it replaced (tests/core/reference_ingest.py).

Both paths take the same batches, each into its own fresh warehouse: the sandbox generator's births and deaths
(bad, messy, duplicated and resubmitted records), then a fuzzed set made from them (values as spreadsheets and
HIS exports send them, broken values, renamed and missing keys, non-records, in-batch copies, re-sends of stored
certificates, changes to certificates a registrar has used). Every batch must come out the same: counts, the
outcome of every record with the field, rule and message of every refusal, and what the warehouse then holds.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import unicodedata

import pytest

from certpipe import warehouse
from certpipe.core.ingest import ingest
from certpipe.core.schema import kind_spec
from sandbox.generate import generate_births, generate_deaths
from tests.core.reference_ingest import reference_ingest

NOW = dt.datetime(2025, 12, 1, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=7)))

# What a source may send instead of a field's value. Each takes (rng, value as generated) and returns the value.
VALUE_FUZZ = [
    lambda _r, _v: None,
    lambda _r, _v: "",
    lambda _r, _v: "   ",
    lambda _r, v: f"  {v}  ",
    lambda _r, v: str(v).replace(" ", "   ", 1),
    lambda _r, v: f"{v}\t\n",
    lambda _r, v: str(v).replace(" ", "\u00a0"),
    lambda _r, v: unicodedata.normalize("NFD", str(v)),
    lambda _r, v: str(v).lower(),
    lambda _r, v: str(v).upper(),
    lambda _r, v: int(v) if str(v).isdigit() else v,
    lambda _r, v: float(v) if str(v).isdigit() else v,
    lambda _r, v: int(v) + 0.5 if str(v).isdigit() else v,
    lambda _r, v: str(v) + ".0" if str(v).isdigit() else v,
    lambda _r, v: str(v).lstrip("0") or v,
    lambda _r, v: str(v) + "x" * 300,
    lambda _r, v: str(v) * 8,
    lambda _r, v: f'{v} "quoted" \\ back',
    lambda _r, v: f"{v}\x01",
    lambda _r, v: f"{v} 🙂",
    lambda _r, v: str(v)[:-1],
    lambda _r, v: str(v) + "7",
    lambda _r, v: v,
    lambda _r, _v: True,
    lambda _r, _v: -3,
    lambda r, _v: r.choice(["0", "1", "2", "3", "9", "99999", "45000", "x"]),
    lambda r, _v: r.choice(["704", "VN", "vnm", "000", "840", "ZZ"]),
    lambda r, _v: r.choice(["01", "1", "79", "96", "100", "00004", "4", "26734", "09832"]),
    lambda r, _v: r.choice(["20250231", "20251301", "18000101", "22250101", "20991231", "2025-11-10", "10/11/2025"]),
    lambda r, _v: r.choice(["19600615", "19700101", "19820101", "20150101", "20151201", "20251109", "20251111"]),
    lambda r, _v: r.choice(["202511100830", "20251110083015", "202511102500", "2025-11-10T08:30:00+07:00"]),
    lambda r, _v: r.choice([dt.date(2025, 11, 10), dt.datetime(2025, 11, 9, 8, 30, 5), 45970.5, 45970]),
    lambda r, _v: r.choice(["001195012345", "001095012345", "999195012345", "0011950123", "B1234567", "12.345.678"]),
    lambda r, _v: r.choice(["I21.9", "I21.9; J18", "XYZ", "r54", "A00†"]),
]


# Values by field type, near the rules' edges (dates: ages of 9, 10, 45, 55, 65 and 66 at a 2025 birth, the
# admin reform of 2025-07-01, the future).
BY_TYPE = {
    "date": ["19590101", "19600615", "19700101", "19800101", "20150101", "20151201", "20250630", "20250701",
             "20251109", "20251111", "20261231", "19591210", "20160101"],
    "datetime": ["202506301200", "202507010000", "202511090830", "202511100000", "202612310000", "19600615080000"],
    "int": ["0", "1", "2", "3", "4", "299", "300", "7000", "7001", "10", "11", "31", "-1"],
    "id": ["001195012345", "001095012345", "001295012345", "002185012345", "079195012345", "001198512345",
           "123456789", "B1234567", "0011950123"],
    "code": ["01", "79", "96", "31", "00004", "26734", "32014", "09832", "01020", "79034", "704", "VN", "01"],
    "nationality": ["704", "VN", "VNM", "000", "840", "US", "ZZ"],
}  # fmt: skip


def _fuzz_value(rng: random.Random, spec, key: str, value):
    f = spec.by_name.get(spec.lookup.get(key.upper(), ""))
    if f is not None and f.type in BY_TYPE and rng.random() < 0.6:
        return rng.choice(BY_TYPE[f.type])
    return rng.choice(VALUE_FUZZ)(rng, value)


def _fuzz_record(rng: random.Random, rec: dict, kind: str) -> object:
    roll = rng.random()
    if roll < 0.01:
        return rng.choice(["not a record", 42, None, ["MA_GCS"]])
    spec = kind_spec(kind)
    rec = dict(rec)
    for _ in range(rng.choice([0, 1, 1, 2, 3, 6])):
        key = rng.choice(list(rec))
        rec[key] = _fuzz_value(rng, spec, key, rec[key])
    if roll > 0.97:
        key = rng.choice(list(rec))
        del rec[key]
    elif roll > 0.94:  # keys as other exports spell them: alias, lower case, unknown extra
        renamed = {"MA_CSKCB": "MACSKCB", "HOTEN_NND": "HO_TEN_NND", "MA_QUOCTICH_NND": "MA_QUOCTICH"}
        rec = {(renamed.get(k, k.lower()) if rng.random() < 0.3 else k): v for k, v in rec.items()}
        rec["EXTRA_FIELD"] = "x"
    elif roll > 0.93 and "MA_CSKCB" in rec:  # official name and alias both present
        rec["MACSKCB"] = rng.choice([rec["MA_CSKCB"], "79034", " 1020", None])
    return rec


def fuzzed(rng: random.Random, records: list[dict], stored: list[dict], kind: str) -> list[object]:
    """Records made from `records`, plus exact and changed re-sends of `stored` and copies within the batch."""
    out = [_fuzz_record(rng, r, kind) for r in records]
    out += [dict(r) for r in rng.sample(stored, min(len(stored), 40))]  # identical re-sends
    out += [_fuzz_record(rng, r, kind) for r in rng.sample(stored, min(len(stored), 40))]  # changed re-sends
    for _ in range(20):  # copies within the batch, identical or not
        i = rng.randrange(len(out))
        copy = out[i]
        if isinstance(copy, dict) and rng.random() < 0.5:
            copy = _fuzz_record(rng, copy, kind)
        out.insert(rng.randrange(len(out) + 1), copy)
    rng.shuffle(out)
    return out


@pytest.fixture
def two_warehouses(pg_server, warehouse_template):
    names = [f"certpipe_diff{os.getpid()}_{side}" for side in ("old", "new")]
    for name in names:
        pg_server.execute(f'DROP DATABASE IF EXISTS "{name}"')
        pg_server.execute(f'CREATE DATABASE "{name}" TEMPLATE "{warehouse_template}"')
    conns = [warehouse.connect(pg_server.url_for(name)) for name in names]
    yield conns
    for c in conns:
        c.close()
    for name in names:
        pg_server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _run(conn, fn, records, ids, *, kind, source, ref):
    batch = warehouse.create_batch(conn, source=source, source_ref=ref, kind=kind)
    conn.commit()
    result = fn(conn, batch_id=batch, kind=kind, source=source, source_ref=ref, records=records, record_ids=ids)
    return batch, result.summary()


def _state(conn, batch: int) -> dict:
    q = {
        "outcomes": "SELECT row_no, source_record_id, cert_key, cert_id, outcome, reasons FROM wh.batch_record "
        "WHERE batch_id = %s ORDER BY row_no",
        "refused": "SELECT row_no, payload FROM wh.refused_record WHERE batch_id = %s ORDER BY row_no",
        "batch": "SELECT received, stored, updated, unchanged, refused, refusals_by_rule FROM wh.ingest_batch "
        "WHERE batch_id = %s",
    }
    out = {name: conn.execute(sql, (batch,)).fetchall() for name, sql in q.items()}
    out["certificates"] = conn.execute(
        "SELECT cert_id, kind, cert_key, facility_code, issued_on, person_id, event_at, record, content_hash, "
        "status, version, first_batch_id, last_batch_id, last_source FROM wh.certificate ORDER BY cert_id"
    ).fetchall()
    out["versions"] = conn.execute(
        "SELECT cert_id, version, record, content_hash, batch_id, source FROM wh.certificate_version ORDER BY 1, 2"
    ).fetchall()
    # Not last_batch_id: the row-by-row path moved it for every identical re-send, the columnar one leaves the
    # provenance row as it is (the re-send's outcome row records it).
    out["provenance"] = conn.execute(
        "SELECT cert_id, source, source_ref, source_record_id, content_hash, raw_hash, first_batch_id "
        "FROM wh.certificate_source ORDER BY 1, 2, 3"
    ).fetchall()
    out["disagreements"] = conn.execute(
        "SELECT cert_id, fields, source_a, version_a, source_b, batch_id, row_no, outcome "
        "FROM wh.source_disagreement ORDER BY cert_id, batch_id, row_no"
    ).fetchall()
    return out


def _both(conns, records, ids, **kw) -> dict:
    (old_batch, old), (new_batch, new) = (
        _run(conns[0], reference_ingest, records, ids, **kw),
        _run(conns[1], ingest, records, ids, **kw),
    )
    assert old_batch == new_batch
    assert new == old
    old_state, new_state = _state(conns[0], old_batch), _state(conns[1], new_batch)
    for part, rows in old_state.items():
        assert new_state[part] == rows, part
    assert sum(old[k] for k in ("stored", "updated", "unchanged", "refused")) == len(records)
    return old


def _use(conns, rng: random.Random, share: float) -> None:
    """A registrar marks the same certificates used in both warehouses."""
    keys = [k for (k,) in conns[0].execute("SELECT cert_key FROM wh.certificate ORDER BY cert_key")]
    used = rng.sample(keys, int(len(keys) * share))
    for c in conns:
        c.execute("UPDATE wh.certificate SET status = 'used', used_at = now() WHERE cert_key = ANY(%s)", (used,))
        c.commit()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_columnar_path_gives_the_same_answers_as_the_row_by_row_path(two_warehouses, seed):
    conns = two_warehouses
    rng = random.Random(seed)
    seen = []
    for kind, generate in (("GCS", generate_births), ("GBT", generate_deaths)):
        feed = generate(250, facility="01020", seed=seed, now=NOW, bad_ratio=0.15)
        records, ids = [e["record"] for e in feed], [e["id"] for e in feed]
        seen.append(_both(conns, records, ids, kind=kind, source="his", ref="01020"))
        seen.append(_both(conns, records, ids, kind=kind, source="his", ref="01020"))  # again: all re-sent
        _use(conns, rng, 0.2)
        fuzz = fuzzed(rng, records, records, kind)
        seen.append(_both(conns, fuzz, [f"f{i}" for i in range(len(fuzz))], kind=kind, source="his", ref="01020"))
        fuzz = fuzzed(rng, records, records, kind)
        seen.append(_both(conns, fuzz, None, kind=kind, source="bhxh", ref="window"))  # another source
        seen.append(
            _both(conns, fuzzed(rng, records[:50], records, kind), None, kind=kind, source="excel", ref="f.xlsx")
        )
    # the batches exercised every outcome and many rules
    assert all(sum(s[k] for s in seen) > 20 for k in ("stored", "updated", "unchanged", "refused"))
    rules = {r for s in seen for r in s["refusals_by_rule"]}
    assert {"ALREADY_USED", "DUPLICATE_IN_BATCH", "NOT_A_RECORD", "TOO_LONG", "REQUIRED", "DATE_INVALID"} <= rules
    assert len(rules) >= 25, sorted(rules)
