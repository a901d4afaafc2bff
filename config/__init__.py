"""Settings, URL routing and the ASGI wiring; no runtime code (that lives in realtime/, infra/,
web/ and the apps)."""
