"""Webhooks in the graph: endpoints, their deliveries and attempts."""
