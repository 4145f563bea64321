//! The closed operator set of gemma-graph.
//!
//! This crate knows nothing about models or files: it defines the element types values and
//! weights can have ([`DType`]), the Q8_0 block layout ([`BlockQ8_0`]) with its reference
//! quantizer, and the [`Op`] enum with shape/dtype inference and in-place rules.

#![forbid(unsafe_code)]

pub mod dtype;
pub mod op;
pub mod quant;
pub mod testing;
pub mod view;

pub use dtype::DType;
pub use op::{InputKind, MatMulSpec, Op, PoolKind, Rows, Shape, ShapeError, UnaryOp, WeightId};
pub use quant::{
    BlockIq3S, BlockIq4Nl, BlockIq4Xs, BlockQ2K, BlockQ3K, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ5_0,
    BlockQ5_1, BlockQ6K, BlockQ8_0, QK4_0, QK4_NL, QK8_0, QK_K,
};
pub use view::{ViewError, WeightView};
