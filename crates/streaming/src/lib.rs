//! Streaming mode (SPEC 6): processes share cameras and LLM work through a Kafka-protocol broker,
//! with Redis as the shared state. Standalone mode needs none of it.
//!
//! Layout, from the bottom:
//! - [`settings`]: roles, the topic file and what a node is started with.
//! - [`messages`]: the contract of each topic; [`merge`]: a detection's answers merged (pure).
//! - [`counters`]: the Kafka traffic and lag the service shows as metrics.
//! - [`offsets`]: commit bookkeeping for concurrent consumers.
//! - [`kafka`]: the broker client (topics, producer, consumers); [`shared`]: the Redis state;
//!   [`dependencies`]: whether both answer.
//! - [`runner`]: the consume loop every role shares; [`roles`]: what the tasks and llm-worker
//!   roles do with a message; [`aggregator`]: the aggregator role.
//! - [`publisher`]: the detector role's frame sink and merged-result reader, with the LLM
//!   cooldown per camera and the findings [`held`] on later results.
//! - [`ownership`]: which cameras an instance runs from its assigned partitions (pure);
//!   [`fleet`]: camera definitions written and owned through Kafka's group membership, fenced
//!   by Redis leases; [`relay`]: any client on any instance (the fleet's catalog, watchers in
//!   Redis, live messages of cameras watched elsewhere).
//! - [`node`]: this process's roles, started together.

pub mod aggregator;
pub mod counters;
pub mod dependencies;
pub mod fleet;
pub mod held;
pub mod kafka;
pub mod merge;
pub mod messages;
pub mod node;
pub mod offsets;
pub mod ownership;
pub mod publisher;
pub mod relay;
pub mod roles;
pub mod runner;
pub mod settings;
pub mod shared;
