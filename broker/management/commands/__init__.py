"""``consume``, ``consumers``, ``redrive``, ``replay``: running and inspecting subscribers."""
