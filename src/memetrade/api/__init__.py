"""The HTTP and WebSocket API: thin parsing, validation and encoding over the services."""
