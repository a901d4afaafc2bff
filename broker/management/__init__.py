"""The broker's management commands."""
