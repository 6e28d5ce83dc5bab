//! The multimodal LLM: building the request ([`prompt`]), calling an OpenAI-compatible server
//! ([`client`]), reading the answer ([`parse`]) and running beside each camera ([`camera`]).
//! Every call goes through the API-key [`pool`], whose choices the [`scheduler`] makes.

pub mod camera;
pub mod client;
pub mod parse;
pub mod pool;
pub mod prompt;
pub mod scheduler;
#[cfg(test)]
mod tests;
