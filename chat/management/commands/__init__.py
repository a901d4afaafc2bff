"""``serve``, ``relay``, ``seed_demo`` and the other chat commands."""
