"""Detectors: pure scoring code with no I/O (no Kafka, HTTP or database)."""
