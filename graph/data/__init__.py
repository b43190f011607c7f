"""Datasets and models in the graph, linked to the jobs that use and make them."""
