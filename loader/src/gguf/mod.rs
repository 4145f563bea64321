//! GGUF (versions 2 and 3): a bounds-checked, memory-mapped reader and a writer.

mod error;
mod file;
mod meta;
mod parse;
mod types;
mod writer;

pub use error::GgufError;
pub use file::Gguf;
pub use meta::{gguf_dims, MetaArray, MetaEntry, MetaValue, Span, TensorInfo};
pub use types::{GgmlType, ValueType};
pub use writer::{GgufWriter, Value};
