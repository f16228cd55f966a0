"""Shared pieces of the web faces: templates, cookies, CSRF tokens, rate limits, audit rows, error pages."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import deque
from pathlib import Path

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates

from registrar.audit import endpoint_of, write_audit
from registrar.auth import Registrar
from registrar.db import Db

HERE = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=HERE / "templates")


def _vn(moment) -> str:
    """A timestamp as Vietnam's local time, dd/mm/yyyy HH:MM."""
    from certpipe import clock

    return clock.as_vn(moment).astimezone(clock.VN).strftime("%d/%m/%Y %H:%M") if moment else ""


def _field(value, ftype: str = "text") -> str:
    """A record's value as read by people: official compact dates as dd/mm/yyyy [HH:MM]."""
    text = "" if value is None else str(value)
    if ftype in ("date", "datetime") and text.isdigit() and len(text) in (8, 12, 14):
        out = f"{text[6:8]}/{text[4:6]}/{text[:4]}"
        return out + (f" {text[8:10]}:{text[10:12]}" if len(text) > 8 else "")
    return text


templates.env.filters["vn"] = _vn
templates.env.filters["field"] = _field
PRE_CSRF = "certpipe_csrf"  # double-submit cookie of the login forms (no session yet)

# headers of every page of the web faces: nothing cached (personal data on a shared screen), no framing,
# scripts and styles only from the service itself
HEADERS = {
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
}
WEB_PREFIXES = ("/station", "/console", "/static/web")


def is_web(request: Request) -> bool:
    return request.url.path.startswith(WEB_PREFIXES)


def sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def csrf_for(secret: str, session: str) -> str:
    """The CSRF token bound to one session cookie (HMAC with the service's key): forms carry it, POSTs check it."""
    return hmac.new(secret.encode(), b"csrf|" + session.encode(), hashlib.sha256).hexdigest()


def csrf_ok(secret: str, session: str | None, sent: str | None) -> bool:
    return bool(session and sent) and hmac.compare_digest(csrf_for(secret, session or ""), sent or "")


def pre_csrf(request: Request) -> str:
    """The login form's token: the double-submit cookie's value (new when absent)."""
    return request.cookies.get(PRE_CSRF) or secrets.token_urlsafe(24)


def set_cookie(request: Request, response: Response, name: str, value: str, max_age: int, path: str) -> None:
    # Secure where served over TLS (directly or behind a proxy that says so); never readable by scripts
    tls = request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"
    response.set_cookie(name, value, max_age=max_age, path=path, httponly=True, secure=tls, samesite="strict")


def page(request: Request, name: str, status_code: int = 200, **ctx) -> HTMLResponse:
    return templates.TemplateResponse(request, name, ctx, status_code=status_code)


ERRORS = {
    400: ("Yêu cầu không hợp lệ", "Thông tin gửi lên không hợp lệ. Vui lòng quay lại và nhập lại."),
    401: ("Cần đăng nhập", "Phiên làm việc đã hết hạn hoặc chưa đăng nhập. Vui lòng đăng nhập lại."),
    403: (
        "Không được phép",
        "Yêu cầu bị từ chối: biểu mẫu đã hết hạn hoặc không thuộc phạm vi của tài khoản này. "
        "Vui lòng tải lại trang và thử lại.",
    ),
    404: ("Không tìm thấy trang", "Địa chỉ này không tồn tại hoặc không thuộc phạm vi quản lý của cơ quan."),
    405: ("Không được phép", "Thao tác này không được hỗ trợ tại địa chỉ này."),
    409: ("Xung đột", "Trạng thái của giấy đã thay đổi. Vui lòng tải lại trang."),
    422: ("Dữ liệu không hợp lệ", "Thông tin nhập chưa đúng định dạng. Vui lòng kiểm tra và nhập lại."),
    429: (
        "Quá nhiều lượt tra cứu",
        "Đã có quá nhiều lượt tra cứu trong thời gian ngắn. Vui lòng chờ vài phút rồi thử lại.",
    ),
    500: ("Lỗi hệ thống", "Đã xảy ra lỗi hệ thống, vui lòng thử lại sau."),
}


def error_page(request: Request, status_code: int, detail: str | None = None) -> HTMLResponse:
    title, text = ERRORS.get(status_code, ERRORS[500])
    home = "/console" if request.url.path.startswith("/console") else "/station"
    return page(request, "error.html", status_code, title=title, text=detail or text, home=home, code=status_code)


class RateLimiter:
    """Sliding-window limits in this process: at most `n` hits per `seconds` for each key."""

    def __init__(self, n: int, seconds: float):
        self.n, self.seconds = n, seconds
        self._hits: dict[str, deque] = {}
        self._lock = threading.Lock()

    def hit(self, key: str) -> bool:
        """Count one hit; False when the key is over its limit (the refused hit is not counted)."""
        now = time.monotonic()
        with self._lock:
            q = self._hits.setdefault(key, deque())
            while q and q[0] <= now - self.seconds:
                q.popleft()
            if len(q) >= self.n:
                return False
            q.append(now)
            if len(self._hits) > 100_000:  # forget idle keys
                for k in [k for k, v in self._hits.items() if not v or v[-1] <= now - self.seconds]:
                    del self._hits[k]
            return True


def parse_limit(text: str) -> tuple[int, float]:
    """'30/minute', '5/10s', '100/hour' -> (n, seconds)."""
    n, _, per = text.partition("/")
    units = {"s": 1, "second": 1, "m": 60, "minute": 60, "h": 3600, "hour": 3600}
    digits = "".join(ch for ch in per if ch.isdigit())
    unit = per[len(digits) :].strip() or "s"
    return int(n), float(digits or 1) * units[unit]


def _write(db: Db, conn, request: Request, status_code: int) -> None:
    if request.state.audit.get("registrar") is not None:
        write_audit(db, conn, request, status_code)
    else:  # anonymous: counted per day, endpoint and status, never stored row by row (migration 0019)
        conn.execute("SELECT wh.audit_count_anonymous(%s, %s)", (endpoint_of(request), status_code))


def audit(db: Db, request: Request, reg: Registrar | None, status_code: int, conn=None, **fields) -> None:
    """One wh.audit_log row (registrar.audit.write_audit) for a page of the web faces; in `conn`'s transaction
    when given, else on its own connection."""
    a = request.state.audit
    a.update(fields)
    if reg is not None:
        a["registrar"] = reg
    if conn is not None:
        _write(db, conn, request, status_code)
    else:
        with db.connect() as c:
            _write(db, c, request, status_code)
            c.commit()
    a["done"] = True
