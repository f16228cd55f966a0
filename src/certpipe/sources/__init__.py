"""Source adapters: extract from a source, land raw, hand to the ingestion core, feed back."""
