"""The event contract: event types, schemas, topics, the frames clients receive, and
the names of the places events go (streams, groups, keys). Every package that produces or
consumes events depends on it; it depends on no other package of Parley."""
