"""Persisted operations: automatic persisted queries and the safelist."""
