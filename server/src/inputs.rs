//! The inputs of an embedding request, shared by the OpenAI and TEI routes: texts or token-id
//! arrays, with errors naming the offending element.
//!
//! Read straight from the JSON into strings and `u32` ids ([`RawInput`]'s visitor), never
//! through `serde_json::Value`: a `Value` costs 32 bytes and more per element, so a 16 MB body
//! of token ids grew to 640 MB; read this way ids cost 4 bytes each (at most twice the body).

use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde::Deserialize;

use gemma_graph::{Prompt, Sequence, Truncation};

use crate::api::{self, AppState, Owned};
use crate::error::ApiError;

/// What a request asks to embed.
pub enum Inputs {
    Texts(Vec<String>),
    Tokens(Vec<Vec<u32>>),
}

/// The request field as read: its inputs, or the first thing wrong with its shape (reported
/// with the field's name once the request is parsed).
#[derive(Debug)]
pub enum RawInput {
    Text(String),
    Texts(Vec<String>),
    Ids(Vec<u32>),
    IdArrays(Vec<Vec<u32>>),
    Bad(Shape),
}

/// Why an input field has the wrong shape; `at` is the element's path (`[3]`, `[3][4]`).
#[derive(Debug)]
pub enum Shape {
    NotStringOrArray(&'static str),
    Empty,
    Element {
        at: String,
        want: &'static str,
        got: String,
    },
    IdTooLarge {
        at: String,
        id: u64,
    },
    /// More elements than the request may hold: counted, not kept.
    TooMany(usize),
}

/// A JSON value's kind, as messages name it.
fn kind(v: de::Unexpected<'_>) -> String {
    match v {
        de::Unexpected::Bool(_) => "a boolean".into(),
        de::Unexpected::Unsigned(_) | de::Unexpected::Signed(_) | de::Unexpected::Float(_) => "a number".into(),
        de::Unexpected::Str(_) | de::Unexpected::Char(_) => "a string".into(),
        de::Unexpected::Unit | de::Unexpected::Option => "null".into(),
        de::Unexpected::Seq => "an array".into(),
        de::Unexpected::Map => "an object".into(),
        other => other.to_string(),
    }
}

/// One element of the outer array: its shape decides what the rest must be.
enum Element {
    Text(String),
    Id(Result<u32, String>),
    Ids(Result<Vec<u32>, (usize, String)>),
    Other(String),
}

impl<'de> Deserialize<'de> for Element {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ElementVisitor)
    }
}

struct ElementVisitor;

impl<'de> Visitor<'de> for ElementVisitor {
    type Value = Element;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string, a token id or an array of token ids")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Element, E> {
        Ok(Element::Text(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Element, E> {
        Ok(Element::Text(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Element, E> {
        Ok(Element::Id(u32::try_from(v).map_err(|_| v.to_string())))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Element, E> {
        Ok(if v >= 0 {
            Element::Id(u32::try_from(v).map_err(|_| v.to_string()))
        } else {
            Element::Other(format!("{v}"))
        })
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Element, E> {
        Ok(Element::Other(format!("{v}")))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Element, E> {
        Ok(Element::Other(kind(de::Unexpected::Bool(v))))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Element, E> {
        Ok(Element::Other("null".into()))
    }
    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Element, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Element::Other("an object".into()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Element, A::Error> {
        let mut ids = Vec::new();
        let mut bad = None;
        while let Some(e) = seq.next_element::<Element>()? {
            if bad.is_some() {
                continue;
            }
            match e {
                Element::Id(Ok(id)) => ids.push(id),
                Element::Id(Err(id)) => bad = Some((ids.len(), format!("id {id}"))),
                Element::Text(_) => bad = Some((ids.len(), "a string".into())),
                Element::Ids(_) => bad = Some((ids.len(), "an array".into())),
                Element::Other(what) => bad = Some((ids.len(), what)),
            }
        }
        Ok(Element::Ids(bad.map_or(Ok(ids), Err)))
    }
}

impl<'de> Deserialize<'de> for RawInput {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(InputVisitor)
    }
}

struct InputVisitor;

impl<'de> Visitor<'de> for InputVisitor {
    type Value = RawInput;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string or an array")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<RawInput, E> {
        Ok(RawInput::Text(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<RawInput, E> {
        Ok(RawInput::Text(v))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<RawInput, E> {
        Ok(RawInput::Bad(Shape::NotStringOrArray("a number")))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<RawInput, E> {
        Ok(RawInput::Bad(Shape::NotStringOrArray("a number")))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<RawInput, E> {
        Ok(RawInput::Bad(Shape::NotStringOrArray("a number")))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<RawInput, E> {
        Ok(RawInput::Bad(Shape::NotStringOrArray("a boolean")))
    }
    fn visit_unit<E: de::Error>(self) -> Result<RawInput, E> {
        Ok(RawInput::Bad(Shape::NotStringOrArray("null")))
    }
    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<RawInput, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(RawInput::Bad(Shape::NotStringOrArray("an object")))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawInput, A::Error> {
        let Some(first) = seq.next_element::<Element>()? else {
            return Ok(RawInput::Bad(Shape::Empty));
        };
        // The first element fixes the shape; the first element that breaks it is reported,
        // and the rest is read without being kept.
        let mut bad: Option<Shape> = None;
        let mut out = match first {
            Element::Text(t) => RawInput::Texts(vec![t]),
            Element::Id(Ok(id)) => RawInput::Ids(vec![id]),
            Element::Ids(Ok(ids)) => RawInput::IdArrays(vec![ids]),
            Element::Id(Err(id)) => {
                bad = Some(Shape::IdTooLarge {
                    at: "[0]".into(),
                    id: id.parse().unwrap_or(u64::MAX),
                });
                RawInput::Ids(Vec::new())
            }
            Element::Ids(Err((j, got))) => {
                bad = Some(element_error("[0]", j, got));
                RawInput::IdArrays(Vec::new())
            }
            Element::Other(got) => {
                bad = Some(Shape::Element {
                    at: "[0]".into(),
                    want: "a string, a token id or an array of token ids",
                    got,
                });
                RawInput::Texts(Vec::new())
            }
        };
        // The cap is on inputs: a flat array of ids is one input, bounded by the body alone.
        let max = api::max_inputs();
        let mut i = 1usize;
        while i < max.max(1) || matches!(out, RawInput::Ids(_)) {
            let Some(e) = seq.next_element::<Element>()? else {
                return Ok(bad.map_or(out, RawInput::Bad));
            };
            if bad.is_none() {
                let at = format!("[{i}]");
                match (&mut out, e) {
                    (RawInput::Texts(v), Element::Text(t)) => v.push(t),
                    (RawInput::Ids(v), Element::Id(Ok(id))) => v.push(id),
                    (RawInput::IdArrays(v), Element::Ids(Ok(ids))) => v.push(ids),
                    (RawInput::Ids(_), Element::Id(Err(id))) => {
                        bad = Some(Shape::IdTooLarge {
                            at,
                            id: id.parse().unwrap_or(u64::MAX),
                        })
                    }
                    (RawInput::IdArrays(_), Element::Ids(Err((j, got)))) => bad = Some(element_error(&at, j, got)),
                    (shape, e) => {
                        let want = match shape {
                            RawInput::Texts(_) => "a string like [0]",
                            RawInput::Ids(_) => "a non-negative integer token id",
                            _ => "an array of token ids like [0]",
                        };
                        let got = match e {
                            Element::Text(_) => "a string".into(),
                            Element::Id(_) => "a number".into(),
                            Element::Ids(_) => "an array".into(),
                            Element::Other(got) => got,
                        };
                        bad = Some(Shape::Element { at, want, got });
                    }
                }
            }
            i += 1;
        }
        // At the cap: count the rest without keeping it.
        while seq.next_element::<IgnoredAny>()?.is_some() {
            i += 1;
        }
        Ok(if i > max {
            RawInput::Bad(Shape::TooMany(i))
        } else {
            bad.map_or(out, RawInput::Bad)
        })
    }
}

/// Element `[j]` of the token array at `at` is `got` (a non-id, or an id past `u32`).
fn element_error(at: &str, j: usize, got: String) -> Shape {
    match got.strip_prefix("id ") {
        Some(id) => Shape::IdTooLarge {
            at: format!("{at}[{j}]"),
            id: id.parse().unwrap_or(u64::MAX),
        },
        None => Shape::Element {
            at: format!("{at}[{j}]"),
            want: "a non-negative integer token id",
            got,
        },
    }
}

impl RawInput {
    /// How many inputs the field holds (a flat id array is one).
    fn count(&self) -> usize {
        match self {
            RawInput::Bad(Shape::TooMany(n)) => *n,
            RawInput::Text(_) | RawInput::Ids(_) | RawInput::Bad(_) => 1,
            RawInput::Texts(v) => v.len(),
            RawInput::IdArrays(v) => v.len(),
        }
    }
}

/// `field` (OpenAI's `input`, TEI's `inputs`): a string, an array of strings, an array of token
/// ids, or an array of those.
pub fn parse_input(field: &str, input: Option<RawInput>, max_inputs: usize) -> Result<Inputs, ApiError> {
    let bad = |what: String| ApiError::invalid("invalid_input", what);
    let input = input.ok_or_else(|| bad(format!("`{field}` is required")))?;
    let count = input.count();
    if count > max_inputs || matches!(input, RawInput::Bad(Shape::TooMany(_))) {
        return Err(ApiError::too_large(
            "too_many_inputs",
            format!("`{field}` has {count} items, more than {max_inputs} per request (--max-inputs)"),
        ));
    }
    match input {
        RawInput::Text(t) => Ok(Inputs::Texts(vec![t])),
        RawInput::Texts(v) => Ok(Inputs::Texts(v)),
        RawInput::Ids(ids) => Ok(Inputs::Tokens(vec![ids])),
        RawInput::IdArrays(v) => Ok(Inputs::Tokens(v)),
        RawInput::Bad(Shape::NotStringOrArray(got)) => {
            Err(bad(format!("`{field}` must be a string or an array, not {got}")))
        }
        RawInput::Bad(Shape::Empty | Shape::TooMany(_)) => Err(bad(format!("`{field}` is an empty array"))),
        RawInput::Bad(Shape::Element { at, want, got }) => Err(bad(format!(
            "{field}{at} must be {}, not {got}",
            want.replace("[0]", &format!("{field}[0]"))
        ))),
        RawInput::Bad(Shape::IdTooLarge { at, id }) => Err(ApiError::invalid(
            "invalid_token_id",
            format!("{field}{at}: token id {id} is outside the vocabulary"),
        )),
    }
}

/// Texts only (`/tokenize`): a string or an array of strings.
pub fn parse_texts(field: &str, input: Option<RawInput>, max_inputs: usize) -> Result<Vec<String>, ApiError> {
    match parse_input(field, input, max_inputs)? {
        Inputs::Texts(v) => Ok(v),
        Inputs::Tokens(_) => Err(ApiError::invalid(
            "invalid_input",
            format!("`{field}` must be a string or an array of strings"),
        )),
    }
}

impl Inputs {
    /// Each input as a sequence, by the library's rules (a prompt on token arrays, a token id
    /// outside the vocabulary, a sequence past the context with truncation off: 400s naming the
    /// input).
    /// The texts, for routes that need text (chunking); token ids are refused naming `field`.
    pub fn texts(self, field: &str, why: &str) -> Result<Vec<String>, ApiError> {
        match self {
            Inputs::Texts(t) => Ok(t),
            Inputs::Tokens(_) => Err(ApiError::invalid(
                "invalid_input",
                format!("`{field}` must be text for {why}, not token ids"),
            )),
        }
    }

    pub async fn into_sequences(
        self,
        state: &AppState,
        prompt: Option<Prompt>,
        truncation: Truncation,
    ) -> Result<Vec<Sequence>, ApiError> {
        let owned = match self {
            Inputs::Texts(texts) => texts.into_iter().map(Owned::Text).collect(),
            // Ids outside the vocabulary are the library's to refuse, naming the input.
            Inputs::Tokens(arrays) => arrays.into_iter().map(Owned::Tokens).collect(),
        };
        api::sequences(state, owned, api::input_options(state, prompt, truncation)).await
    }
}

/// The input field's schema in /openapi.json: what the visitor above accepts.
impl utoipa::PartialSchema for RawInput {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Type};
        let string = || ObjectBuilder::new().schema_type(Type::String);
        let id = || ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(0));
        OneOfBuilder::new()
            .item(string().description(Some("one text")))
            .item(ArrayBuilder::new().items(string()).description(Some("texts")))
            .item(
                ArrayBuilder::new()
                    .items(id())
                    .description(Some("one text's token ids")),
            )
            .item(
                ArrayBuilder::new()
                    .items(ArrayBuilder::new().items(id()))
                    .description(Some("several texts' token ids")),
            )
            .into()
    }
}

impl utoipa::ToSchema for RawInput {}
