"""Durable subscribers on Redis Streams: the subscriber registry, consumer groups, workers with
a ledger (exactly-once effects), dead letters, retention, loss detection and stats. It knows
events only through ``contract``, never chat's models."""
