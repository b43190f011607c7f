"""Webhooks: endpoints an account registers, the outbox of signed deliveries, and the deliverer."""
