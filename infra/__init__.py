"""Infrastructure every process shares: the one Redis client factory (and the embedded
Redis, Sentinel URLs), the threads async code runs database work on, and per-event-loop state.
It depends on no app package."""
