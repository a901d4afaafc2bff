"""``token`` and ``user``: managing API tokens and users from the shell."""
