"""`./dev up`'s logins for the web faces: a station credential that works (and is kept across runs while valid) and
registrar / supervisor tokens for the sandbox's Hà Nội data, in 0600 files."""

import psycopg
from psycopg.rows import dict_row

from registrar.auth import verify_token
from registrar.web import stations


def test_web_logins(warehouse_dsn, tmp_path, monkeypatch):
    from devtools import stack

    monkeypatch.setattr(stack, "STATE", tmp_path)
    credential, token, supervisor = stack.web_logins(warehouse_dsn)
    with psycopg.connect(warehouse_dsn, row_factory=dict_row) as c:
        st = stations.authenticate(c, credential)
    assert st is not None and st.facility_code == "01020"
    secret = (tmp_path / "registrar_jwt_secret").read_text().strip()
    assert verify_token(token, secret).province == "01"
    assert verify_token(supervisor, secret).sub == "hn.lanhdao"
    assert stack.web_logins(warehouse_dsn)[0] == credential  # kept while valid
    stations.revoke(warehouse_dsn, credential.split(".")[0])
    assert stack.web_logins(warehouse_dsn)[0] != credential  # a new one once revoked
    for name in ("station_credential", "registrar_token", "supervisor_token"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o600
