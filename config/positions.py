"""Where a message sits in Kafka: the type every layer that tracks replays shares.

A position means something only inside one log (see ``ingest.log_identity``):
the same (partition, offset) in a new log is a new message.
"""

Position = tuple[int, int]  # (partition, offset)
