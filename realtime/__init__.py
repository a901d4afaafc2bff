"""The WebSocket runtime: the one-step ASGI entry, the ASGI servers (daphne, uvicorn) and
Parley's adapters to them (frames written once, slow readers, graceful drain hooks), and the
Origin check. Apps' consumers run on it; it knows nothing of rooms or messages."""
