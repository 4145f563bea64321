//! A weight's bytes with their element type and shape: what the loader hands out for a
//! tensor of the file and what every kernel reads. Checked once, when made: the bytes are
//! whole blocks of the type, exactly `rows × cols` elements, and aligned for the type, so
//! typed access never fails later.

use crate::DType;

/// `rows × cols` elements of `dtype`, row-major, as stored (blocks for quantized types).
#[derive(Clone, Copy, Debug)]
pub struct WeightView<'a> {
    dtype: DType,
    rows: usize,
    cols: usize,
    bytes: &'a [u8],
}

/// Why bytes cannot be viewed as a weight.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ViewError {
    #[error("{rows} x {cols} {dtype} is not a whole number of blocks per row")]
    NotWholeBlocks { dtype: DType, rows: usize, cols: usize },
    #[error("{got} bytes for {rows} x {cols} {dtype}, expected {want}")]
    WrongSize {
        dtype: DType,
        rows: usize,
        cols: usize,
        got: usize,
        want: usize,
    },
    #[error("{dtype} data is not {align}-byte aligned")]
    Misaligned { dtype: DType, align: usize },
}

impl<'a> WeightView<'a> {
    pub fn new(dtype: DType, rows: usize, cols: usize, bytes: &'a [u8]) -> Result<WeightView<'a>, ViewError> {
        if !cols.is_multiple_of(dtype.block_len()) {
            return Err(ViewError::NotWholeBlocks { dtype, rows, cols });
        }
        let want = rows
            .checked_mul(cols)
            .and_then(|n| dtype.bytes_for(n))
            .ok_or(ViewError::NotWholeBlocks { dtype, rows, cols })?;
        if bytes.len() != want {
            return Err(ViewError::WrongSize {
                dtype,
                rows,
                cols,
                got: bytes.len(),
                want,
            });
        }
        if !(bytes.as_ptr() as usize).is_multiple_of(dtype.align()) {
            return Err(ViewError::Misaligned {
                dtype,
                align: dtype.align(),
            });
        }
        Ok(WeightView {
            dtype,
            rows,
            cols,
            bytes,
        })
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Rows `first..first + n`, a view of the same type and row length.
    ///
    /// # Panics
    /// When the rows are not all inside the view.
    pub fn rows_range(&self, first: usize, n: usize) -> WeightView<'a> {
        assert!(first + n <= self.rows, "rows {first}..{} of {}", first + n, self.rows);
        let row_bytes = self.row_bytes();
        WeightView {
            dtype: self.dtype,
            rows: n,
            cols: self.cols,
            bytes: &self.bytes[first * row_bytes..(first + n) * row_bytes],
        }
    }

    /// Bytes of one row.
    pub fn row_bytes(&self) -> usize {
        self.bytes.len() / self.rows.max(1)
    }

    /// The storage units (`f32`, `half::f16`, `BlockQ8_0`, …) of the whole weight.
    ///
    /// # Panics
    /// If `T` is not the storage unit of `dtype` (its size differs from one block's bytes).
    pub fn cast<T: bytemuck::Pod>(&self) -> &'a [T] {
        assert_eq!(
            std::mem::size_of::<T>(),
            self.dtype.block_bytes(),
            "{} is not stored as a {}-byte unit",
            self.dtype,
            std::mem::size_of::<T>()
        );
        // Size and alignment were checked when the view was made.
        bytemuck::cast_slice(self.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_size_blocks_and_alignment() {
        let words = [0u32; 32];
        let bytes: &[u8] = bytemuck::cast_slice(&words);
        assert!(WeightView::new(DType::F32, 4, 8, bytes).is_ok());
        assert!(matches!(
            WeightView::new(DType::F32, 4, 7, bytes),
            Err(ViewError::WrongSize { .. })
        ));
        assert!(matches!(
            WeightView::new(DType::Q8_0, 1, 33, bytes),
            Err(ViewError::NotWholeBlocks { .. })
        ));
        assert!(matches!(
            WeightView::new(DType::F32, 1, 1, &bytes[1..5]),
            Err(ViewError::Misaligned { .. })
        ));
        let v = WeightView::new(DType::Q8_0, 2, 32, &bytes[..68]).unwrap();
        assert_eq!(v.cast::<crate::BlockQ8_0>().len(), 2);
        assert_eq!(v.row_bytes(), 34);
    }
}
