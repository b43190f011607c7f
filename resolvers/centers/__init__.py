"""Centers: the registry of connectors, calls under a deadline, health and the background monitor."""
