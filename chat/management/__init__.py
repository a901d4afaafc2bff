"""The chat app's management commands."""
