"""The time-series store port and its adapters (InfluxDB, embedded SQLite file)."""
