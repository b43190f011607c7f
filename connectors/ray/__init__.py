"""The RAY center: a Ray cluster behind its Jobs REST API."""
