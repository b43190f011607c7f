"""The LOCAL center: real processes on the gateway's own host."""
