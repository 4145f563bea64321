//! numpy's `.npy` format for float matrices: what `run --format npy` writes, what
//! `search --embeddings` and heads' weight files read.

/// Length of the header [`header`] writes: room for any row count, so a streamed file's
/// header can be rewritten in place at the end; a multiple of 64 as numpy recommends.
pub const HEADER_LEN: usize = 128;

/// An npy v1.0 header for a little-endian float32 C-order `(rows, cols)` matrix.
pub fn header(rows: usize, cols: usize) -> Vec<u8> {
    header_of("<f4", rows, cols)
}

/// An npy v1.0 header for a C-order `(rows, cols)` matrix of numpy dtype `descr` (`<f4`,
/// `<f2`, `|i1`, `|u1`: [`crate::OutputDtype::numpy_descr`]).
pub fn header_of(descr: &str, rows: usize, cols: usize) -> Vec<u8> {
    let dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
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
    let header = std::str::from_utf8(header).map_err(|_| "the header is not text")?;
    let dict = Header::parse(header)?;
    let width = match dict.descr.as_str() {
        "<f4" => 4,
        "<f8" => 8,
        // `|` is "byte order not applicable", which numpy writes for one-byte types only.
        d => {
            return Err(format!(
                "dtype '{d}' is not little-endian float32 ('<f4') or float64 ('<f8'){}",
                if d.starts_with('>') {
                    "; convert it with arr.astype('<f4')"
                } else {
                    ""
                }
            ))
        }
    };
    if dict.fortran_order {
        return Err("a Fortran-order array; save it in C order".into());
    }
    let dims = dict.shape;
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

/// The header's dictionary, parsed as the Python literal it is (`{'descr': '<f4',
/// 'fortran_order': False, 'shape': (2, 3), }`): exactly these three keys, once each, and
/// nothing else — never by looking for substrings, which a crafted header can contain twice.
struct Header {
    descr: String,
    fortran_order: bool,
    shape: Vec<usize>,
}

impl Header {
    fn parse(text: &str) -> Result<Header, String> {
        let mut p = Literal {
            s: text.trim_end_matches(['\n', ' ', '\0']).as_bytes(),
            at: 0,
        };
        p.expect(b'{')?;
        let (mut descr, mut fortran, mut shape) = (None, None, None);
        loop {
            p.space();
            if p.eat(b'}') {
                break;
            }
            let key = p.string()?;
            p.space();
            p.expect(b':')?;
            p.space();
            let seen = match key.as_str() {
                "descr" => descr.replace(p.string()?).is_some(),
                "fortran_order" => fortran.replace(p.boolean()?).is_some(),
                "shape" => shape.replace(p.tuple()?).is_some(),
                other => return Err(format!("unknown header key {other:?}")),
            };
            if seen {
                return Err(format!("header key {key:?} appears twice"));
            }
            p.space();
            if !p.eat(b',') {
                p.space();
                p.expect(b'}')?;
                break;
            }
        }
        p.space();
        if p.at != p.s.len() {
            return Err("text after the header's dictionary".into());
        }
        Ok(Header {
            descr: descr.ok_or("no 'descr' in the header")?,
            fortran_order: fortran.ok_or("no 'fortran_order' in the header")?,
            shape: shape.ok_or("no 'shape' in the header")?,
        })
    }
}

/// A cursor over the header's Python literal.
struct Literal<'a> {
    s: &'a [u8],
    at: usize,
}

impl Literal<'_> {
    fn space(&mut self) {
        while self.s.get(self.at).is_some_and(|b| b.is_ascii_whitespace()) {
            self.at += 1;
        }
    }
    fn eat(&mut self, b: u8) -> bool {
        let hit = self.s.get(self.at) == Some(&b);
        self.at += usize::from(hit);
        hit
    }
    fn expect(&mut self, b: u8) -> Result<(), String> {
        if self.eat(b) {
            Ok(())
        } else {
            Err(format!("header: expected '{}' at byte {}", b as char, self.at))
        }
    }
    fn string(&mut self) -> Result<String, String> {
        let quote = match self.s.get(self.at) {
            Some(&q @ (b'\'' | b'"')) => q,
            _ => return Err(format!("header: expected a quoted string at byte {}", self.at)),
        };
        let start = self.at + 1;
        let len = self.s[start..]
            .iter()
            .position(|&b| b == quote || b == b'\\')
            .ok_or("header: an unterminated string")?;
        if self.s[start + len] == b'\\' {
            return Err("header: escapes in strings are not supported".into());
        }
        self.at = start + len + 1;
        Ok(String::from_utf8_lossy(&self.s[start..start + len]).into_owned())
    }
    fn boolean(&mut self) -> Result<bool, String> {
        for (word, value) in [(&b"True"[..], true), (b"False", false)] {
            if self.s[self.at..].starts_with(word) {
                self.at += word.len();
                return Ok(value);
            }
        }
        Err(format!("header: expected True or False at byte {}", self.at))
    }
    fn tuple(&mut self) -> Result<Vec<usize>, String> {
        self.expect(b'(')?;
        let mut dims = Vec::new();
        loop {
            self.space();
            if self.eat(b')') {
                return Ok(dims);
            }
            let start = self.at;
            while self.s.get(self.at).is_some_and(u8::is_ascii_digit) {
                self.at += 1;
            }
            let digits = std::str::from_utf8(&self.s[start..self.at]).unwrap_or("");
            dims.push(
                digits
                    .parse()
                    .map_err(|_| format!("header: the shape is not a tuple of integers (at byte {start})"))?,
            );
            self.space();
            if !self.eat(b',') {
                self.space();
                self.expect(b')')?;
                return Ok(dims);
            }
        }
    }
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

    fn with_dict(dict: &str) -> Vec<u8> {
        let mut h = b"\x93NUMPY\x01\x00".to_vec();
        let mut text = dict.to_string();
        while !(10 + text.len() + 1).is_multiple_of(64) {
            text.push(' ');
        }
        text.push('\n');
        h.extend_from_slice(&(text.len() as u16).to_le_bytes());
        h.extend_from_slice(text.as_bytes());
        h.extend([1f32, 2.].iter().flat_map(|v| v.to_le_bytes()));
        h
    }

    #[test]
    fn the_header_is_parsed_not_searched() {
        assert_eq!(
            parse(&with_dict("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }")).unwrap(),
            (1, 2, vec![1., 2.])
        );
        // A big-endian array whose header also holds the text of a little-endian one.
        let crafted = "{'descr': '>f4', 'fortran_order': False, 'shape': (1, 2), 'x': \"'descr':'<f4'\"}";
        assert!(parse(&with_dict(crafted)).is_err());
        let e = parse(&with_dict("{'descr': '>f4', 'fortran_order': False, 'shape': (1, 2)}")).unwrap_err();
        assert!(e.contains("'>f4'") && e.contains("astype"), "{e}");
        let twice = "{'descr': '>f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1, 2)}";
        assert!(parse(&with_dict(twice)).unwrap_err().contains("twice"));
        assert!(parse(&with_dict("{'descr': '<f4', 'shape': (1, 2)}"))
            .unwrap_err()
            .contains("fortran_order"));
        assert!(parse(&with_dict("{'descr': '<f4', 'fortran_order': False, 'shape': (1, -2)}")).is_err());
    }
}
