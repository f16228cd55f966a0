"""Runnable stand-ins for the source systems (HIS now; BHXH, DHIS2, security server later).

One FastAPI app (`sandbox.app.create_app`) with a router per system.
Run: ``python -m sandbox --port 8765``; in tests: ``sandbox.server.run_in_thread()``.
"""
