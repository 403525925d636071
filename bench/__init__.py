"""Benchmarks and evaluation harnesses: ingest throughput and NAB anomaly-detection scoring."""
