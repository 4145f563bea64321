//! Writing vectors as rows are ready: JSONL, one JSON array, CSV, TSV, `.npy` or a readable
//! preview, to stdout or a file (written under a temporary name, renamed when complete).

use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::Path;

use crate::outfile::OutFile;
use crate::stored::{Encoding, Stored};

use anyhow::Result;
use serde_json::Value;

/// Output format of `run`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// One JSON object per row: index, embedding, tokens, truncated, copied fields.
    Jsonl,
    /// One JSON array of those objects.
    Json,
    /// A header, then index, tokens, truncated, copied fields, e0..eN per row.
    Csv,
    /// As csv, tab-separated.
    Tsv,
    /// A float32 matrix (rows × dim) that numpy.load reads.
    Npy,
    /// A short preview per row, for people.
    Text,
}

/// One output row: a text's (or chunk's) vector, or the reason it has none.
pub struct Row<'a> {
    pub index: usize,
    pub embedding: Option<&'a [f32]>,
    pub error: Option<&'a str>,
    pub tokens: usize,
    pub truncated: bool,
    /// (chunk number, char start, char end) when texts are split into chunks.
    pub chunk: Option<(usize, usize, usize)>,
    pub fields: &'a [(String, Value)],
    pub text: &'a str,
}

/// Names our own columns take; input fields with these names are not copied.
const RESERVED: [&str; 12] = [
    "index",
    "embedding",
    "error",
    "tokens",
    "truncated",
    "chunk",
    "start",
    "end",
    "label",
    "score",
    "probabilities",
    "logits",
];

/// Rows are a classifier head's outputs: one value per class, written with the class
/// labels (`key` is `probabilities` or `logits`).
pub struct Classes {
    pub labels: Vec<String>,
    pub key: &'static str,
}

impl Classes {
    /// The best class and its value.
    fn best<'a>(&'a self, v: &[f32]) -> (&'a str, f32) {
        let (i, &x) = v
            .iter()
            .enumerate()
            .fold((0, &f32::NEG_INFINITY), |a, b| if b.1 > a.1 { b } else { a });
        (self.labels.get(i).map_or("?", String::as_str), x)
    }
}

/// `{label: value, ...}` in class order.
struct LabelMap<'a>(&'a [String], &'a [f32]);

impl serde::Serialize for LabelMap<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0.iter().zip(self.1) {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

/// Where output goes: stdout or an `-o` file ([`OutFile`]'s rules: regular files are
/// replaced when complete, devices/FIFOs/links written through).
pub struct Destination {
    file: Option<OutFile>,
}

impl Destination {
    pub fn open(path: Option<&Path>) -> Result<Destination> {
        let file = path.map(|p| OutFile::create(p, true)).transpose()?;
        Ok(Destination { file })
    }

    /// The output as a seekable file, when it is one (a regular file, or stdout redirected to
    /// one, at its start: appending (`>>`) cannot patch a header written earlier).
    fn seekable(&self) -> Option<File> {
        let mut f = match &self.file {
            Some(out) => out.file().try_clone().ok()?,
            None => {
                use std::os::fd::AsFd;
                File::from(std::io::stdout().as_fd().try_clone_to_owned().ok()?)
            }
        };
        let regular = f.metadata().is_ok_and(|m| m.is_file());
        (regular && f.stream_position().is_ok_and(|p| p == 0)).then_some(f)
    }

    fn writer(&self) -> Result<Box<dyn Write>> {
        Ok(match &self.file {
            Some(out) => Box::new(Tagged(
                BufWriter::with_capacity(1 << 16, out.file().try_clone()?),
                out.shown(),
            )),
            None => Box::new(crate::stdout::Out::stdout()),
        })
    }

    /// Put the finished file in place.
    pub fn commit(self) -> Result<()> {
        self.file.map_or(Ok(()), OutFile::commit)
    }

    /// Remove the unfinished file.
    pub fn abandon(self) {
        if let Some(out) = self.file {
            out.abandon();
        }
    }
}

/// A file writer whose errors name the file.
struct Tagged<W>(W, String);

impl<W: Write> Write for Tagged<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .write(buf)
            .map_err(|e| std::io::Error::new(e.kind(), format!("writing {}: {e}", self.1)))
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0
            .flush()
            .map_err(|e| std::io::Error::new(e.kind(), format!("writing {}: {e}", self.1)))
    }
}

/// Writes rows in one format.
pub struct Sink {
    format: OutputFormat,
    out: Box<dyn Write>,
    /// Stored elements per row (the vector's length, or its bytes when bit-packed).
    dim: usize,
    encoding: Encoding,
    rows: usize,
    /// CSV/TSV: the writer and the copied columns, fixed by the first row (or the input's header).
    table: Option<Vec<String>>,
    columns: Option<Vec<String>>,
    /// npy: the file to patch the header of at the end, or rows kept until the end when the
    /// output cannot seek (a pipe).
    npy_file: Option<File>,
    npy_rows: Vec<u8>,
    classes: Option<Classes>,
}

impl Sink {
    /// `columns`: the input's own columns (CSV/TSV input) and its text column; the others
    /// are copied in that order.
    pub fn new(
        format: OutputFormat,
        dest: &Destination,
        dim: usize,
        encoding: Encoding,
        columns: Option<(&[String], &str)>,
        classes: Option<Classes>,
    ) -> Result<Sink> {
        let mut sink = Sink {
            format,
            out: dest.writer()?,
            dim: if classes.is_some() { dim } else { encoding.row_len(dim) },
            encoding,
            rows: 0,
            table: None,
            columns: columns.map(|(cols, text)| {
                cols.iter()
                    .filter(|c| !RESERVED.contains(&c.as_str()) && *c != text)
                    .cloned()
                    .collect()
            }),
            npy_file: None,
            npy_rows: Vec::new(),
            classes,
        };
        match format {
            OutputFormat::Json => sink.out.write_all(b"[")?,
            OutputFormat::Npy => {
                sink.npy_file = dest.seekable();
                if sink.npy_file.is_some() {
                    let header = sink.npy_header(0);
                    sink.out.write_all(&header)?;
                }
            }
            _ => {}
        }
        Ok(sink)
    }

    /// The npy header for `rows` rows of this sink's dtype (a head's outputs are float32).
    fn npy_header(&self, rows: usize) -> Vec<u8> {
        let descr = match self.classes {
            Some(_) => "<f4",
            None => self.encoding.dtype.numpy_descr(),
        };
        gemma_graph::npy::header_of(descr, rows, self.dim)
    }

    pub fn write(&mut self, row: &Row<'_>) -> Result<()> {
        // The vector as stored in the output dtype (a head's outputs stay float32).
        let stored = match (row.embedding, &self.classes) {
            (Some(v), None) => Some(self.encoding.store(v)?),
            _ => None,
        };
        let json = JsonRow(row, self.classes.as_ref(), stored.as_ref());
        match self.format {
            OutputFormat::Jsonl => {
                serde_json::to_writer(&mut self.out, &json)?;
                self.out.write_all(b"\n")?;
            }
            OutputFormat::Json => {
                self.out.write_all(if self.rows == 0 { b"\n" } else { b",\n" })?;
                serde_json::to_writer(&mut self.out, &json)?;
            }
            OutputFormat::Csv | OutputFormat::Tsv => self.table_row(row, stored.as_ref())?,
            OutputFormat::Npy => {
                // A skipped row is NaN: only float dtypes have one (`run` refuses the others).
                let bytes = match (&stored, row.embedding) {
                    (Some(s), _) => s.bytes.clone(),
                    (None, Some(v)) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
                    (None, None) => self.encoding.store(&vec![f32::NAN; self.dim])?.bytes,
                };
                if self.npy_file.is_some() {
                    self.out.write_all(&bytes)?;
                } else {
                    self.npy_rows.extend_from_slice(&bytes);
                }
            }
            OutputFormat::Text => {
                let excerpt: String = row.text.chars().take(40).collect();
                let chunk = row
                    .chunk
                    .map_or(String::new(), |(c, s, e)| format!("chunk {c} [{s}..{e}]\t"));
                match (row.embedding, row.error) {
                    (Some(v), _) if self.classes.is_some() => {
                        let classes = self.classes.as_ref().expect("checked");
                        let mut order: Vec<usize> = (0..v.len()).collect();
                        order.sort_by(|&a, &b| v[b].total_cmp(&v[a]));
                        let (label, score) = classes.best(v);
                        let top: Vec<String> = order
                            .iter()
                            .skip(1)
                            .take(3)
                            .map(|&c| format!("{} {:.4}", classes.labels.get(c).map_or("?", String::as_str), v[c]))
                            .collect();
                        writeln!(
                            self.out,
                            "{}\t{chunk}{excerpt:?}\t{label} {score:.4}\t(then {})",
                            row.index,
                            top.join(", ")
                        )?;
                    }
                    (Some(v), _) if self.encoding.dtype != gemma_graph::OutputDtype::Float32 => {
                        let cells = stored.as_ref().map(Stored::cells).unwrap_or_default();
                        writeln!(
                            self.out,
                            "{}\t{chunk}{excerpt:?}\t{} tokens{}\t[{} ...] ({} {} values of {} dims)",
                            row.index,
                            row.tokens,
                            if row.truncated { " (truncated)" } else { "" },
                            cells.iter().take(8).cloned().collect::<Vec<_>>().join(", "),
                            cells.len(),
                            self.encoding.dtype,
                            v.len()
                        )?;
                    }
                    (Some(v), _) => {
                        let preview: Vec<String> = v.iter().take(6).map(|x| format!("{x:+.5}")).collect();
                        writeln!(
                            self.out,
                            "{}\t{chunk}{excerpt:?}\t{} tokens{}\t[{} ...] ({} dims)",
                            row.index,
                            row.tokens,
                            if row.truncated { " (truncated)" } else { "" },
                            preview.join(", "),
                            v.len()
                        )?;
                    }
                    (None, e) => writeln!(self.out, "{}\tskipped: {}", row.index, e.unwrap_or("invalid"))?,
                }
            }
        }
        self.rows += 1;
        Ok(())
    }

    fn table_row(&mut self, row: &Row<'_>, stored: Option<&Stored>) -> Result<()> {
        if self.table.is_none() {
            let copied = self.columns.clone().unwrap_or_else(|| {
                row.fields
                    .iter()
                    .map(|(k, _)| k.clone())
                    .filter(|k| !RESERVED.contains(&k.as_str()))
                    .collect()
            });
            let delimiter = if self.format == OutputFormat::Csv { b',' } else { b'\t' };
            let mut header: Vec<String> = vec!["index".into()];
            if row.chunk.is_some() {
                header.extend(["chunk", "start", "end"].map(String::from));
            }
            header.extend(["tokens", "truncated"].map(String::from));
            header.extend(copied.iter().cloned());
            match &self.classes {
                Some(c) => {
                    header.extend(["label", "score"].map(String::from));
                    header.extend(c.labels.iter().cloned());
                }
                None => header.extend((0..self.dim).map(|i| format!("e{i}"))),
            }
            self.record(delimiter, &header)?;
            self.table = Some(copied);
        }
        let delimiter = if self.format == OutputFormat::Csv { b',' } else { b'\t' };
        let copied = self.table.as_deref().unwrap_or_default();
        let mut cells: Vec<String> = vec![row.index.to_string()];
        if let Some((c, s, e)) = row.chunk {
            cells.extend([c, s, e].map(|x| x.to_string()));
        }
        let ok = row.embedding.is_some();
        cells.push(if ok { row.tokens.to_string() } else { String::new() });
        cells.push(if ok { row.truncated.to_string() } else { String::new() });
        for name in copied.iter() {
            cells.push(match row.fields.iter().find(|(k, _)| k == name).map(|(_, v)| v) {
                Some(Value::String(s)) => s.clone(),
                Some(v) => v.to_string(),
                None => String::new(),
            });
        }
        let class_cells = usize::from(self.classes.is_some()) * 2;
        match row.embedding {
            Some(v) => {
                if let Some(c) = &self.classes {
                    let (label, score) = c.best(v);
                    cells.extend([label.to_string(), score.to_string()]);
                }
                match stored {
                    Some(s) => cells.extend(s.cells()),
                    None => cells.extend(v.iter().map(|x| x.to_string())),
                }
            }
            None => cells.extend(std::iter::repeat_n(String::new(), self.dim + class_cells)),
        }
        self.record(delimiter, &cells)?;
        Ok(())
    }

    /// One CSV/TSV record, quoted where needed.
    fn record(&mut self, delimiter: u8, cells: &[String]) -> Result<()> {
        let mut w = csv::WriterBuilder::new().delimiter(delimiter).from_writer(Vec::new());
        w.write_record(cells)?;
        let bytes = w.into_inner().map_err(|e| anyhow::anyhow!("{}", e.error()))?;
        self.out.write_all(&bytes)?;
        Ok(())
    }

    /// Close the output: the JSON array's bracket, the npy header's row count.
    pub fn finish(mut self) -> Result<()> {
        match self.format {
            OutputFormat::Json => self.out.write_all(b"\n]\n")?,
            OutputFormat::Npy => match self.npy_file.take() {
                Some(mut f) => {
                    self.out.flush()?;
                    f.seek(SeekFrom::Start(0))?;
                    f.write_all(&self.npy_header(self.rows))?;
                    f.seek(SeekFrom::End(0))?;
                }
                None => {
                    let header = self.npy_header(self.rows);
                    self.out.write_all(&header)?;
                    self.out.write_all(&self.npy_rows)?;
                }
            },
            OutputFormat::Csv | OutputFormat::Tsv if self.table.is_none() => {
                // No rows: still a header, so readers see the columns.
                let delimiter = if self.format == OutputFormat::Csv { "," } else { "\t" };
                let mut header = vec!["index".to_string(), "tokens".into(), "truncated".into()];
                header.extend((0..self.dim).map(|i| format!("e{i}")));
                writeln!(self.out, "{}", header.join(delimiter))?;
            }
            _ => {}
        }
        self.out.flush()?;
        Ok(())
    }
}

/// A row as a JSON object: our fields first, then the input's other fields. Floats are
/// written as f32 (the shortest text that reads back to the same f32).
struct JsonRow<'a, 'b>(&'a Row<'b>, Option<&'a Classes>, Option<&'a Stored>);

impl serde::Serialize for JsonRow<'_, '_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let row = self.0;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("index", &row.index)?;
        if let Some((c, start, end)) = row.chunk {
            m.serialize_entry("chunk", &c)?;
            m.serialize_entry("start", &start)?;
            m.serialize_entry("end", &end)?;
        }
        match (row.embedding, self.1) {
            (Some(v), Some(classes)) => {
                let (label, score) = classes.best(v);
                m.serialize_entry("label", label)?;
                m.serialize_entry("score", &score)?;
                m.serialize_entry(classes.key, &LabelMap(&classes.labels, v))?;
                m.serialize_entry("tokens", &row.tokens)?;
                m.serialize_entry("truncated", &row.truncated)?;
            }
            (Some(v), None) => {
                match self.2 {
                    Some(stored) => m.serialize_entry("embedding", stored)?,
                    None => m.serialize_entry("embedding", v)?,
                }
                m.serialize_entry("tokens", &row.tokens)?;
                m.serialize_entry("truncated", &row.truncated)?;
            }
            (None, _) => {
                m.serialize_entry(self.1.map_or("embedding", |c| c.key), &Value::Null)?;
                m.serialize_entry("error", row.error.unwrap_or("invalid"))?;
            }
        }
        for (k, v) in row.fields {
            if !RESERVED.contains(&k.as_str()) {
                m.serialize_entry(k, v)?;
            }
        }
        m.end()
    }
}
