"""Fuzzing the inbox with mutated real workbooks: truncated and damaged zips, wrong cell types, huge or missing
dimensions, stray far cells, odd Unicode, long and odd names. Whatever arrives: no worker crash, every file
ends in results/ with an answer (processed/ or quarantine/ with a reason), nothing stays in processing/, and
what the warehouse stores is what the clerk typed."""

from __future__ import annotations

import re
import tempfile
import zipfile
from functools import cache
from io import BytesIO
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from certpipe.sources.excel import inbox as excel
from certpipe.sources.excel import storage
from tests.sources.excel.conftest import KNOWN, births, canonical, his_export, template_file

GCS_PART = "xl/worksheets/sheet3.xml"  # the template: instructions, lists, births, deaths


@cache
def bases() -> dict[str, tuple[bytes, list[dict]]]:
    tmp = Path(tempfile.mkdtemp(prefix="certpipe-fuzz-"))
    recs = list({r["MA_GCS"]: r for r in births(6, seed=91, bad_ratio=0)[0]}.values())
    his = list({r["MA_GCS"]: r for r in births(5, seed=92, bad_ratio=0)[0]}.values())
    his_export(tmp / "his.xlsx", [("Sinh", "GCS", his)], extra_sheet=False)
    return {
        "template": (template_file(tmp / "t.xlsx", recs).read_bytes(), recs),
        "his": ((tmp / "his.xlsx").read_bytes(), his),
    }


def _retype(nth: int, new_type: str, value: str):
    """An edit that gives the nth cell of the sheets another type and value."""
    seen = 0

    def one(m) -> bytes:
        nonlocal seen
        seen += 1
        return (
            b"<c %s %s><v>%s</v></c>" % (m.group(1), new_type.encode(), value.encode()) if seen == nth else m.group(0)
        )

    return lambda body: re.sub(rb'<c (r="[A-Z]+\d+")[^>]*?(?:/>|>.*?</c>)', one, body)


def _retext(nth: int, text: bytes):
    """An edit that puts `text` inside the nth string of a part."""
    seen = 0

    def one(m) -> bytes:
        nonlocal seen
        seen += 1
        return m.group(1) + m.group(2)[:2] + text + m.group(2)[2:] + b"</t>" if seen == nth else m.group(0)

    return lambda body: re.sub(rb"(<t(?: [^>]*)?>)([^<]*)</t>", one, body)


def _edit_parts(data: bytes, edit, parts=("xl/worksheets/sheet",)) -> bytes:
    out = BytesIO()
    with zipfile.ZipFile(BytesIO(data)) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            body = zin.read(info.filename)
            if info.filename.startswith(parts):
                body = edit(body)
            zout.writestr(info.filename, body)
    return out.getvalue()


ODD_TEXT = st.lists(
    st.sampled_from(
        [*"aăâđêôơưẠỹ0123456789 .,-/<>&", "\u200b", "\u202e", "\u0301", "😀", "\ufeff", "\u00a0", "_x0000_", "_x0007_"]
    ),
    max_size=30,
).map("".join)
CELL_TYPES = st.sampled_from(['t="n"', 't="s"', 't="b"', 't="e"', 't="d"', 't="str"', ""])


@st.composite
def mutations(draw):
    """(name, bytes, structural): structural mutations leave every value as typed."""
    base = draw(st.sampled_from(["template", "his"]))
    data, _ = bases()[base]
    kind = draw(
        st.sampled_from(["truncate", "flip", "cell_type", "dimension", "stray", "unicode", "rows_without_refs", "none"])
    )
    structural = kind in ("dimension", "stray", "rows_without_refs", "none")
    if kind == "truncate":
        data = data[: draw(st.integers(0, len(data) - 1))]
    elif kind == "flip":
        at = draw(st.integers(0, len(data) - 16))
        data = data[:at] + draw(st.binary(min_size=1, max_size=16)) + data[at + 16 :]
    elif kind == "cell_type":
        new_type, value = draw(CELL_TYPES), draw(st.sampled_from(["", "x", "-1", "1e400", "99999999", "3.5", "NaN"]))
        data = _edit_parts(data, _retype(draw(st.integers(0, 40)), new_type, value))
    elif kind == "dimension":
        ref = draw(st.sampled_from(["", "A1:XFD1048576", "A1", "ZZZZ1:A0", "B2:A1"]))
        data = _edit_parts(
            data,
            lambda b: re.sub(rb"<dimension [^>]*/>", f'<dimension ref="{ref}"/>'.encode() if ref else b"", b),
        )
    elif kind == "stray":
        row, col = draw(st.integers(200, 1_048_576)), draw(st.sampled_from(["AZ", "XFD", "ZZ", "A"]))
        cell = f'<row r="{row}"><c r="{col}{row}" s="1"/></row>'.encode()
        data = _edit_parts(
            data, lambda b: re.sub(rb"<dimension [^>]*/>", b"", b).replace(b"</sheetData>", cell + b"</sheetData>")
        )
    elif kind == "unicode":  # odd text inside a value of a record (inline or shared strings)
        text = draw(ODD_TEXT).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").encode()
        nth = draw(st.integers(40, 200))
        data = _edit_parts(data, _retext(nth, text), ("xl/worksheets/sheet", "xl/sharedStrings"))
        structural = False
    elif kind == "rows_without_refs":
        data = _edit_parts(data, lambda b: re.sub(rb'(<(?:row|c) [^>]*?) r="[A-Z]*\d+"', rb"\1", b))
    name = draw(
        st.one_of(
            st.just("thang-11.xlsx"),
            st.text(
                alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="/\0"),
                min_size=1,
                max_size=90,
            ).map(lambda s: s + ".xlsx"),
            st.just("Giấy chứng sinh " + "ệ" * 70 + ".xlsx"),
        ).filter(lambda n: len(n.encode()) <= 250 and not storage.is_junk(n) and not storage.is_partial(n))
    )
    return name, data, structural, base


@settings(
    max_examples=18,
    database=None,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(drops=st.lists(mutations(), min_size=1, max_size=3))
def test_mutated_workbooks_always_get_an_answer(wh, warehouse_dsn, drops):
    from airflow.sdk import ObjectStoragePath

    with tempfile.TemporaryDirectory(prefix="certpipe-fuzz-bucket-") as tmp:
        root = Path(tmp)
        for i, (name, data, _, _) in enumerate(drops):
            folder = root / "inbox" / KNOWN[i % len(KNOWN)]
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            target = folder / name
            if target.exists():  # the same name drawn twice: a second folder level keeps both
                target = folder / f"lan-{i}" / name
                target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        bucket = ObjectStoragePath(root.as_uri() + "/")
        ids = excel.scan(bucket, warehouse_dsn, min_age=0, facilities=KNOWN)["file_ids"]
        for fid in ids:
            out = excel.process(bucket, warehouse_dsn, fid)  # never raises
            assert out["status"] in ("done", "quarantined")
            assert out["status"] == "done" or out["reason"], out

        def listed(area):
            base = root / area
            return [p for p in base.rglob("*") if p.is_file()] if base.exists() else []

        assert listed("inbox") == [] and listed("processing") == []
        assert len(listed("results")) == len(drops)
        assert len(listed("processed")) + len(listed("quarantine")) == len(drops)
    assert (
        wh.execute("SELECT count(*) FROM wh.excel_file WHERE status NOT IN ('done', 'quarantined')").fetchone()[0] == 0
    )
    assert wh.execute("SELECT count(*) FROM wh.excel_pending").fetchone()[0] == 0
    # values: a structural mutation changes no value; whatever was stored is what the clerk typed
    for _, _, structural, base in drops:
        if not structural:
            continue
        for rec, reasons in canonical(bases()[base][1], "GCS"):
            if reasons:
                continue
            row = wh.execute("SELECT record FROM wh.certificate WHERE cert_key = %s", (rec["MA_GCS"],)).fetchone()
            if row is None:  # not stored: refused with a reason (a rule of Vietnam), never lost
                why = wh.execute(
                    "SELECT reasons FROM wh.batch_record WHERE cert_key = %s AND outcome = 'refused' LIMIT 1",
                    (rec["MA_GCS"],),
                ).fetchone()
                assert why is not None and why[0]
                continue
            assert {k: v for k, v in row[0].items() if v is not None} == {k: v for k, v in rec.items() if v is not None}
