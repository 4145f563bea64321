//! Reading texts: positional arguments, or a file (or stdin) of JSONL objects, plain lines,
//! CSV or TSV with a header — one record at a time, so inputs of any length stream.

use std::cell::Cell;
use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// Output format of `tokenize`: readable text, one JSON document, or one JSON object per
/// input line.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
    Jsonl,
}

/// How an input file holds its texts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum InputFormat {
    /// One JSON object per line; the text in a string field (`--text-field`, default `text`).
    Jsonl,
    /// One text per line (an empty line is an empty text).
    Lines,
    /// Comma-separated with a header row; `--text-field` names the column.
    Csv,
    /// Tab-separated with a header row; `--text-field` names the column.
    Tsv,
}

impl InputFormat {
    /// The format a file name says, if it says one.
    fn from_extension(path: &Path) -> Option<InputFormat> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        Some(match ext.as_str() {
            "jsonl" | "ndjson" | "json" => InputFormat::Jsonl,
            "txt" | "text" | "lines" => InputFormat::Lines,
            "csv" => InputFormat::Csv,
            "tsv" | "tab" => InputFormat::Tsv,
            _ => return None,
        })
    }
}

/// Where the texts and the model come from (shared by `run`, `search` and `tokenize`).
#[derive(clap::Args)]
pub struct TextArgs {
    /// Texts (or use --input).
    pub texts: Vec<String>,
    /// Input file ("-" for stdin): JSONL, plain lines, CSV or TSV (see --input-format).
    #[arg(long, short)]
    pub input: Option<PathBuf>,
    /// Input format [default: from the extension (.jsonl .txt .csv .tsv); otherwise JSONL if
    /// the first line starts with "{", else lines].
    #[arg(long, value_enum)]
    pub input_format: Option<InputFormat>,
    /// The JSONL field or CSV/TSV column holding the text.
    #[arg(long, default_value = "text")]
    pub text_field: String,
    /// GGUF file (default: $GEMMA_GRAPH_MODEL, else the fetched model in the cache).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Longest text argument or input line accepted, in bytes (longer ones are an error naming
    /// the line; the model sees at most its context of 2,048 tokens anyway).
    #[arg(long, default_value_t = DEFAULT_MAX_TEXT_BYTES)]
    pub max_text_bytes: usize,
}

/// The library's default (4 MiB).
pub const DEFAULT_MAX_TEXT_BYTES: usize = gemma_graph::MAX_TEXT_BYTES;

/// The task prompt put before every text (shared by `run` and `tokenize`).
#[derive(clap::Args)]
pub struct PromptArgs {
    /// Task prompt by name: query, document, Clustering, Classification, STS, ...
    #[arg(long, conflicts_with = "prompt_text")]
    pub prompt: Option<String>,
    /// Literal prompt text put before every text.
    #[arg(long)]
    pub prompt_text: Option<String>,
}

impl PromptArgs {
    /// The prompt, checked (an unknown name is an error listing the known ones).
    pub fn prompt(&self) -> Result<Option<gemma_graph::Prompt>> {
        let prompt = match (&self.prompt, &self.prompt_text) {
            (Some(name), _) => Some(gemma_graph::Prompt::Name(name.clone())),
            (None, Some(text)) => Some(gemma_graph::Prompt::Text(text.clone())),
            (None, None) => None,
        };
        if let Some(p) = &prompt {
            p.text()?;
        }
        Ok(prompt)
    }
}

impl TextArgs {
    /// Every text, or the first bad record's error (for commands that need them all).
    pub fn read(&self) -> Result<Vec<String>> {
        let mut source = Source::open(self)?;
        let mut texts = Vec::new();
        while let Some(r) = source.next()? {
            match r.text {
                Ok(t) => texts.push(t),
                Err(e) => bail!("{}: {e}", source.place(r.number)),
            }
        }
        Ok(texts)
    }

    pub fn model_path(&self) -> PathBuf {
        model_path(self.model.clone())
    }
}

/// One input record: its text, or why it has none (a bad line that `--skip-invalid` may
/// skip), and the other fields of the record, copied to the output.
pub struct Record {
    /// 1-based line (for CSV, the line the record starts on), or argument number.
    pub number: usize,
    pub text: Result<String, String>,
    pub fields: Vec<(String, Value)>,
}

impl Record {
    /// Roughly the memory the record holds, its copied fields included (a JSONL line or CSV
    /// row of a million small fields costs tens of bytes per field beyond its text): what a
    /// window of records is bounded by.
    pub fn cost(&self) -> usize {
        fn value(v: &Value) -> usize {
            32 + match v {
                Value::String(s) => s.len(),
                Value::Array(a) => a.iter().map(value).sum(),
                Value::Object(m) => m.iter().map(|(k, v)| 48 + k.len() + value(v)).sum(),
                _ => 0,
            }
        }
        let text = self.text.as_ref().map_or_else(String::len, String::len);
        text + self.fields.iter().map(|(k, v)| 48 + k.len() + value(v)).sum::<usize>()
    }
}

/// Records from arguments or a file, in order.
pub struct Source {
    /// The file as named (`-` for stdin), or `None` for arguments.
    path: Option<PathBuf>,
    kind: Kind,
    read: Rc<Counter>,
    total_bytes: Option<u64>,
    pub format: Option<InputFormat>,
}

enum Kind {
    Args(std::vec::IntoIter<String>, usize),
    Jsonl(Lines, String),
    Lines(Lines),
    Csv(Box<csv::Reader<Box<dyn Read>>>, usize, Vec<String>),
}

impl Source {
    pub fn open(args: &TextArgs) -> Result<Source> {
        let max = args.max_text_bytes;
        let Some(path) = args.input.clone() else {
            if args.texts.is_empty() {
                bail!("no input: give TEXT arguments or --input FILE");
            }
            if let Some((i, t)) = args.texts.iter().enumerate().find(|(_, t)| t.len() > max) {
                bail!(
                    "text argument {} has {} bytes, more than --max-text-bytes {max}",
                    i + 1,
                    t.len()
                );
            }
            return Ok(Source {
                path: None,
                kind: Kind::Args(args.texts.clone().into_iter(), 0),
                read: Rc::default(),
                total_bytes: None,
                format: None,
            });
        };
        if !args.texts.is_empty() {
            bail!("give either TEXT arguments or --input, not both");
        }
        let stdin = path == Path::new("-");
        let (raw, total_bytes): (Box<dyn Read>, _) = if stdin {
            (Box::new(std::io::stdin().lock()), None)
        } else {
            if path.is_dir() {
                bail!("{} is a directory, not a text file", path.display());
            }
            let f = std::fs::File::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
            let len = f.metadata().ok().filter(|m| m.is_file()).map(|m| m.len());
            (Box::new(f), len)
        };
        let read = Rc::new(Counter::default());
        // CSV records may span lines; bound the bytes of one record (plus the reader's
        // read-ahead) instead.
        let counted = Counted {
            inner: raw,
            counter: read.clone(),
            limit: max as u64 + (64 << 10),
        };
        let mut reader = std::io::BufReader::new(counted);
        let format = match args.input_format.or_else(|| InputFormat::from_extension(&path)) {
            Some(f) => f,
            None => {
                let head = reader
                    .fill_buf()
                    .with_context(|| format!("reading {}", path.display()))?;
                let head = head.strip_prefix("\u{feff}".as_bytes()).unwrap_or(head);
                match head.iter().find(|b| !b.is_ascii_whitespace()) {
                    Some(b'{') => InputFormat::Jsonl,
                    _ => InputFormat::Lines,
                }
            }
        };
        let name = path.display().to_string();
        let kind = match format {
            InputFormat::Jsonl => Kind::Jsonl(Lines::new(reader, name, max), args.text_field.clone()),
            InputFormat::Lines => Kind::Lines(Lines::new(reader, name, max)),
            InputFormat::Csv | InputFormat::Tsv => {
                let mut csv = csv::ReaderBuilder::new()
                    .delimiter(if format == InputFormat::Csv { b',' } else { b'\t' })
                    .has_headers(true)
                    .from_reader(Box::new(reader) as Box<dyn Read>);
                let headers: Vec<String> = csv
                    .byte_headers()
                    .with_context(|| format!("{name} line 1: reading the header"))?
                    .iter()
                    .enumerate()
                    .map(|(i, h)| {
                        let h = String::from_utf8_lossy(h);
                        let h = if i == 0 { h.trim_start_matches('\u{feff}') } else { &h };
                        h.to_string()
                    })
                    .collect();
                let Some(col) = headers.iter().position(|h| *h == args.text_field) else {
                    bail!(
                        "{name} line 1: no column {:?} in the header (columns: {}); --text-field names the text column",
                        args.text_field,
                        headers.join(", ")
                    );
                };
                Kind::Csv(Box::new(csv), col, headers)
            }
        };
        Ok(Source {
            path: Some(path),
            kind,
            read,
            total_bytes,
            format: Some(format),
        })
    }

    /// "FILE line N" or "text argument N".
    pub fn place(&self, number: usize) -> String {
        match &self.path {
            Some(p) => format!("{} line {number}", p.display()),
            None => format!("text argument {number}"),
        }
    }

    /// Bytes read so far and the file's size, when it has one (for a progress bar).
    pub fn progress(&self) -> (u64, Option<u64>) {
        (self.read.total.get(), self.total_bytes)
    }

    /// The columns of a CSV/TSV input, text column included.
    pub fn columns(&self) -> Option<&[String]> {
        match &self.kind {
            Kind::Csv(_, _, h) => Some(h),
            _ => None,
        }
    }

    /// The next record; an error only for what makes the rest unreadable (I/O, a line past
    /// the length limit).
    pub fn next(&mut self) -> Result<Option<Record>> {
        self.read.mark();
        match &mut self.kind {
            Kind::Args(texts, n) => Ok(texts.next().map(|t| {
                *n += 1;
                Record {
                    number: *n,
                    text: Ok(t),
                    fields: Vec::new(),
                }
            })),
            Kind::Lines(lines) => Ok(lines.next_line()?.map(|(number, line)| Record {
                number,
                text: line.map(str::to_string),
                fields: Vec::new(),
            })),
            Kind::Jsonl(lines, field) => {
                let Some((number, line)) = lines.next_line()? else {
                    return Ok(None);
                };
                Ok(Some(match line {
                    Err(e) => Record {
                        number,
                        text: Err(e),
                        fields: Vec::new(),
                    },
                    Ok(line) => json_record(number, line, field),
                }))
            }
            Kind::Csv(csv, col, headers) => {
                let mut record = csv::ByteRecord::new();
                let more = csv.read_byte_record(&mut record);
                let number = record.position().map_or(0, |p| p.line() as usize);
                match more {
                    Ok(false) => Ok(None),
                    Ok(true) => Ok(Some(csv_record(number, &record, *col, headers))),
                    Err(e) => match e.kind() {
                        csv::ErrorKind::UnequalLengths { pos, expected_len, len } => Ok(Some(Record {
                            number: pos.as_ref().map_or(number, |p| p.line() as usize),
                            text: Err(format!("{len} columns where the header has {expected_len}")),
                            fields: Vec::new(),
                        })),
                        _ => Err(anyhow::anyhow!(
                            "{}: {e}",
                            self.path.as_deref().unwrap_or(Path::new("-")).display()
                        )),
                    },
                }
            }
        }
    }
}

fn json_record(number: usize, line: &str, field: &str) -> Record {
    let bad = |text: String| Record {
        number,
        text: Err(text),
        fields: Vec::new(),
    };
    if line.trim().is_empty() {
        return bad(format!(
            "empty line; every line must be a JSON object with a string field {field:?}"
        ));
    }
    let value: Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(e) => return bad(format!("not valid JSON ({e})")),
    };
    let Value::Object(map) = value else {
        return bad(format!("expected an object with a string field {field:?}"));
    };
    let mut text = None;
    let mut fields = Vec::new();
    for (k, v) in map {
        if k == field {
            text = Some(v);
        } else {
            fields.push((k, v));
        }
    }
    match text {
        Some(Value::String(t)) => Record {
            number,
            text: Ok(t),
            fields,
        },
        Some(other) => Record {
            number,
            text: Err(format!("field {field:?} is {}, not a string", kind_of(&other))),
            fields,
        },
        None => Record {
            number,
            text: Err(format!("no field {field:?} (--text-field names the text field)")),
            fields,
        },
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn csv_record(number: usize, record: &csv::ByteRecord, col: usize, headers: &[String]) -> Record {
    let mut fields = Vec::new();
    let mut text = Err("no text column".to_string());
    for (i, (cell, name)) in record.iter().zip(headers).enumerate() {
        let cell = std::str::from_utf8(cell).map_err(|e| {
            format!(
                "column {name:?} is not valid UTF-8 (at byte {} of the cell)",
                e.valid_up_to()
            )
        });
        if i == col {
            text = cell.map(str::to_string);
        } else if let Ok(c) = cell {
            fields.push((name.clone(), Value::String(c.to_string())));
        }
    }
    Record { number, text, fields }
}

/// Bytes read from the input: all of them, and since the last record began.
#[derive(Default)]
struct Counter {
    total: Cell<u64>,
    mark: Cell<u64>,
}

impl Counter {
    fn mark(&self) {
        self.mark.set(self.total.get());
    }
}

/// The raw input, counted; more than `limit` bytes within one record is an error (a CSV
/// record is read whole, however many lines it spans).
struct Counted {
    inner: Box<dyn Read>,
    counter: Rc<Counter>,
    limit: u64,
}

impl Read for Counted {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let c = &self.counter;
        c.total.set(c.total.get() + n as u64);
        if c.total.get() - c.mark.get() > self.limit {
            return Err(std::io::Error::other(format!(
                "a record longer than --max-text-bytes {} bytes",
                self.limit - (64 << 10)
            )));
        }
        Ok(n)
    }
}

/// Lines of an input, each at most `max` bytes, without the line ending (LF or CRLF) and
/// without a UTF-8 byte-order mark on the first line; a line that is not UTF-8 is an `Err`
/// naming the byte (the caller decides whether that ends the job).
pub struct Lines {
    reader: Box<dyn BufRead>,
    name: String,
    max: usize,
    buf: Vec<u8>,
    number: usize,
}

impl Lines {
    fn new(reader: impl BufRead + 'static, name: String, max: usize) -> Lines {
        Lines {
            reader: Box::new(reader),
            name,
            max,
            buf: Vec::new(),
            number: 0,
        }
    }

    /// The next line and its 1-based number, or `None` at the end.
    pub fn next_line(&mut self) -> Result<Option<(usize, Result<&str, String>)>> {
        self.buf.clear();
        self.number += 1;
        let n = self.number;
        // One byte past the limit (plus the newline) tells an overlong line from a full one.
        let limit = self.max as u64 + 2;
        let read = (&mut self.reader)
            .take(limit)
            .read_until(b'\n', &mut self.buf)
            .with_context(|| format!("{}: reading line {n}", self.name))?;
        if read == 0 {
            return Ok(None);
        }
        if self.buf.last() == Some(&b'\n') {
            self.buf.pop();
            if self.buf.last() == Some(&b'\r') {
                self.buf.pop();
            }
        }
        if self.buf.len() > self.max {
            bail!(
                "{} line {n}: longer than --max-text-bytes {} bytes",
                self.name,
                self.max
            );
        }
        let mut bytes = &self.buf[..];
        if n == 1 {
            bytes = bytes.strip_prefix("\u{feff}".as_bytes()).unwrap_or(bytes);
        }
        let line = std::str::from_utf8(bytes)
            .map_err(|e| format!("not valid UTF-8 (at byte {} of the line)", e.valid_up_to()));
        Ok(Some((n, line)))
    }
}

/// `--model` default: `$GEMMA_GRAPH_MODEL`, else the fetched model in the cache.
pub fn model_path(arg: Option<std::path::PathBuf>) -> std::path::PathBuf {
    arg.unwrap_or_else(gemma_graph::default_model_path)
}
