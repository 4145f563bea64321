//! Everything that turns files into a runnable model: the GGUF reader and writer, the
//! SentencePiece tokenizer, the Gemma graph builder and the checkpoint converter.

// The only unsafe code: the two memory maps (allowed where they are, with their SAFETY).
#![deny(unsafe_code)]

pub mod convert;
pub mod gemma;
pub mod gguf;
pub mod tokenizer;
