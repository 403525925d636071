"""Message schemas, validation, the Kafka consumer and producer, HTTP ingest, replay."""
