//! Streaming mode (SPEC 6): processes share cameras and LLM work through a Kafka-protocol broker,
//! with Redis as the shared state. [`messages`] is the contract of each topic, [`offsets`] the
//! commit bookkeeping for concurrent consumers, [`kafka`] the broker client (topics, producer,
//! consumers), [`shared`] the Redis state, [`runner`] the consume loop every role shares and
//! [`roles`] what the tasks and llm-worker roles do with a message, [`aggregator`] and [`merge`]
//! the aggregator, [`detector`] the detector role's publisher and merged-result reader, [`node`]
//! this process's roles. Standalone mode needs none of it.

pub mod aggregator;
pub mod detector;
pub mod kafka;
pub mod merge;
pub mod messages;
pub mod node;
pub mod offsets;
pub mod roles;
pub mod runner;
pub mod shared;
