//! Conditional and range requests on stored files: `If-None-Match` → 304, `Range` (one
//! range; `If-Range` honoured) → 206 or 416. Several ranges get the whole file, which the
//! HTTP spec allows.

use axum::http::{HeaderMap, header};
use std::ops::Range;

/// What a request for a file of `size` bytes tagged `etag` gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    NotModified,
    Whole,
    Part(Range<u64>),
    Unsatisfiable,
}

pub fn answer(headers: &HeaderMap, etag: &str, size: u64) -> Answer {
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(tags) = text(header::IF_NONE_MATCH) {
        if tags
            .split(',')
            .map(|t| t.trim().trim_start_matches("W/"))
            .any(|t| t == "*" || t == etag)
        {
            return Answer::NotModified;
        }
    }
    let Some(range) = text(header::RANGE) else {
        return Answer::Whole;
    };
    // A range for another version of the file is ignored: the client gets the whole file.
    if text(header::IF_RANGE).is_some_and(|tag| tag.trim() != etag) {
        return Answer::Whole;
    }
    // An unreadable Range header is ignored, as the spec says.
    let Ok(parsed) = http_range_header::parse_range_header(range) else {
        return Answer::Whole;
    };
    match parsed.validate(size).as_deref() {
        Ok([one]) if one.start() <= one.end() && *one.end() < size => {
            Answer::Part(*one.start()..one.end() + 1)
        }
        Ok(_) => Answer::Whole,
        Err(_) => Answer::Unsatisfiable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with(pairs: &[(header::HeaderName, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(name.clone(), HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn conditional_and_range_requests() {
        let tag = "\"abc\"";
        assert_eq!(answer(&HeaderMap::new(), tag, 100), Answer::Whole);
        assert_eq!(
            answer(
                &with(&[(header::IF_NONE_MATCH, "\"x\", W/\"abc\"")]),
                tag,
                100
            ),
            Answer::NotModified
        );
        assert_eq!(
            answer(&with(&[(header::IF_NONE_MATCH, "\"x\"")]), tag, 100),
            Answer::Whole
        );
        assert_eq!(
            answer(&with(&[(header::RANGE, "bytes=10-19")]), tag, 100),
            Answer::Part(10..20)
        );
        assert_eq!(
            answer(&with(&[(header::RANGE, "bytes=90-")]), tag, 100),
            Answer::Part(90..100)
        );
        assert_eq!(
            answer(&with(&[(header::RANGE, "bytes=-5")]), tag, 100),
            Answer::Part(95..100)
        );
        assert_eq!(
            answer(&with(&[(header::RANGE, "bytes=50-500")]), tag, 100),
            Answer::Part(50..100)
        );
        assert_eq!(
            answer(&with(&[(header::RANGE, "bytes=200-300")]), tag, 100),
            Answer::Unsatisfiable
        );
        assert_eq!(
            answer(&with(&[(header::RANGE, "bytes=0-1, 5-6")]), tag, 100),
            Answer::Whole
        );
        assert_eq!(
            answer(&with(&[(header::RANGE, "pages=1")]), tag, 100),
            Answer::Whole
        );
        assert_eq!(
            answer(
                &with(&[(header::RANGE, "bytes=0-9"), (header::IF_RANGE, "\"old\"")]),
                tag,
                100
            ),
            Answer::Whole
        );
    }
}
