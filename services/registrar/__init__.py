"""Registrar access to the certificate warehouse (issue #7): `python -m registrar --port 8090`."""

from registrar.app import create_app
from registrar.auth import Registrar, issue_token, verify_token

__all__ = ["Registrar", "create_app", "issue_token", "verify_token"]
