//! The `Host` header check: a guard against DNS rebinding.
//!
//! A page on `evil.example` can make its name resolve to 127.0.0.1 and then call a server on
//! the user's machine as its own origin: no CORS check applies, and without an API key the
//! server answers. The browser still sends `Host: evil.example`, so a server bound to loopback
//! accepts only loopback names by default. Bound to another address, any host is accepted
//! unless `--allowed-host` lists them (a reverse proxy's name, the machine's name).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

use crate::error::ApiError;

pub enum Rule {
    Any,
    /// Lower-case names (no port) and addresses accepted.
    Only(Vec<String>),
}

const LOOPBACK_NAMES: &[&str] = &["localhost", "127.0.0.1", "::1"];

impl Rule {
    pub fn new(allowed: &[String], local: SocketAddr) -> Result<Rule, String> {
        if allowed.iter().any(|h| h == "*") {
            if allowed.len() > 1 {
                return Err("--allowed-host: `*` allows every host; give it alone or list hosts".into());
            }
            return Ok(Rule::Any);
        }
        if allowed.is_empty() && !local.ip().is_loopback() {
            return Ok(Rule::Any);
        }
        let mut names: Vec<String> = LOOPBACK_NAMES.iter().map(|s| s.to_string()).collect();
        names.push(local.ip().to_string());
        for h in allowed {
            let h = h.trim().to_ascii_lowercase();
            if h.is_empty() || h.contains(['/', ' ', '@']) {
                return Err(format!("--allowed-host {h:?}: not a host name"));
            }
            names.push(h.trim_start_matches('[').trim_end_matches(']').to_string());
        }
        Ok(Rule::Only(names))
    }

    fn allows(&self, host: &str) -> bool {
        match self {
            Rule::Any => true,
            Rule::Only(names) => {
                let name = host_name(host).to_ascii_lowercase();
                names.contains(&name)
                    || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
                    || name.ends_with(".localhost")
            }
        }
    }
}

/// `name:port`, `[v6]:port`, `name` or `[v6]` → the name or address without port/brackets.
fn host_name(host: &str) -> &str {
    let host = host.trim();
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("");
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

pub async fn check(State(rule): State<Arc<Rule>>, request: Request, next: Next) -> Response {
    if matches!(*rule, Rule::Any) {
        return next.run(request).await;
    }
    let path = request.uri().path().to_string();
    let host = request
        .headers()
        .get(header::HOST)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .or_else(|| request.uri().authority().map(|a| a.to_string()));
    match host {
        Some(h) if rule.allows(&h) => next.run(request).await,
        host => crate::error::refuse(
            &path,
            ApiError::new(
                StatusCode::MISDIRECTED_REQUEST,
                "invalid_request_error",
                "host_not_allowed",
                match host {
                    Some(h) => format!(
                        "Host {h:?} is not one this server answers (it listens on loopback; --allowed-host adds names)"
                    ),
                    None => "the request has no Host header".to_string(),
                },
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_servers_answer_loopback_names_only() {
        let rule = Rule::new(&[], "127.0.0.1:8080".parse().unwrap()).unwrap();
        for ok in [
            "localhost:8080",
            "127.0.0.1",
            "[::1]:80",
            "LOCALHOST",
            "127.0.0.2:1",
            "app.localhost",
        ] {
            assert!(rule.allows(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:8080",
            "localhost.evil.example",
            "10.0.0.1",
            "",
        ] {
            assert!(!rule.allows(bad), "{bad}");
        }
        let rule = Rule::new(&["Proxy.Internal".into()], "127.0.0.1:8080".parse().unwrap()).unwrap();
        assert!(rule.allows("proxy.internal:443"));
        assert!(matches!(
            Rule::new(&[], "0.0.0.0:80".parse().unwrap()).unwrap(),
            Rule::Any
        ));
        assert!(Rule::new(&["*".into(), "a".into()], "127.0.0.1:1".parse().unwrap()).is_err());
    }
}
