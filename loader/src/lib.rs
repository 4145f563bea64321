//! Everything that turns files into a runnable model: the GGUF reader and writer, the
//! SentencePiece tokenizer, the Gemma graph builder and the checkpoint converter.

pub mod convert;
pub mod gemma;
pub mod gguf;
pub mod tokenizer;
