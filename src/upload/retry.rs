//! The retry decision, as data: given what one attempt produced, is it done, worth retrying
//! (not before when, and what the failure says about the API: down now, one failed attempt, or
//! nothing at all), a key problem, or a permanent refusal of this file? No network, no clock of
//! its own, no sleeping: the API's outage state lives in `outage.rs`, a file's own retry delay
//! in `pending.rs`.

use std::time::{Duration, SystemTime};

/// What one HTTP attempt produced.
#[derive(Debug, Clone)]
pub enum Attempt {
    Response {
        status: u16,
        retry_after: Option<String>,
        content_type: Option<String>,
        /// The start of the body (bounded), for messages and result ids.
        body: String,
    },
    /// No response: connection refused or reset, DNS, TLS, timeout.
    Transport {
        message: String,
        timeout: bool,
        /// No connection could be made (refused, DNS, TLS, connect timeout): nothing reached
        /// the API.
        connect: bool,
    },
    /// The queued copy no longer matches what was validated; the request was cut short.
    Damaged { reason: String },
    /// Not the API's doing and not the file's fault (the queued copy cannot be opened right
    /// now, an answer came before the whole file was sent): tried again after the backoff.
    Local { message: String },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Success {
        result_id: Option<String>,
    },
    Retry {
        after: Option<Duration>,
        reason: String,
        failure: Failure,
    },
    /// 401/403: the key is wrong or revoked. Nothing is dropped; uploads pause.
    Unauthorized {
        status: u16,
        message: String,
    },
    /// Any other 4xx: this file will never be accepted as it is.
    Permanent {
        status: u16,
        message: String,
    },
    /// Not the file that was validated any more (damaged in `queue/`): never to be sent.
    Damaged {
        reason: String,
    },
}

/// What a failed attempt worth retrying says about the API, for its outage state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The API says or shows it is down: 429, any `Retry-After`, no connection at all. It counts
    /// as down at once: one request at a time probes it.
    Down,
    /// One failed attempt (5xx, 408, a timeout, a reset mid-request, a page from something in
    /// the way): one random failure among successes is a blip, three in a row an outage. A
    /// timeout is not "down at once": one slow answer (a large file, a busy moment) says
    /// little; a reset mid-request neither: a connection was made.
    Attempt,
    /// Not the API's doing (the queued copy cannot be read right now, an answer came before the
    /// whole file was sent): this file waits, the API's state is untouched.
    Local,
}

pub fn classify(attempt: &Attempt, now: SystemTime) -> Decision {
    let (status, retry_after, content_type, body) = match attempt {
        Attempt::Transport {
            message,
            timeout,
            connect,
        } => {
            return Decision::Retry {
                after: None,
                reason: if *timeout {
                    format!("timed out: {message}")
                } else {
                    format!("could not reach the API: {message}")
                },
                failure: if *connect {
                    Failure::Down
                } else {
                    Failure::Attempt
                },
            }
        }
        Attempt::Damaged { reason } => {
            return Decision::Damaged {
                reason: reason.clone(),
            }
        }
        Attempt::Local { message } => {
            return Decision::Retry {
                after: None,
                reason: message.clone(),
                failure: Failure::Local,
            }
        }
        Attempt::Response {
            status,
            retry_after,
            content_type,
            body,
        } => (*status, retry_after, content_type.as_deref(), body.as_str()),
    };
    let message = server_message(status, content_type, body);
    match status {
        200..=299 => {
            if looks_like_html(content_type, body) {
                // A 2xx HTML page is a proxy or captive portal, not HostedScan: keep the file.
                return Decision::Retry {
                    after: None,
                    reason: format!("HTTP {status} with an HTML page instead of the API's JSON (a proxy in the way?)"),
                    failure: Failure::Attempt,
                };
            }
            Decision::Success {
                result_id: result_id(body),
            }
        }
        401 | 403 => Decision::Unauthorized { status, message },
        408 | 429 | 500 | 502..=599 => {
            let after = retry_after
                .as_deref()
                .and_then(|h| parse_retry_after(h, now));
            Decision::Retry {
                after,
                reason: format!("HTTP {status}: {message}"),
                // Asked to slow down, or told when to come back: the API speaks for itself.
                failure: if status == 429 || after.is_some() {
                    Failure::Down
                } else {
                    Failure::Attempt
                },
            }
        }
        400..=499 | 501 => Decision::Permanent { status, message },
        // 1xx/3xx (redirects are not followed: the key must not travel to another host).
        _ => Decision::Retry {
            after: None,
            reason: format!("unexpected HTTP {status}: {message} (is api.url right?)"),
            failure: Failure::Attempt,
        },
    }
}

/// `Retry-After` as seconds or an HTTP date.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

fn looks_like_html(content_type: Option<&str>, body: &str) -> bool {
    content_type.is_some_and(|c| c.contains("html")) || body.trim_start().get(..1) == Some("<")
}

/// The server's own words: `{"error": "..."}` when it sends that, else a short description.
pub fn server_message(status: u16, content_type: Option<&str>, body: &str) -> String {
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(body) {
        for k in ["error", "message", "detail"] {
            if let Some(s) = v.get(k).and_then(|e| e.as_str()) {
                return s.to_string();
            }
        }
        if let Some(s) = v.pointer("/error/message").and_then(|e| e.as_str()) {
            return s.to_string();
        }
    }
    if looks_like_html(content_type, body) {
        return format!("an HTML page instead of JSON (status {status})");
    }
    let t: String = body.trim().chars().take(200).collect();
    if t.is_empty() {
        http_reason(status).to_string()
    } else {
        t
    }
}

fn http_reason(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "no message",
    }
}

fn result_id(body: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    let id = v.pointer("/data/id").or_else(|| v.get("id"))?;
    match id {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, retry_after: Option<&str>, body: &str) -> Attempt {
        Attempt::Response {
            status,
            retry_after: retry_after.map(String::from),
            content_type: Some("application/json".into()),
            body: body.into(),
        }
    }

    #[test]
    fn success_keeps_the_result_id() {
        let d = classify(
            &resp(200, None, r#"{"data":{"id":"abc"}}"#),
            SystemTime::now(),
        );
        assert_eq!(
            d,
            Decision::Success {
                result_id: Some("abc".into())
            }
        );
    }

    #[test]
    fn retryable_statuses_are_retried_and_others_are_permanent() {
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(
                matches!(
                    classify(&resp(s, None, "{}"), SystemTime::now()),
                    Decision::Retry { .. }
                ),
                "{s}"
            );
        }
        for s in [400, 404, 409, 413, 422, 501] {
            assert!(
                matches!(
                    classify(&resp(s, None, "{}"), SystemTime::now()),
                    Decision::Permanent { .. }
                ),
                "{s}"
            );
        }
        for s in [401, 403] {
            assert!(
                matches!(
                    classify(&resp(s, None, "{}"), SystemTime::now()),
                    Decision::Unauthorized { .. }
                ),
                "{s}"
            );
        }
    }

    fn transport(timeout: bool, connect: bool) -> Attempt {
        Attempt::Transport {
            message: "connection refused or reset".into(),
            timeout,
            connect,
        }
    }

    fn failure(d: Decision) -> Failure {
        match d {
            Decision::Retry { failure, .. } => failure,
            d => panic!("not retried: {d:?}"),
        }
    }

    #[test]
    fn transport_errors_are_retried() {
        let d = classify(&transport(false, false), SystemTime::now());
        assert!(matches!(d, Decision::Retry { after: None, .. }));
    }

    #[test]
    fn what_says_the_api_is_down_at_once_and_what_is_one_failed_attempt() {
        let now = SystemTime::now();
        // Down at once: 429 (with or without Retry-After), any Retry-After, no connection.
        for a in [
            resp(429, None, "{}"),
            resp(429, Some("3"), "{}"),
            resp(503, Some("3"), "{}"),
            resp(408, Some("1"), "{}"),
            transport(false, true),
            transport(true, true),
        ] {
            assert_eq!(failure(classify(&a, now)), Failure::Down, "{a:?}");
        }
        // One failed attempt: a 5xx or 408 without Retry-After, a timeout or a reset once
        // connected, a 2xx HTML page, an unexpected 3xx; an unparsable Retry-After is none.
        for a in [
            resp(500, None, "{}"),
            resp(502, None, "{}"),
            resp(503, None, "{}"),
            resp(504, None, "{}"),
            resp(408, None, "{}"),
            resp(503, Some("soon"), "{}"),
            resp(302, None, ""),
            transport(true, false),
            transport(false, false),
            Attempt::Response {
                status: 200,
                retry_after: None,
                content_type: Some("text/html".into()),
                body: "<html>login</html>".into(),
            },
        ] {
            assert_eq!(failure(classify(&a, now)), Failure::Attempt, "{a:?}");
        }
        let local = Attempt::Local {
            message: "cannot open queued file".into(),
        };
        assert_eq!(failure(classify(&local, now)), Failure::Local);
    }

    #[test]
    fn retry_after_in_seconds_and_as_a_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(30))
        );
        let d = classify(&resp(429, Some("12"), "{}"), now);
        assert!(
            matches!(d, Decision::Retry { after: Some(a), .. } if a == Duration::from_secs(12))
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn the_servers_error_message_is_kept_for_failed_files() {
        let d = classify(
            &resp(400, None, r#"{"error":"scan_type is invalid"}"#),
            SystemTime::now(),
        );
        assert_eq!(
            d,
            Decision::Permanent {
                status: 400,
                message: "scan_type is invalid".into()
            }
        );
    }

    #[test]
    fn html_answers_are_described_not_dumped() {
        let a = Attempt::Response {
            status: 502,
            retry_after: None,
            content_type: Some("text/html".into()),
            body: "<html>bad gateway</html>".into(),
        };
        match classify(&a, SystemTime::now()) {
            Decision::Retry { reason, .. } => assert!(reason.contains("HTML page"), "{reason}"),
            d => panic!("{d:?}"),
        }
        let ok_html = Attempt::Response {
            status: 200,
            retry_after: None,
            content_type: Some("text/html".into()),
            body: "<html>login</html>".into(),
        };
        assert!(matches!(
            classify(&ok_html, SystemTime::now()),
            Decision::Retry { .. }
        ));
    }
}
