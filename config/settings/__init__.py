"""Settings: ``base`` plus small overlays for development, tests and production."""
