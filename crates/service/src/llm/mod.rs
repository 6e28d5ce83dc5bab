//! The multimodal LLM: building the request ([`prompt`]) and reading the answer ([`parse`]).
//! The client, the key pool and the per-camera worker come with the rest of the LLM issue.

pub mod parse;
pub mod prompt;
#[cfg(test)]
mod tests;
