//! Malformed GGUF input: every case gets its own specific error, never a panic or an
//! allocation sized by an unchecked field. A randomized-mutation test runs the reader over
//! thousands of corrupted variants of a valid file.

use gg_loader::gguf::{GgmlType, Gguf, GgufError, GgufWriter, Value, ValueType};

/// A small valid file with every kind of metadata value and three tensors.
fn fixture() -> Vec<u8> {
    let mut w = GgufWriter::new();
    w.add("general.architecture", Value::String("gemma-embedding".into()));
    w.add("test.u8", Value::U8(7));
    w.add("test.i64", Value::I64(-5));
    w.add("test.f64", Value::F64(0.25));
    w.add("test.bool", Value::Bool(true));
    w.add("test.strings", Value::strings(["a", "bc", "▁déf"]));
    w.add(
        "test.nested",
        Value::Array(ValueType::Array, vec![Value::i32s([1, 2]), Value::i32s([3])]),
    );
    w.add("test.floats", Value::f32s([1.5, -2.0]));
    let f32_data: Vec<u8> = (0..32).flat_map(|i| (i as f32).to_le_bytes()).collect();
    w.add_tensor("t.f32", &[4, 8], GgmlType::F32, f32_data);
    w.add_tensor("t.q8", &[2, 32], GgmlType::Q8_0, vec![1u8; 68]);
    w.add_tensor("t.f16", &[16], GgmlType::F16, vec![0u8; 32]);
    w.to_bytes()
}

fn parse(bytes: &[u8]) -> Result<Gguf, GgufError> {
    Gguf::from_bytes(bytes)
}

fn err(bytes: &[u8]) -> GgufError {
    match parse(bytes) {
        Ok(_) => panic!("malformed input was accepted"),
        Err(e) => e,
    }
}

fn find(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len())
        .position(|w| w == needle)
        .expect("needle in fixture")
}

/// Offset of the field after a tensor's name in the directory: n_dims.
fn tensor_info(bytes: &[u8], name: &str) -> usize {
    // Tensor names appear once in the directory (metadata keys differ).
    let mut pat = (name.len() as u64).to_le_bytes().to_vec();
    pat.extend(name.as_bytes());
    find(bytes, &pat) + pat.len()
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// Offsets of the tensor fields: (n_dims, first dim, type, offset) for a tensor of n dims.
fn fields(bytes: &[u8], name: &str) -> (usize, usize, usize, usize) {
    let nd = tensor_info(bytes, name);
    let n = u32::from_le_bytes(bytes[nd..nd + 4].try_into().unwrap()) as usize;
    let ty = nd + 4 + 8 * n;
    (nd, nd + 4, ty, ty + 4)
}

#[test]
fn fixture_is_valid_and_views_work() {
    let g = parse(&fixture()).unwrap();
    assert_eq!(g.version(), 3);
    assert_eq!(g.strings("test.strings").unwrap(), ["a", "bc", "▁déf"]);
    assert_eq!(g.f32s("test.floats").unwrap(), [1.5, -2.0]);
    assert_eq!(g.get("test.nested").unwrap().type_name(), "ARRAY[ARRAY[INT32]]");
    assert_eq!(
        g.value_to_json(g.get("test.nested").unwrap()).to_string(),
        "[[1,2],[3]]"
    );
    let t = g.tensor("t.f32").unwrap();
    assert_eq!(t.shape(), [4, 8]);
    assert_eq!(t.dims, [8, 4]);
    let v = g.tensor_data(t).unwrap();
    assert_eq!((v.dtype(), v.rows(), v.cols()), (gg_ops::DType::F32, 4, 8));
    assert_eq!(v.cast::<f32>()[31], 31.0);
    let q = g.tensor_data(g.tensor("t.q8").unwrap()).unwrap();
    assert_eq!(q.dtype(), gg_ops::DType::Q8_0);
    assert_eq!(q.cast::<gg_ops::BlockQ8_0>().len(), 2);
}

#[test]
fn truncated_at_every_byte_is_an_error() {
    let good = fixture();
    let g = parse(&good).unwrap();
    let data_start = g.data_start() as usize;
    for cut in 0..good.len() {
        let e = err(&good[..cut]);
        match e {
            GgufError::Truncated { .. } | GgufError::CountTooLarge { .. } => {
                assert!(cut <= data_start, "cut {cut}: {e}")
            }
            GgufError::TensorPastEnd { .. } => assert!(cut >= data_start - 32, "cut {cut}: {e}"),
            other => panic!("cut at {cut}: unexpected error {other}"),
        }
    }
}

#[test]
fn truncated_at_section_boundaries_names_the_section() {
    let good = fixture();
    let what = |cut: usize| match err(&good[..cut]) {
        GgufError::CountTooLarge { what, .. } => format!("count of {what}"),
        GgufError::Truncated { what, offset, .. } => {
            assert_eq!(offset as usize, cut.min(offset as usize));
            what
        }
        other => panic!("cut {cut}: {other}"),
    };
    assert_eq!(what(0), "magic");
    assert_eq!(what(4), "version");
    assert_eq!(what(8), "tensor count");
    assert_eq!(what(16), "metadata key/value count");
    // The counts are checked against what is left before anything is read.
    assert_eq!(what(24), "count of metadata key/value");
    let last_key = find(&good, b"test.floats");
    assert!(
        what(last_key + 3).contains("key of metadata entry 7"),
        "{}",
        what(last_key + 3)
    );
    assert!(what(last_key + 13).contains("value type of key \"test.floats\""));
    assert!(what(last_key + 17).contains("array element type of key \"test.floats\""));
    let first_tensor = tensor_info(&good, "t.f32") - 8 - 5;
    assert!(
        what(first_tensor).contains("name of tensor 0"),
        "{}",
        what(first_tensor)
    );
    let (_, _, _, off) = fields(&good, "t.f16");
    assert!(what(off).contains("data offset of tensor \"t.f16\""));
    // After the directory, before the aligned data section.
    let end_of_infos = off + 8;
    if end_of_infos % 32 != 0 {
        assert!(what(end_of_infos).contains("padding"));
    }
}

#[test]
fn bad_magic() {
    let mut b = fixture();
    b[0] = b'X';
    assert!(matches!(err(&b), GgufError::BadMagic { found } if &found == b"XGUF"));
}

#[test]
fn unknown_versions() {
    let mut b = fixture();
    for v in [0, 1, 4, 99] {
        put_u32(&mut b, 4, v);
        assert!(matches!(err(&b), GgufError::UnsupportedVersion { version } if version == v));
    }
    put_u32(&mut b, 4, 3u32.swap_bytes());
    assert!(matches!(err(&b), GgufError::BigEndian { .. }));
    put_u32(&mut b, 4, 2);
    assert_eq!(parse(&b).unwrap().version(), 2);
}

#[test]
fn absurd_counts() {
    let mut b = fixture();
    put_u64(&mut b, 8, u64::MAX);
    assert!(matches!(
        err(&b),
        GgufError::CountTooLarge {
            what: "tensor",
            count: u64::MAX,
            offset: 8,
            ..
        }
    ));
    let mut b = fixture();
    put_u64(&mut b, 16, 1 << 40);
    assert!(matches!(
        err(&b),
        GgufError::CountTooLarge {
            what: "metadata key/value",
            offset: 16,
            ..
        }
    ));
}

#[test]
fn string_length_past_end() {
    let mut b = fixture();
    // Length of the first key.
    put_u64(&mut b, 24, 1 << 50);
    match err(&b) {
        GgufError::Truncated {
            what, offset, needed, ..
        } => {
            assert!(what.contains("key of metadata entry 0"), "{what}");
            assert_eq!((offset, needed), (32, 1 << 50));
        }
        other => panic!("{other}"),
    }
    let mut b = fixture();
    let at = find(&b, b"gemma-embedding") - 8;
    put_u64(&mut b, at, u64::MAX);
    match err(&b) {
        GgufError::Truncated { what, .. } => {
            assert!(what.contains("general.architecture"), "{what}")
        }
        other => panic!("{other}"),
    }
}

#[test]
fn array_length_past_end() {
    let mut b = fixture();
    let key = find(&b, b"test.floats") + "test.floats".len();
    // value type (4), element type (4), then the count.
    put_u64(&mut b, key + 8, 1 << 61);
    assert!(matches!(err(&b), GgufError::CountTooLarge { what: "array element", count, .. } if count == 1 << 61));
    let mut b = fixture();
    let key = find(&b, b"test.strings") + "test.strings".len();
    put_u64(&mut b, key + 8, 1 << 40);
    assert!(matches!(
        err(&b),
        GgufError::CountTooLarge {
            what: "array element",
            ..
        }
    ));
}

#[test]
fn unknown_value_type_and_deep_nesting() {
    let mut b = fixture();
    let key = find(&b, b"test.u8") + "test.u8".len();
    put_u32(&mut b, key, 13);
    assert!(matches!(err(&b), GgufError::UnknownValueType { ref key, code: 13, .. } if key == "test.u8"));

    let mut w = GgufWriter::new();
    let mut v = Value::i32s([1]);
    for _ in 0..20 {
        v = Value::Array(ValueType::Array, vec![v]);
    }
    w.add("deep", v);
    assert!(matches!(err(&w.to_bytes()), GgufError::NestingTooDeep { ref key, .. } if key == "deep"));
}

#[test]
fn invalid_utf8_and_bool() {
    let mut b = fixture();
    let at = find(&b, b"test.u8");
    b[at] = 0xff;
    assert!(matches!(err(&b), GgufError::InvalidUtf8 { .. }));
    let mut b = fixture();
    let at = find(&b, b"test.bool") + "test.bool".len() + 4;
    b[at] = 2;
    assert!(matches!(err(&b), GgufError::ValueOutOfRange { ref key, .. } if key == "test.bool"));
}

#[test]
fn duplicate_key() {
    // Rename "test.f64" to an existing key of the same length.
    let mut b = fixture();
    let at = find(&b, b"test.f64");
    b[at..at + 8].copy_from_slice(b"test.i64");
    assert!(matches!(err(&b), GgufError::DuplicateKey { ref key, .. } if key == "test.i64"));
}

#[test]
fn bad_alignment() {
    for (value, ok) in [(Value::U32(3), false), (Value::U32(0), false), (Value::U32(64), true)] {
        let mut w = GgufWriter::new();
        w.add("general.alignment", value.clone());
        w.add_tensor("t", &[8], GgmlType::F32, vec![0; 32]);
        let r = parse(&w.to_bytes());
        assert_eq!(r.is_ok(), ok, "{value:?}");
        if !ok {
            assert!(matches!(r.err().unwrap(), GgufError::BadAlignment { .. }));
        }
    }
    let mut w = GgufWriter::new();
    w.add("general.alignment", Value::String("32".into()));
    assert!(matches!(err(&w.to_bytes()), GgufError::WrongKeyType { .. }));
}

#[test]
fn tensor_data_past_end() {
    let mut b = fixture();
    let (_, _, _, off) = fields(&b, "t.f16");
    put_u64(&mut b, off, 1 << 20);
    assert!(matches!(err(&b), GgufError::TensorPastEnd { ref tensor, .. } if tensor == "t.f16"));
    let mut b = fixture();
    put_u64(&mut b, off, u64::MAX - 31);
    assert!(matches!(err(&b), GgufError::TensorPastEnd { .. }));
    // Cutting the last tensor's data short.
    let b = fixture();
    assert!(matches!(err(&b[..b.len() - 1]), GgufError::TensorPastEnd { ref tensor, .. } if tensor == "t.f16"));
}

#[test]
fn misaligned_and_overlapping_offsets() {
    let mut b = fixture();
    let (_, _, _, off) = fields(&b, "t.q8");
    let old = u64::from_le_bytes(b[off..off + 8].try_into().unwrap());
    put_u64(&mut b, off, old + 2);
    assert!(matches!(err(&b), GgufError::MisalignedTensor { ref tensor, alignment: 32, .. } if tensor == "t.q8"));
    let mut b = fixture();
    put_u64(&mut b, off, 0);
    match err(&b) {
        GgufError::OverlappingTensors { first, second, offset } => {
            assert_eq!(offset, 0);
            let mut names = [first, second];
            names.sort();
            assert_eq!(names, ["t.f32", "t.q8"]);
        }
        other => panic!("{other}"),
    }
}

#[test]
fn dims_overflow_too_many_dims_block_misfit() {
    let mut b = fixture();
    let (_, d0, _, _) = fields(&b, "t.f32");
    put_u64(&mut b, d0, 1 << 40);
    put_u64(&mut b, d0 + 8, 1 << 40);
    assert!(matches!(err(&b), GgufError::DimsOverflow { ref tensor, .. } if tensor == "t.f32"));

    let mut b = fixture();
    let (nd, _, _, _) = fields(&b, "t.f32");
    put_u32(&mut b, nd, 5);
    assert!(matches!(err(&b), GgufError::TooManyDims { n_dims: 5, .. }));

    let mut b = fixture();
    let (_, d0, _, _) = fields(&b, "t.q8");
    put_u64(&mut b, d0, 33);
    assert!(matches!(
        err(&b),
        GgufError::BlockMisfit {
            dim0: 33,
            block: 32,
            ..
        }
    ));
}

#[test]
fn unknown_dtype_and_unsupported_dtype() {
    let mut b = fixture();
    let (_, _, ty, _) = fields(&b, "t.f16");
    put_u32(&mut b, ty, 99);
    assert!(matches!(err(&b), GgufError::UnknownTensorType { code: 99, ref tensor, .. } if tensor == "t.f16"));

    // A known type we cannot compute with (IQ2_XXS, which needs an importance matrix) is
    // listed, then refused when viewed.
    let mut w = GgufWriter::new();
    w.add_tensor("iq2", &[256], GgmlType(16), vec![0; 66]);
    let g = parse(&w.to_bytes()).unwrap();
    let t = g.tensor("iq2").unwrap();
    assert_eq!(t.ty.to_string(), "IQ2_XXS");
    assert!(matches!(g.tensor_data(t), Err(GgufError::UnsupportedTensorType { .. })));
}

#[test]
fn duplicate_tensor_names() {
    let mut w = GgufWriter::new();
    w.add_tensor("dup", &[8], GgmlType::F32, vec![0; 32]);
    w.add_tensor("dup", &[8], GgmlType::F32, vec![0; 32]);
    assert!(matches!(err(&w.to_bytes()), GgufError::DuplicateTensor { ref tensor, .. } if tensor == "dup"));
}

#[test]
fn missing_things_are_named() {
    let g = parse(&fixture()).unwrap();
    assert!(matches!(g.u32("nope"), Err(GgufError::MissingKey { ref key }) if key == "nope"));
    assert!(matches!(g.tensor("nope"), Err(GgufError::MissingTensor { ref name }) if name == "nope"));
    assert!(matches!(g.str("test.u8"), Err(GgufError::WrongKeyType { .. })));
    assert!(matches!(g.u32("test.i64"), Err(GgufError::ValueOutOfRange { .. })));
}

/// Deterministic, so failures reproduce.
use gg_ops::testing::XorShift as Rng;

/// Use everything a parsed file offers, so a wrong bound would surface as a panic here.
fn exercise(g: &Gguf) {
    for e in g.metadata() {
        let _ = g.value_to_json(&e.value);
    }
    for t in g.tensors() {
        let _ = g.tensor_bytes(t).iter().map(|&x| x as u64).sum::<u64>();
        let _ = g.tensor_data(t);
        let _ = t.shape();
    }
}

#[test]
fn randomized_mutations_never_panic() {
    let good = fixture();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let interesting: [u64; 8] = [0, 1, 31, 32, 255, u32::MAX as u64, 1 << 40, u64::MAX];
    let (mut accepted, mut rejected) = (0, 0);
    for _ in 0..30_000 {
        let mut b = good.clone();
        for _ in 0..1 + rng.below(3) {
            let at = rng.below(b.len());
            match rng.below(5) {
                0 => b[at] ^= 1 << rng.below(8),
                1 => b[at] = rng.next_u64() as u8,
                2 if at + 8 <= b.len() => {
                    let v = interesting[rng.below(interesting.len())];
                    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
                }
                3 => b.truncate(at),
                _ => {
                    let n = 1 + rng.below(16);
                    b.splice(at..at, (0..n).map(|_| rng.next_u64() as u8));
                }
            }
            if b.is_empty() {
                break;
            }
        }
        match parse(&b) {
            Ok(g) => {
                exercise(&g);
                accepted += 1;
            }
            Err(e) => {
                let _ = e.to_string();
                rejected += 1;
            }
        }
    }
    // Both outcomes must occur, or the mutations are not reaching the parser's checks.
    assert!(
        accepted > 100 && rejected > 10_000,
        "accepted {accepted}, rejected {rejected}"
    );
}
