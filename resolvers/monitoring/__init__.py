"""Monitoring: the Prometheus exposition of the gateway (counters plus values read at scrape time)."""
