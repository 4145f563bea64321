//! Just enough protobuf to read the pieces of a SentencePiece `tokenizer.model`.
//!
//! `ModelProto { repeated SentencePiece pieces = 1; ... }`,
//! `SentencePiece { string piece = 1; float score = 2; Type type = 3 [default = NORMAL]; }`.
//! Every other field is skipped by wire type.

use super::ConvertError;

// SentencePiece numbers its piece types as GGUF's `tokenizer.ggml.token_type` does.
use crate::tokenizer::token_type as piece_type;

#[derive(Clone, Debug, PartialEq)]
pub struct Piece {
    pub piece: String,
    pub score: f32,
    pub kind: i32,
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Offset of `buf[0]` in the whole file, for error messages.
    base: usize,
}

impl<'a> Reader<'a> {
    fn err(&self, what: &str) -> ConvertError {
        ConvertError::Protobuf {
            offset: self.base + self.pos,
            what: what.to_string(),
        }
    }

    fn varint(&mut self) -> Result<u64, ConvertError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let &b = self.buf.get(self.pos).ok_or_else(|| self.err("truncated varint"))?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.err("varint longer than 10 bytes"))
    }

    fn bytes(&mut self, n: u64) -> Result<&'a [u8], ConvertError> {
        if n > (self.buf.len() - self.pos) as u64 {
            return Err(self.err("length-delimited field runs past the end"));
        }
        let s = &self.buf[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(s)
    }

    /// Next (field number, wire type), or None at the end.
    fn key(&mut self) -> Result<Option<(u64, u8)>, ConvertError> {
        if self.pos == self.buf.len() {
            return Ok(None);
        }
        let k = self.varint()?;
        Ok(Some((k >> 3, (k & 7) as u8)))
    }

    fn skip(&mut self, wire: u8) -> Result<(), ConvertError> {
        match wire {
            0 => self.varint().map(drop),
            1 => self.bytes(8).map(drop),
            2 => {
                let n = self.varint()?;
                self.bytes(n).map(drop)
            }
            5 => self.bytes(4).map(drop),
            _ => Err(self.err(&format!("unsupported wire type {wire}"))),
        }
    }
}

/// Read all pieces of a serialized `ModelProto`.
pub fn read_pieces(buf: &[u8]) -> Result<Vec<Piece>, ConvertError> {
    let mut r = Reader { buf, pos: 0, base: 0 };
    let mut pieces = Vec::new();
    while let Some((field, wire)) = r.key()? {
        if field == 1 && wire == 2 {
            let n = r.varint()?;
            let base = r.pos;
            let msg = r.bytes(n)?;
            pieces.push(read_piece(Reader { buf: msg, pos: 0, base })?);
        } else {
            r.skip(wire)?;
        }
    }
    Ok(pieces)
}

fn read_piece(mut r: Reader<'_>) -> Result<Piece, ConvertError> {
    let mut p = Piece {
        piece: String::new(),
        score: 0.0,
        kind: piece_type::NORMAL,
    };
    while let Some((field, wire)) = r.key()? {
        match (field, wire) {
            (1, 2) => {
                let n = r.varint()?;
                let b = r.bytes(n)?;
                p.piece = String::from_utf8(b.to_vec()).map_err(|_| r.err("piece is not UTF-8"))?;
            }
            (2, 5) => p.score = f32::from_le_bytes(r.bytes(4)?.try_into().expect("4 bytes")),
            (3, 0) => p.kind = r.varint()? as i32,
            (_, w) => r.skip(w)?,
        }
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }

    fn piece(text: &str, score: f32, kind: u64) -> Vec<u8> {
        let mut m = vec![0x0a];
        varint(text.len() as u64, &mut m);
        m.extend(text.as_bytes());
        m.push(0x15);
        m.extend(score.to_le_bytes());
        m.push(0x18);
        varint(kind, &mut m);
        m
    }

    #[test]
    fn reads_pieces_and_skips_other_fields() {
        let mut model = Vec::new();
        for (t, s, k) in [("<unk>", 0.0, 2), ("▁the", -3.5, 1)] {
            let p = piece(t, s, k);
            model.push(0x0a);
            varint(p.len() as u64, &mut model);
            model.extend(p);
        }
        // trainer_spec (field 2) with one varint field inside.
        model.extend([0x12, 0x02, 0x08, 0x01]);
        let pieces = read_pieces(&model).unwrap();
        assert_eq!(pieces.len(), 2);
        assert_eq!(pieces[1].piece, "▁the");
        assert_eq!(pieces[1].score, -3.5);
        assert_eq!(pieces[0].kind, 2);
        assert!(matches!(
            read_pieces(&model[..model.len() - 1]),
            Err(ConvertError::Protobuf { .. })
        ));
    }
}
