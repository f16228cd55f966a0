"""Typed Variables: one model each, errors naming the Variable and the field, never a value."""

import pytest
from airflow.sdk.exceptions import AirflowFailException

from certpipe import config
from certpipe.errors import ConfigError


def test_hospitals_default_their_connection_and_keep_client_settings():
    got = config.hospitals('[{"facility": "01020", "timeout": 5}, {"facility": " 79034 ", "name": "BV"}]')
    assert got == [
        {"facility": "01020", "conn_id": "his_01020", "name": "01020", "timeout": 5.0},
        {"facility": "79034", "conn_id": "his_79034", "name": "BV"},
    ]


def test_a_bad_hospital_entry_names_the_variable_the_entry_and_the_field():
    with pytest.raises(ConfigError) as e:
        config.hospitals([{"facility": "1020"}, {"facility": "01020", "attempts": 0, "retries": 3}])
    text = str(e.value)
    assert "Variable 'his_hospitals'" in text and "0.facility" in text and "1.attempts" in text
    assert "1.retries" in text and "1020" not in text.replace("0.facility", "")
    assert isinstance(e.value, AirflowFailException)
    with pytest.raises(ConfigError, match="not valid JSON"):
        config.hospitals("[{facility: 01020}]")


def test_provinces_restore_lost_zeros_and_drop_repeats():
    assert config.provinces('["01", 1, "79", "96", "96"]') == ["01", "79", "96"]
    with pytest.raises(ConfigError, match=r"bhxh_provinces.*2"):
        config.provinces(["001"])


def test_dhis2_and_alerting_defaults_and_refusals():
    d = config.dhis2_mortality({"org_units": ["ImspTQPwCqd"], "client": {"timeout": 5}})
    assert (d.page_size, d.client.timeout, d.client.attempts) == (200, 5, None)
    with pytest.raises(ConfigError, match=r"org_units\.0"):
        config.dhis2_mortality({"org_units": ["not a uid"]})
    a = config.parse("alerting", {"email": "a@x.vn, b@x.vn", "refusal_rate": 0.5}, config.Alerting)
    assert a.email == ["a@x.vn", "b@x.vn"] and a.refusal_rate == 0.5
    with pytest.raises(ConfigError, match="refusal_rate"):
        config.parse("alerting", {"refusal_rate": 2}, config.Alerting)
