"""One client toolkit for every HTTP source (HIS, BHXH, DHIS2, the security server).

- `settings`: typed settings read from an Airflow connection (pydantic; one error names the connection and field).
- `retry`: the retry policy (exponential backoff with jitter on transient failures, honouring `Retry-After`).
- `auth`: authentication as small httpx.Auth objects (HTTP Basic, bearer token with renewal, DHIS2 ApiToken).
- `paginate`: paginators (page number, offset, cursor, updated-since keyset) as small objects.
- `hook`: `SourceHook`, the base of each system's hook: connection-driven, errors Airflow understands.
"""

from certpipe.http.hook import SourceHook
from certpipe.http.paginate import CursorPaginator, KeysetPaginator, OffsetPaginator, PageNumberPaginator, Paginator
from certpipe.http.retry import RetryPolicy
from certpipe.http.settings import HttpSettings

__all__ = [
    "CursorPaginator",
    "HttpSettings",
    "KeysetPaginator",
    "OffsetPaginator",
    "PageNumberPaginator",
    "Paginator",
    "RetryPolicy",
    "SourceHook",
]
