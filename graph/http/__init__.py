"""The HTTP face: the ASGI app, GraphQL over HTTP and WebSocket, downloads, log hygiene."""
