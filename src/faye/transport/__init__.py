"""ASGI transports around the Bayeux server: HTTP polling, JSON-P, WebSocket, EventSource."""
