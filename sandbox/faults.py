"""Fault injection shared by the stand-ins: a queue of faults per target, each used `count` times."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi.responses import JSONResponse


async def take(queue: list):
    """Use the first queued fault once (waiting its delay first); None when no fault is queued."""
    if not queue:
        return None
    fault = queue[0]
    fault.count -= 1
    if fault.count <= 0:
        queue.pop(0)
    if fault.delay_seconds:
        await asyncio.sleep(fault.delay_seconds)
    return fault


def error(status: int, err: str, detail: Any = "", headers: dict | None = None) -> JSONResponse:
    """A JSON error answer of the stand-ins."""
    return JSONResponse({"error": err, "detail": detail}, status_code=status, headers=headers)


def status_error(fault, target: str) -> JSONResponse | None:
    """The injected HTTP error of a fault (with Retry-After when set), or None for a non-error fault."""
    if not (fault.status and fault.status != 200):
        return None
    retry_after = getattr(fault, "retry_after", None)
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return error(fault.status, "injected_fault", f"sandbox fault ({target})", headers)
