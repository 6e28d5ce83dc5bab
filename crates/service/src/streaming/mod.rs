//! Streaming mode (SPEC 6): processes share cameras and LLM work through a Kafka-protocol broker,
//! with Redis as the shared state. [`messages`] is the contract of each topic, [`offsets`] the
//! commit bookkeeping for concurrent consumers, [`kafka`] the broker client (topics, producer,
//! consumers). Standalone mode needs none of it.

pub mod kafka;
pub mod messages;
pub mod offsets;
