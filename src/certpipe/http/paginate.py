"""Paginators: how to ask for the next page of a source's answer, as small objects.

`first()` gives the parameters of the first request; `next(body, items)` those of the following one, or None
when the answer was the last page. Shape checks (is there an items list?) live in the hook.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol


class Paginator(Protocol):
    def first(self) -> dict[str, Any]: ...

    def next(self, body: Any, items: list) -> dict[str, Any] | None: ...


@dataclass
class PageNumberPaginator:
    """?page=1,2,...; the last page is the one the source says has nothing after it (`has_more`), or the first
    short page, or the one at `pageCount`."""

    size: int
    page_param: str = "page"
    size_param: str | None = "page_size"
    start: int = 1
    has_more: Callable[[Any], bool | None] | None = None  # body -> True/False, or None when it does not say
    page: int = 0

    def first(self) -> dict[str, Any]:
        self.page = self.start
        return {self.page_param: self.page, **({self.size_param: self.size} if self.size_param else {})}

    def next(self, body: Any, items: list) -> dict[str, Any] | None:
        more = self.has_more(body) if self.has_more else None
        if not items or more is False or (more is None and len(items) < self.size):
            return None
        self.page += 1
        return {self.page_param: self.page, **({self.size_param: self.size} if self.size_param else {})}


@dataclass
class OffsetPaginator:
    """?offset=0&limit=N, then offset=N, 2N, ... until a short page."""

    limit: int
    offset_param: str = "offset"
    limit_param: str = "limit"
    offset: int = 0

    def first(self) -> dict[str, Any]:
        self.offset = 0
        return {self.offset_param: 0, self.limit_param: self.limit}

    def next(self, body: Any, items: list) -> dict[str, Any] | None:
        if len(items) < self.limit:
            return None
        self.offset += len(items)
        return {self.offset_param: self.offset, self.limit_param: self.limit}


@dataclass
class CursorPaginator:
    """The answer names the next page (`next_cursor`); the next request passes it back (`cursor`)."""

    cursor_param: str = "cursor"
    next_field: str = "next_cursor"

    def first(self) -> dict[str, Any]:
        return {}

    def next(self, body: Any, items: list) -> dict[str, Any] | None:
        cursor = body.get(self.next_field) if isinstance(body, dict) else None
        return {self.cursor_param: cursor} if cursor and items else None


@dataclass
class KeysetPaginator:
    """Updated-since watermark with a tie-breaker: each page asks for what changed after the last item seen
    (its timestamp and id), so records edited while we page are never skipped (offset paging would shift)."""

    size: int
    since: str | None
    since_param: str = "updated_since"
    after_param: str = "after_id"
    size_param: str = "page_size"
    stamp: Callable[[dict], str] = lambda item: item["updated_at"]
    ident: Callable[[dict], str] = lambda item: item["id"]

    def first(self) -> dict[str, Any]:
        return {self.size_param: self.size, **({self.since_param: self.since} if self.since else {})}

    def next(self, body: Any, items: list) -> dict[str, Any] | None:
        if len(items) < self.size:
            return None
        last = items[-1]
        return {self.size_param: self.size, self.since_param: self.stamp(last), self.after_param: self.ident(last)}
