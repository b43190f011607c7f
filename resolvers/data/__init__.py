"""Datasets and models: registration and lineage."""
