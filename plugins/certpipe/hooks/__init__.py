"""HttpHook-based clients for the source systems."""
