"""Fixtures of the data-quality tests: the HIS pull environment of tests/dags (sandbox hospitals, warehouse)."""

from tests.dags.conftest import his_env  # noqa: F401 - re-exported fixture
