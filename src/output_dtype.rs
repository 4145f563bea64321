//! Output dtypes: embeddings stored or sent smaller, with sentence-transformers'
//! `quantize_embeddings` semantics (the one rule `run --output-dtype`, the server's `dtype`
//! field and Python's `encode(precision=...)` all call).
//!
//! - `float32`: the vector as computed. `float16`: rounded to nearest even (numpy's
//!   `astype(np.float16)`).
//! - `uint8`: per column `u = (x − start) / step` in f32, `step = (max − min) / 255` over the
//!   calibration embeddings' column; `u` truncated toward zero and clamped to 0..=255 (a value
//!   outside the calibration range saturates; NaN, from a constant column, is 0).
//!   `int8`: that `u` minus 128. Byte for byte what sentence-transformers 6.3 returns
//!   (`../shared/golden/st_api`, `tests/output_dtype_golden.rs`).
//! - `ubinary`: one bit per value, `x > 0`, eight to a byte, the first value in the high bit
//!   (numpy's `packbits`); `binary`: that byte minus 128 as int8. A row whose length is not a
//!   multiple of 8 ends in a byte padded with zeros; sentence-transformers packs its whole
//!   matrix as one bit string there (rows would share bytes), so we pack each row on its own.

use crate::error::Error;

/// What each value of an output vector is stored as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OutputDtype {
    Float32,
    Float16,
    Int8,
    Uint8,
    Binary,
    Ubinary,
}

impl OutputDtype {
    /// Every dtype, in the order docs and errors list them.
    pub const ALL: [OutputDtype; 6] = [
        OutputDtype::Float32,
        OutputDtype::Float16,
        OutputDtype::Int8,
        OutputDtype::Uint8,
        OutputDtype::Binary,
        OutputDtype::Ubinary,
    ];

    /// The name sentence-transformers (and numpy) give it.
    pub fn name(self) -> &'static str {
        match self {
            OutputDtype::Float32 => "float32",
            OutputDtype::Float16 => "float16",
            OutputDtype::Int8 => "int8",
            OutputDtype::Uint8 => "uint8",
            OutputDtype::Binary => "binary",
            OutputDtype::Ubinary => "ubinary",
        }
    }

    /// `int8` and `uint8` map each column through a range from calibration embeddings.
    pub fn needs_ranges(self) -> bool {
        matches!(self, OutputDtype::Int8 | OutputDtype::Uint8)
    }

    /// Stored elements per row of `dim` values (bit-packed types hold 8 per byte).
    pub fn row_len(self, dim: usize) -> usize {
        match self {
            OutputDtype::Binary | OutputDtype::Ubinary => dim.div_ceil(8),
            _ => dim,
        }
    }

    /// Bytes per stored element.
    pub fn element_bytes(self) -> usize {
        match self {
            OutputDtype::Float32 => 4,
            OutputDtype::Float16 => 2,
            _ => 1,
        }
    }

    /// numpy's dtype string for `.npy` headers (`binary` is stored as int8, `ubinary` as
    /// uint8, as sentence-transformers returns them).
    pub fn numpy_descr(self) -> &'static str {
        match self {
            OutputDtype::Float32 => "<f4",
            OutputDtype::Float16 => "<f2",
            OutputDtype::Int8 | OutputDtype::Binary => "|i1",
            OutputDtype::Uint8 | OutputDtype::Ubinary => "|u1",
        }
    }

    /// Whether the stored elements are signed bytes (read them as `i8`).
    pub fn signed_bytes(self) -> bool {
        matches!(self, OutputDtype::Int8 | OutputDtype::Binary)
    }
}

impl std::fmt::Display for OutputDtype {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for OutputDtype {
    type Err = Error;

    fn from_str(s: &str) -> Result<OutputDtype, Error> {
        OutputDtype::ALL.into_iter().find(|d| d.name() == s).ok_or_else(|| {
            let known: Vec<_> = OutputDtype::ALL.iter().map(|d| d.name()).collect();
            Error::InvalidOption(format!("unknown output dtype {s:?}; known: {}", known.join(", ")))
        })
    }
}

/// Per column, where the 256 buckets of `int8`/`uint8` start and how wide they are.
#[derive(Clone, Debug, PartialEq)]
pub struct Ranges {
    starts: Vec<f32>,
    steps: Vec<f32>,
}

impl Ranges {
    /// The columns' minimum and maximum over calibration embeddings (`rows × dim`,
    /// row-major), as sentence-transformers' `calibration_embeddings` gives them.
    pub fn from_calibration(values: &[f32], dim: usize) -> Result<Ranges, Error> {
        if dim == 0 || values.is_empty() || !values.len().is_multiple_of(dim) {
            return Err(Error::InvalidOption(format!(
                "calibration embeddings: {} values are not whole rows of {dim}",
                values.len()
            )));
        }
        if let Some(i) = values.iter().position(|x| !x.is_finite()) {
            return Err(Error::InvalidOption(format!(
                "calibration embeddings: row {}, column {} is not a finite number",
                i / dim,
                i % dim
            )));
        }
        let mut min = values[..dim].to_vec();
        let mut max = min.clone();
        for row in values.chunks_exact(dim).skip(1) {
            for ((lo, hi), &x) in min.iter_mut().zip(&mut max).zip(row) {
                *lo = lo.min(x);
                *hi = hi.max(x);
            }
        }
        let steps = min.iter().zip(&max).map(|(lo, hi)| (hi - lo) / 255.0).collect();
        Ok(Ranges { starts: min, steps })
    }

    /// Columns these ranges are for.
    pub fn dim(&self) -> usize {
        self.starts.len()
    }

    /// Bucket of `x` in column `j`: `(x − start) / step`, truncated, clamped to 0..=255.
    fn bucket(&self, j: usize, x: f32) -> u8 {
        // `as` truncates toward zero, saturates, and maps NaN to 0 — the spec above.
        ((x - self.starts[j]) / self.steps[j]) as u8
    }
}

/// One row quantized: bytes appended to `out` (`row_len` elements of `element_bytes`,
/// little-endian). `ranges` is required for `int8`/`uint8` and must have the row's length.
pub fn quantize_row(row: &[f32], dtype: OutputDtype, ranges: Option<&Ranges>, out: &mut Vec<u8>) -> Result<(), Error> {
    match dtype {
        OutputDtype::Float32 => out.extend(row.iter().flat_map(|x| x.to_le_bytes())),
        OutputDtype::Float16 => out.extend(row.iter().flat_map(|&x| half::f16::from_f32(x).to_le_bytes())),
        OutputDtype::Int8 | OutputDtype::Uint8 => {
            let r = ranges.ok_or_else(|| {
                Error::InvalidOption(format!(
                    "output dtype {dtype} needs ranges from calibration embeddings (sentence-transformers' \
                     calibration_embeddings); none were given"
                ))
            })?;
            if r.dim() != row.len() {
                return Err(Error::InvalidOption(format!(
                    "the calibration embeddings have {} columns; the output has {} (make them with the \
                     same dimension)",
                    r.dim(),
                    row.len()
                )));
            }
            let flip = if dtype == OutputDtype::Int8 { 0x80 } else { 0 };
            // int8 = u − 128, which in two's complement is u with its top bit flipped.
            out.extend(row.iter().enumerate().map(|(j, &x)| r.bucket(j, x) ^ flip));
        }
        OutputDtype::Binary | OutputDtype::Ubinary => {
            let flip = if dtype == OutputDtype::Binary { 0x80 } else { 0 };
            out.extend(row.chunks(8).map(|bits| {
                let byte = bits
                    .iter()
                    .enumerate()
                    .fold(0u8, |b, (i, &x)| b | (u8::from(x > 0.0) << (7 - i)));
                byte ^ flip
            }));
        }
    }
    Ok(())
}

/// A stored row as numbers, for text formats (JSON, CSV): what every surface writes.
#[derive(Clone, Debug, PartialEq)]
pub enum StoredValues {
    /// `float32` and `float16`, each value as its f32.
    Floats(Vec<f32>),
    /// The byte dtypes, as integers (signed for `int8`/`binary`).
    Ints(Vec<i16>),
}

impl StoredValues {
    /// Every value as f64 (exact for both kinds).
    pub fn to_f64(&self) -> Vec<f64> {
        match self {
            StoredValues::Floats(v) => v.iter().map(|&x| x as f64).collect(),
            StoredValues::Ints(v) => v.iter().map(|&x| x as f64).collect(),
        }
    }
}

/// Stored bytes ([`quantize_row`]'s) as numbers.
pub fn stored_values(bytes: &[u8], dtype: OutputDtype) -> StoredValues {
    match dtype {
        OutputDtype::Float32 => StoredValues::Floats(
            bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
        ),
        OutputDtype::Float16 => StoredValues::Floats(
            bytes
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
        ),
        d if d.signed_bytes() => StoredValues::Ints(bytes.iter().map(|&b| i16::from(b as i8)).collect()),
        _ => StoredValues::Ints(bytes.iter().map(|&b| i16::from(b)).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uint8_buckets_truncate_and_saturate_and_int8_is_uint8_minus_128() {
        // Column 0 spans 0..255 (step 1), column 1 is constant (step 0).
        let r = Ranges::from_calibration(&[0.0, 5.0, 255.0, 5.0], 2).unwrap();
        let mut out = Vec::new();
        for (x, want) in [
            (-3.0, 0u8),
            (0.0, 0),
            (1.9, 1),
            (254.99, 254),
            (255.0, 255),
            (900.0, 255),
        ] {
            out.clear();
            quantize_row(&[x, 5.0], OutputDtype::Uint8, Some(&r), &mut out).unwrap();
            assert_eq!(out, [want, 0], "x = {x}");
            out.clear();
            quantize_row(&[x, 5.0], OutputDtype::Int8, Some(&r), &mut out).unwrap();
            assert_eq!(out, [(want as i16 - 128) as i8 as u8, 0x80], "x = {x}");
        }
    }

    #[test]
    fn binary_packs_each_row_high_bit_first_with_zero_padding() {
        let row = [1.0, -1.0, 0.0, 2.0, 0.5, -0.5, 3.0, 4.0, 1.0, 0.0];
        let mut out = Vec::new();
        quantize_row(&row, OutputDtype::Ubinary, None, &mut out).unwrap();
        assert_eq!(out, [0b1001_1011, 0b1000_0000]);
        out.clear();
        quantize_row(&row, OutputDtype::Binary, None, &mut out).unwrap();
        assert_eq!(out.iter().map(|&b| b as i8).collect::<Vec<_>>(), [27i8, 0]);
        assert_eq!(OutputDtype::Binary.row_len(10), 2);
    }

    #[test]
    fn ranged_dtypes_name_what_is_missing_or_mismatched() {
        let e = quantize_row(&[1.0], OutputDtype::Int8, None, &mut Vec::new()).unwrap_err();
        assert!(e.to_string().contains("calibration"), "{e}");
        let r = Ranges::from_calibration(&[0.0, 1.0], 2).unwrap();
        let e = quantize_row(&[1.0], OutputDtype::Uint8, Some(&r), &mut Vec::new()).unwrap_err();
        assert!(e.to_string().contains("2 columns"), "{e}");
        let e = Ranges::from_calibration(&[0.0, f32::NAN], 2).unwrap_err();
        assert!(e.to_string().contains("row 0, column 1"), "{e}");
        let e = "int4".parse::<OutputDtype>().unwrap_err();
        assert!(
            e.to_string().contains("float32, float16, int8, uint8, binary, ubinary"),
            "{e}"
        );
    }

    #[test]
    fn float16_rounds_to_nearest_even() {
        let mut out = Vec::new();
        // 1 + 2^-11 is halfway between two f16 values: ties to the even one (1.0).
        quantize_row(&[1.0 + 1.0 / 2048.0, 65520.0], OutputDtype::Float16, None, &mut out).unwrap();
        assert_eq!(
            stored_values(&out, OutputDtype::Float16),
            StoredValues::Floats(vec![1.0, f32::INFINITY])
        );
    }
}
