//! Tests of Runnel's Kafka listener with unmodified Kafka clients live in `tests/`.
