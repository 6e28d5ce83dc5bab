//! The multimodal LLM: reading its answers ([`parse`]). The request, the client and the
//! per-camera worker come with the rest of the LLM issue.

pub mod parse;
