"""Excel inbox (solution 3): the hospital template, a streamed workbook reader and the result workbook.

- `template`: the .xlsx template generated from include/schemas/ (fields, required columns, code lists).
- `reader`: safety checks (file type, size, decompression bomb), header detection and column mapping,
  streamed rows (python-calamine; openpyxl read-only for sheets too big to hold in memory).
- `result`: the result workbook returned to the hospital (status per row, refused cells, summary).

The ledger, storage and the ingestion of files live in `certpipe.sources.excel.inbox`.
"""

from __future__ import annotations

import json
from functools import cache

from certpipe.core.schema import schemas_dir


@cache
def config() -> dict:
    """include/schemas/excel/template.json"""
    return json.loads((schemas_dir() / "excel" / "template.json").read_text("utf-8"))
