//! The tokenizer's tables, built once from GGUF metadata: pieces and scores, the pair table
//! that drives BPE, single-character and byte-fallback lookups, and the trie of pieces that
//! are matched whole (control and user-defined).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// GGUF / SentencePiece token types (`tokenizer.ggml.token_type`, SentencePiece's piece type).
pub mod token_type {
    pub const NORMAL: i32 = 1;
    pub const UNKNOWN: i32 = 2;
    pub const CONTROL: i32 = 3;
    pub const USER_DEFINED: i32 = 4;
    pub const UNUSED: i32 = 5;
    pub const BYTE: i32 = 6;
}

/// Multiplicative hashing for pair keys and short piece strings (SipHash is needlessly slow
/// for the millions of lookups made while building the tables).
#[derive(Default)]
pub(crate) struct PairHasher(u64);

impl Hasher for PairHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (v ^ (v >> 29)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        self.0 ^= self.0 >> 32;
    }
}

type PairMap = HashMap<u64, u32, BuildHasherDefault<PairHasher>>;

const NIL: u32 = u32::MAX;

struct TrieNode {
    /// (byte, child index), sorted by byte.
    children: Vec<(u8, u32)>,
    /// Token id ending here, or NIL.
    token: u32,
}

/// Byte trie of the pieces matched whole in raw text.
pub(crate) struct WholeTrie {
    root: Box<[u32; 256]>,
    nodes: Vec<TrieNode>,
}

impl WholeTrie {
    fn new() -> WholeTrie {
        WholeTrie {
            root: Box::new([NIL; 256]),
            nodes: Vec::new(),
        }
    }

    fn insert(&mut self, text: &str, id: u32) {
        let bytes = text.as_bytes();
        let Some((&first, rest)) = bytes.split_first() else {
            return;
        };
        let mut node = self.root[first as usize];
        if node == NIL {
            node = self.new_node();
            self.root[first as usize] = node;
        }
        for &b in rest {
            let children = &self.nodes[node as usize].children;
            node = match children.binary_search_by_key(&b, |c| c.0) {
                Ok(i) => children[i].1,
                Err(i) => {
                    let child = self.new_node();
                    self.nodes[node as usize].children.insert(i, (b, child));
                    child
                }
            };
        }
        // The first piece with a given text wins.
        if self.nodes[node as usize].token == NIL {
            self.nodes[node as usize].token = id;
        }
    }

    fn new_node(&mut self) -> u32 {
        self.nodes.push(TrieNode {
            children: Vec::new(),
            token: NIL,
        });
        self.nodes.len() as u32 - 1
    }

    /// Could a match start with this byte?
    #[inline]
    pub fn starts(&self, b: u8) -> bool {
        self.root[b as usize] != NIL
    }

    /// The longest piece at the start of `bytes` accepted by `keep`: (token, byte length).
    pub fn longest(&self, bytes: &[u8], keep: impl Fn(u32) -> bool) -> Option<(u32, usize)> {
        let mut node = *self.root.get(*bytes.first()? as usize)?;
        if node == NIL {
            return None;
        }
        let mut best = None;
        let mut i = 1;
        loop {
            let n = &self.nodes[node as usize];
            if n.token != NIL && keep(n.token) {
                best = Some((n.token, i));
            }
            let Some(&b) = bytes.get(i) else { break };
            match n.children.binary_search_by_key(&b, |c| c.0) {
                Ok(j) => node = n.children[j].1,
                Err(_) => break,
            }
            i += 1;
        }
        best
    }
}

/// Lookup tables of one vocabulary.
pub struct Vocab {
    pub(crate) pieces: Vec<String>,
    pub(crate) scores: Vec<f32>,
    pub(crate) types: Vec<i32>,
    ascii_piece: [u32; 128],
    char_piece: HashMap<char, u32>,
    pairs: PairMap,
    byte_piece: [u32; 256],
    pub(crate) whole: WholeTrie,
}

impl Vocab {
    /// Build the tables. `unk` is used for bytes that have no `<0xXX>` piece.
    pub fn new(pieces: Vec<String>, scores: Vec<f32>, types: Vec<i32>, unk: u32) -> Vocab {
        let n = pieces.len();
        let mut char_piece: HashMap<char, u32> = HashMap::new();
        let mut normal: HashMap<&str, u32, BuildHasherDefault<PairHasher>> =
            HashMap::with_capacity_and_hasher(n, Default::default());
        let mut byte_piece = [unk; 256];
        let mut whole = WholeTrie::new();
        for (id, (p, &t)) in pieces.iter().zip(&types).enumerate() {
            let id = id as u32;
            let mut chars = p.chars();
            if let (Some(c), None) = (chars.next(), chars.next()) {
                // A character's initial symbol: its own piece, a normal one if there are two.
                match char_piece.get(&c) {
                    Some(&old) if types[old as usize] == token_type::NORMAL => {}
                    _ => {
                        char_piece.insert(c, id);
                    }
                }
            }
            match t {
                token_type::NORMAL => {
                    normal.entry(p.as_str()).or_insert(id);
                }
                token_type::BYTE => {
                    if let Some(b) = parse_byte_piece(p) {
                        byte_piece[b as usize] = id;
                    }
                }
                token_type::CONTROL | token_type::USER_DEFINED => whole.insert(p, id),
                _ => {}
            }
        }
        let mut ascii_piece = [NIL; 128];
        for (c, slot) in ascii_piece.iter_mut().enumerate() {
            if let Some(&id) = char_piece.get(&(c as u8 as char)) {
                *slot = id;
            }
        }
        // Every way a normal piece splits into two symbols that BPE can hold.
        let symbol = |s: &str| -> Option<u32> {
            let mut cs = s.chars();
            match (cs.next(), cs.next()) {
                (Some(c), None) => char_piece.get(&c).copied(),
                _ => normal.get(s).copied(),
            }
        };
        let mut pairs = PairMap::with_capacity_and_hasher(n * 4, Default::default());
        for (id, (p, &t)) in pieces.iter().zip(&types).enumerate() {
            if t != token_type::NORMAL {
                continue;
            }
            for (k, _) in p.char_indices().skip(1) {
                if let (Some(l), Some(r)) = (symbol(&p[..k]), symbol(&p[k..])) {
                    pairs.entry(pair_key(l, r)).or_insert(id as u32);
                }
            }
        }
        Vocab {
            pieces,
            scores,
            types,
            ascii_piece,
            char_piece,
            pairs,
            byte_piece,
            whole,
        }
    }

    #[inline]
    pub(crate) fn char_piece(&self, c: char) -> Option<u32> {
        if c.is_ascii() {
            let id = self.ascii_piece[c as usize];
            return (id != NIL).then_some(id);
        }
        self.char_piece.get(&c).copied()
    }

    #[inline]
    pub(crate) fn byte_piece(&self, b: u8) -> u32 {
        self.byte_piece[b as usize]
    }

    #[inline]
    pub(crate) fn merge(&self, left: u32, right: u32) -> Option<u32> {
        self.pairs.get(&pair_key(left, right)).copied()
    }

    #[inline]
    pub(crate) fn score(&self, id: u32) -> f32 {
        self.scores[id as usize]
    }
}

#[inline]
fn pair_key(l: u32, r: u32) -> u64 {
    (u64::from(l) << 32) | u64::from(r)
}

/// `<0x41>` → 0x41.
pub(crate) fn parse_byte_piece(p: &str) -> Option<u8> {
    let hex = p.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}
