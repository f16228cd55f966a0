"""BHXH look-up (solution 2): a registrar's request for a birth certificate or death notice, on demand.

Trigger with the form: request type and the matching fields. `validate_request` refuses a malformed request with
a Vietnamese message before any call goes out (the message never repeats the values); `fetch_and_store` asks the
BHXH database (connection `bhxh_default`), lands the answer and runs it through the ingestion core (source `bhxh`),
recording the outcome as a batch (`wh.ingest_batch`, request type and the ID masked to its last 3 digits).
XCom carries counts and certificate numbers only. Limitation: the personal ID typed in the form is kept in the
DAG run's conf (Airflow metadata), visible to users who can see this DAG's runs.
"""

import datetime as dt

import pendulum
from airflow.sdk import Param, dag, task

from certpipe import lineage
from certpipe.dag_defaults import TIMEZONE, default_args, tags

REQUEST_TYPES = {
    "GCS_MOTHER_ID": "Giấy chứng sinh – theo số định danh cá nhân của người mẹ",
    "GCS_NUMBER": "Giấy chứng sinh – theo số giấy chứng sinh",
    "GCS_BOOK": "Giấy chứng sinh – theo số, ngày cấp và cơ sở cấp",
    "GBT_DECEASED_ID": "Giấy báo tử – theo số định danh cá nhân của người chết",
    "GBT_NUMBER": "Giấy báo tử – theo số giấy báo tử",
    "GBT_BOOK": "Giấy báo tử – theo số, ngày cấp và cơ sở cấp",
}
TEXT = ["null", "string"]  # loose on purpose: the first task validates and answers in Vietnamese


@dag(
    dag_id="bhxh_lookup",
    schedule=None,
    start_date=pendulum.datetime(2026, 11, 1, tz=TIMEZONE),
    catchup=False,
    default_args=default_args(retry_delay=dt.timedelta(seconds=30), retries=1),
    tags=tags("certificates", "bhxh", "solution-2", "registrar"),
    doc_md=__doc__,
    params={
        "request_type": Param(
            "GCS_MOTHER_ID",
            type="string",
            enum=list(REQUEST_TYPES),
            values_display=REQUEST_TYPES,
            title="Loại yêu cầu",
            description="Tra cứu giấy chứng sinh hay giấy báo tử, và theo thông tin nào.",
        ),
        "mother_id": Param(
            None,
            type=TEXT,
            title="Số định danh của người mẹ",
            description="Số định danh cá nhân (12 chữ số) của người mẹ, khi tra cứu giấy chứng sinh.",
        ),
        "deceased_id": Param(
            None,
            type=TEXT,
            title="Số định danh của người chết",
            description="Số định danh cá nhân (12 chữ số) của người chết, khi tra cứu giấy báo tử.",
        ),
        "certificate_number": Param(
            None,
            type=TEXT,
            title="Số giấy",
            description="Số giấy chứng sinh (XXXXX.GCS.<mã cơ sở>.YY) hoặc số giấy báo tử (XXXXX.GBT.<mã cơ sở>.YY).",
        ),
        "number": Param(
            None,
            type=TEXT,
            title="Số",
            description="Số thứ tự ghi trên giấy (SO / SO_BAOTU), khi tra cứu theo số, ngày và cơ sở.",
        ),
        "issued_on": Param(None, type=TEXT, title="Ngày cấp", description="Ngày cấp giấy, dd/mm/yyyy hoặc yyyymmdd."),
        "facility": Param(
            None, type=TEXT, title="Mã cơ sở cấp", description="Mã cơ sở khám, chữa bệnh cấp giấy (5 chữ số)."
        ),
    },
)
def bhxh_lookup():
    @task  # AirflowFailException: no retry for a malformed request
    def validate_request(**context) -> dict:
        from airflow.sdk.exceptions import AirflowFailException

        from certpipe.sources.bhxh.pull import InvalidRequest, parse_request

        try:
            kind, criteria = parse_request(dict(context["params"]))
        except InvalidRequest as e:
            raise AirflowFailException(f"Yêu cầu tra cứu không hợp lệ: {e}") from None
        return {"kind": kind, "by": sorted(criteria)}

    @task(inlets=[lineage.BHXH], outlets=lineage.certificates("GCS", "GBT"))
    def fetch_and_store(request: dict, **context) -> dict:
        from airflow.sdk import Variable

        from certpipe import warehouse
        from certpipe.sources.bhxh.pull import lookup

        client = Variable.get("bhxh_client", default={}, deserialize_json=True)
        dsn = warehouse.warehouse_dsn()
        out = lookup(dict(context["params"]), dsn, run_id=context["run_id"], client=client)
        lineage.emit(context, dsn, [out["batch_id"]])  # counts in the asset event (the other kind: zeros)
        return out

    fetch_and_store(validate_request())


bhxh_lookup()
