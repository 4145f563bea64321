//! numpy's `.npy` format for float matrices: what `run --format npy` writes, what
//! `search --embeddings` and heads' weight files read.

/// Length of the header [`header`] writes: room for any row count, so a streamed file's
/// header can be rewritten in place at the end; a multiple of 64 as numpy recommends.
pub const HEADER_LEN: usize = 128;

/// An npy v1.0 header for a little-endian float32 C-order `(rows, cols)` matrix.
pub fn header(rows: usize, cols: usize) -> Vec<u8> {
    let dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    let mut h = b"\x93NUMPY\x01\x00".to_vec();
    h.extend_from_slice(&((HEADER_LEN - 10) as u16).to_le_bytes());
    h.extend_from_slice(dict.as_bytes());
    h.resize(HEADER_LEN - 1, b' ');
    h.push(b'\n');
    h
}

/// A little-endian float32 or float64 array in C order, 1-D (one row) or 2-D, as
/// `(rows, cols, values as f32)`; the error says what is wrong with the file.
pub fn parse(bytes: &[u8]) -> Result<(usize, usize, Vec<f32>), String> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err("not an .npy file".into());
    }
    let (hlen, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10usize),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(format!("npy format version {v} is not supported")),
    };
    let header = bytes
        .get(start..start.saturating_add(hlen))
        .ok_or("the header runs past the end of the file")?;
    let header: String = String::from_utf8_lossy(header)
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let width = if header.contains("'descr':'<f4'") {
        4
    } else if header.contains("'descr':'<f8'") {
        8
    } else {
        return Err("not a little-endian float32 or float64 array".into());
    };
    if !header.contains("'fortran_order':False") {
        return Err("a Fortran-order array; save it in C order".into());
    }
    let shape = header
        .split("'shape':(")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .ok_or("no shape in the header")?;
    let dims: Vec<usize> = shape
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse()
                .map_err(|_| format!("shape ({shape}) is not a tuple of integers"))
        })
        .collect::<Result<_, _>>()?;
    let (rows, cols) = match dims[..] {
        [n] => (1, n),
        [r, c] => (r, c),
        _ => return Err(format!("a {}-D array; expected a vector or a matrix", dims.len())),
    };
    let data = &bytes[start + hlen..];
    let want = rows.checked_mul(cols).and_then(|n| n.checked_mul(width));
    if want != Some(data.len()) {
        return Err(format!(
            "shape ({rows}, {cols}) needs {} bytes of data, the file has {}",
            want.map_or("more than addressable".to_string(), |w| w.to_string()),
            data.len()
        ));
    }
    let values = if width == 4 {
        data.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    } else {
        data.chunks_exact(8)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32)
            .collect()
    };
    Ok((rows, cols, values))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        let mut bytes = header(2, 3);
        assert_eq!(bytes.len(), HEADER_LEN);
        bytes.extend([1f32, 2., 3., 4., 5., 6.].iter().flat_map(|v| v.to_le_bytes()));
        assert_eq!(parse(&bytes).unwrap(), (2, 3, vec![1., 2., 3., 4., 5., 6.]));
        assert!(parse(&bytes[..bytes.len() - 1]).unwrap_err().contains("needs 24 bytes"));
        assert!(parse(b"not numpy").is_err());
        let mut fortran = bytes.clone();
        let at = fortran.windows(5).position(|w| w == b"False").unwrap();
        fortran[at..at + 5].copy_from_slice(b"True ");
        assert!(parse(&fortran).unwrap_err().contains("Fortran"));
    }
}
