"""PEER centers: another aicn gateway, reached over its own GraphQL API."""
