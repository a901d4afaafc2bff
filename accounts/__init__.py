"""Users' credentials beyond Django's auth: API tokens, the credential a socket was opened
with, account deletion and export, avatars and per-user preferences."""
