//! The closed operator set of gemma-graph.
//!
//! This crate knows nothing about models or files: it defines the element types values and
//! weights can have ([`DType`]), the Q8_0 block layout ([`BlockQ8_0`]) with its reference
//! quantizer, and (see [`op`]) the `Op` enum that every pass matches exhaustively.

pub mod dtype;
pub mod quant;

pub use dtype::DType;
pub use quant::{BlockQ8_0, QK8_0};
