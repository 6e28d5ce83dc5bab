//! The multimodal LLM: building the request ([`prompt`]), calling an OpenAI-compatible server
//! ([`client`]) and reading the answer ([`parse`]). The key pool and the per-camera worker come
//! with the rest of the LLM issue.

pub mod client;
pub mod parse;
pub mod prompt;
#[cfg(test)]
mod tests;
