//! Who may call and who is calling: the API key check and request ids, shared by the HTTP
//! layers and the gRPC interceptor.

use std::sync::atomic::{AtomicU64, Ordering};

/// Equal in time independent of where the strings differ (their lengths may show).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The credentials of an `Authorization: Bearer <token>` header value; the scheme is matched
/// case-insensitively, as RFC 7235 says (`bearer KEY` is as valid as `Bearer KEY`).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim_start().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The `authorization` header (HTTP) or metadata (gRPC) against the API key: `Bearer KEY`,
/// compared in constant time; the error says what is wrong.
pub(crate) fn check_key(key: &str, authorization: Option<&str>) -> Result<(), &'static str> {
    match authorization.and_then(bearer_token) {
        Some(token) if constant_time_eq(token.as_bytes(), key.as_bytes()) => Ok(()),
        Some(_) => Err("invalid API key"),
        None => Err("missing API key: send `Authorization: Bearer <key>`"),
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A request's id: the client's `x-request-id` if it is sane (1–128 visible ASCII), else the
/// next of a counter. HTTP and gRPC alike.
pub(crate) fn request_id(given: Option<&str>) -> String {
    given
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(|| format!("gg-{:x}", NEXT_ID.fetch_add(1, Ordering::Relaxed)))
}
