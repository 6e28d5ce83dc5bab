//! The multimodal LLM: building the request ([`prompt`]), calling an OpenAI-compatible server
//! ([`client`]), reading the answer ([`parse`]) and running beside each camera ([`advisor`]).
//! Every call goes through the API-key [`pool`], whose choices the [`scheduler`] makes; what
//! it is configured with is in [`keys`]. Knows nothing of cameras' sources or HTTP: it reads
//! frames' scenes and crops and writes into a `detection_result`.
//!
//! Layout, from the bottom: [`keys`] -> [`parse`] -> [`client`] -> [`scheduler`] -> [`pool`];
//! [`prompt`] -> [`advisor`].

pub mod advisor;
pub mod client;
pub mod keys;
pub mod parse;
pub mod pool;
pub mod prompt;
pub mod scheduler;
#[cfg(test)]
mod tests;
