"""Building blocks every domain of the graph uses: the request context, Relay nodes and connections, scalars, payloads, error shaping, scopes."""
