"""Registrar access to the certificate warehouse (issue #7): `python -m certpipe.registrar --port 8090`."""

from certpipe.registrar.app import create_app
from certpipe.registrar.auth import Registrar, issue_token, verify_token

__all__ = ["Registrar", "create_app", "issue_token", "verify_token"]
