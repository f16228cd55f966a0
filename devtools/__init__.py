"""Developer tooling: embedded PostgreSQL, bring-up of the local stack, benchmarks."""
