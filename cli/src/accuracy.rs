//! What each weight type costs in accuracy, as measured on the golden texts
//! (`accuracy_by_type.csv`, written by `GEMMA_GRAPH_FORMATS_FULL=1
//! GEMMA_GRAPH_ACCURACY_CSV=… cargo test --release --test formats_golden`): the one table
//! `inspect` shows for a file's type and docs/accuracy.md prints (`docs_table`, kept equal by a
//! test).

/// The measured table: one row per `convert --type` name.
const CSV: &str = include_str!("accuracy_by_type.csv");

/// Mean and minimum cosine over the texts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MeanMin {
    pub mean: f64,
    pub min: f64,
}

/// One type's row.
#[derive(Clone, Debug, PartialEq)]
pub struct TypeAccuracy {
    /// The `convert --type` name (`q4_k_m`).
    pub ty: String,
    /// The converter's file, MB.
    pub file_mb: u32,
    /// Against sentence-transformers in float32 (`st_f32`).
    pub fast_f32: MeanMin,
    pub exact_f32: MeanMin,
    /// `None` where the measuring CPU had no int8 kernels.
    pub int8_f32: Option<MeanMin>,
    /// Against the file's exact answer (`st_w`): the worst text.
    pub exact_w_min: f64,
    pub fast_w_min: f64,
    pub int8_w: Option<MeanMin>,
    /// llama.cpp on the same file, where the golden data has its vectors.
    pub llama_f32: Option<MeanMin>,
    pub llama_w: Option<MeanMin>,
}

fn parse_row(line: &str) -> Option<TypeAccuracy> {
    let f: Vec<&str> = line.split(',').collect();
    let num = |i: usize| f.get(i)?.parse::<f64>().ok();
    let pair = |i: usize| {
        Some(MeanMin {
            mean: num(i)?,
            min: num(i + 1)?,
        })
    };
    Some(TypeAccuracy {
        ty: f.first()?.to_string(),
        file_mb: f.get(1)?.parse().ok()?,
        fast_f32: pair(2)?,
        exact_f32: pair(4)?,
        int8_f32: pair(6),
        exact_w_min: num(8)?,
        fast_w_min: num(9)?,
        int8_w: pair(10),
        llama_f32: pair(12),
        llama_w: pair(14),
    })
}

/// Every measured type, in the table's order.
pub fn table() -> Vec<TypeAccuracy> {
    CSV.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| parse_row(l).unwrap_or_else(|| panic!("accuracy_by_type.csv: bad row {l:?}")))
        .collect()
}

/// The row of a `convert --type` name.
pub fn of_type(name: &str) -> Option<TypeAccuracy> {
    table().into_iter().find(|r| r.ty == name)
}

fn mm(v: MeanMin) -> String {
    format!("{:.5} / {:.5}", v.mean, v.min)
}

fn opt(v: Option<MeanMin>) -> String {
    v.map_or("—".into(), mm)
}

/// The lines `inspect` prints for one type.
pub fn describe(r: &TypeAccuracy) -> Vec<String> {
    vec![
        format!(
            "  {} as `convert` writes it ({} MB); cosine on the golden texts, mean / min:",
            r.ty, r.file_mb
        ),
        format!(
            "  {:<10} {:<22} {}",
            "precision", "vs float32 (st_f32)", "vs this file's exact answer"
        ),
        format!("  {:<10} {:<22} min {:.7}", "exact", mm(r.exact_f32), r.exact_w_min),
        format!("  {:<10} {:<22} min {:.6}", "fast", mm(r.fast_f32), r.fast_w_min),
        format!("  {:<10} {:<22} {}", "int8", opt(r.int8_f32), opt(r.int8_w)),
        format!("  {:<10} {:<22} {}", "llama.cpp", opt(r.llama_f32), opt(r.llama_w)),
    ]
}

/// The table as docs/accuracy.md prints it.
#[cfg(test)]
pub fn docs_table() -> String {
    let mut s = String::from(
        "| type | file | `exact` vs `st_f32` | `fast` (default) vs `st_f32` | `int8` vs `st_f32` | llama.cpp vs `st_f32` | `exact` vs exact answer, min | `fast` vs exact answer, min | `int8` vs exact answer | llama.cpp vs exact answer |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in table() {
        s.push_str(&format!(
            "| {} | {} MB | {} | {} | {} | {} | {:.7} | {:.6} | {} | {} |\n",
            r.ty,
            r.file_mb,
            mm(r.exact_f32),
            mm(r.fast_f32),
            opt(r.int8_f32),
            opt(r.llama_f32),
            r.exact_w_min,
            r.fast_w_min,
            opt(r.int8_w),
            opt(r.llama_w),
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_converter_type_has_a_row_and_the_docs_print_the_table() {
        let rows = table();
        for ty in gemma_graph::loader::convert::OutType::all() {
            assert!(
                rows.iter().any(|r| r.ty == ty.name()),
                "accuracy_by_type.csv has no row for {}",
                ty.name()
            );
        }
        let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/accuracy.md")).unwrap();
        assert!(
            docs.contains(&docs_table()),
            "docs/accuracy.md's per-type table differs from cli/src/accuracy_by_type.csv; it should read:\n{}",
            docs_table()
        );
    }
}
