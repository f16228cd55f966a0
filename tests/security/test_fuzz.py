"""Issue 17 §4: property-based fuzzing of every operation of the registrar API's OpenAPI document (schemathesis:
valid and invalid inputs) against the running API: never a 5xx, and every call leaves exactly one audit row (or,
without valid credentials, one anonymous count). Bounded: FUZZ_EXAMPLES examples per operation and mode
(< 2 min on the CI machine)."""

import os

import psycopg
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode

from registrar.__main__ import openapi_document
from tests.security.conftest import api  # noqa: F401 - fixture

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "20"))


def test_no_operation_answers_5xx_to_anything(secured, api):  # noqa: F811
    schema = schemathesis.openapi.from_dict(openapi_document())
    token = api.token()
    calls, failures, statuses = [0], [], []
    with psycopg.connect(secured.admin) as c:
        before = c.execute("SELECT count(*) FROM wh.audit_log").fetchone()[0]

    def fuzz(op, mode):
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=op.as_strategy(generation_mode=mode))
        def run(case):
            # the registrar's own token: a generated Authorization header would make it an anonymous call
            case.headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
            r = case.call(base_url=api.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
            calls[0] += 1
            statuses.append(r.status_code)
            if r.status_code >= 500:
                failures.append((op.method, op.path, mode.value, r.status_code))

        run()

    for result in schema.get_all_operations():
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            fuzz(result.ok(), mode)
    assert failures == []
    with psycopg.connect(secured.admin) as c:
        rows = c.execute("SELECT count(*) FROM wh.audit_log").fetchone()[0] - before
        server_errors = c.execute("SELECT count(*) FROM wh.audit_log WHERE status_code >= 500").fetchone()[0]
        anonymous = c.execute("SELECT coalesce(sum(calls), 0) FROM wh.audit_anonymous").fetchone()[0]
    from collections import Counter

    assert calls[0] >= 8 * EXAMPLES and server_errors == 0
    # every call is accounted for: an audit row, or (when schemathesis sent its own, invalid credentials) a count
    assert rows + anonymous == calls[0] and rows > 0.8 * calls[0], Counter(statuses)
