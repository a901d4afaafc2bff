"""The first subscriber: behaviour records and aggregates from the chat topics, latency
percentiles, and the staff dashboard (its page, REST summary and live socket)."""
