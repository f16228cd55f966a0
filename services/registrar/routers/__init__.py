"""The API's routers: look-up, registration (marking used and undoing it), worklists."""
