"""Paginators as small objects: what the next request asks for, and when paging stops."""

from certpipe.http import CursorPaginator, KeysetPaginator, OffsetPaginator, PageNumberPaginator


def walk(paginator, pages):
    asked = [paginator.first()]
    for body, items in pages:
        nxt = paginator.next(body, items)
        if nxt is None:
            break
        asked.append(nxt)
    return asked


def test_page_numbers_stop_when_the_source_says_so_or_on_a_short_page():
    said = walk(
        PageNumberPaginator(2, has_more=lambda b: b["has_more"]),
        [({"has_more": True}, [1, 2]), ({"has_more": False}, [3, 4]), ({}, [5])],
    )
    assert said == [{"page": 1, "page_size": 2}, {"page": 2, "page_size": 2}]
    short = walk(PageNumberPaginator(2), [({}, [1, 2]), ({}, [3])])
    assert short == [{"page": 1, "page_size": 2}, {"page": 2, "page_size": 2}]


def test_offsets_advance_by_what_came():
    assert walk(OffsetPaginator(2), [({}, [1, 2]), ({}, [3, 4]), ({}, [])]) == [
        {"offset": 0, "limit": 2},
        {"offset": 2, "limit": 2},
        {"offset": 4, "limit": 2},
    ]


def test_cursor_is_passed_back_until_there_is_none():
    assert walk(CursorPaginator(), [({"next_cursor": "c1"}, [1]), ({"next_cursor": None}, [2])]) == [
        {},
        {"cursor": "c1"},
    ]


def test_keyset_continues_after_the_last_item_seen():
    items = [{"id": "a", "updated_at": "2026-12-01T10:00"}, {"id": "b", "updated_at": "2026-12-01T10:00"}]
    said = walk(KeysetPaginator(2, since="2026-12-01T00:00"), [({}, items), ({}, items[:1])])
    assert said == [
        {"page_size": 2, "updated_since": "2026-12-01T00:00"},
        {"page_size": 2, "updated_since": "2026-12-01T10:00", "after_id": "b"},
    ]
