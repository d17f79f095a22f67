//! Request headers of WebDAV: Depth (RFC 4918 §10.2), If-Match / If-None-Match (RFC 9110
//! §13.1), Overwrite (§10.6), Destination (§10.3), Prefer (RFC 8144) and Brief. Garbage in any
//! of them is a 400, never a guess.

use super::{DavError, DavResult};
use crate::store::{EtagMatch, Precondition};
use axum::http::HeaderMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    Zero,
    One,
    Infinity,
}

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> DavResult<Option<&'a str>> {
    match h.get(name) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(|s| Some(s.trim()))
            .map_err(|_| DavError::BadRequest(format!("{name} header is not visible ASCII"))),
    }
}

/// The Depth header, or `default` when absent.
pub fn depth(h: &HeaderMap, default: Depth) -> DavResult<Depth> {
    match header_str(h, "depth")? {
        None => Ok(default),
        Some("0") => Ok(Depth::Zero),
        Some("1") => Ok(Depth::One),
        Some(v) if v.eq_ignore_ascii_case("infinity") => Ok(Depth::Infinity),
        Some(v) => Err(DavError::BadRequest(format!("invalid Depth header {v:?}"))),
    }
}

/// Parses an entity-tag list: `*` or `"a", W/"b"`. Evolution sends `\"` escapes; those are
/// accepted as the quotes they meant.
fn etag_list(v: &str) -> DavResult<EtagMatch> {
    let v = v.trim();
    if v == "*" {
        return Ok(EtagMatch::Any);
    }
    let cleaned = v.replace("\\\"", "\"");
    let mut out = Vec::new();
    let mut rest = cleaned.trim();
    while !rest.is_empty() {
        let weak = rest.starts_with("W/");
        let r = if weak { &rest[2..] } else { rest };
        let r = r
            .strip_prefix('"')
            .ok_or_else(|| DavError::BadRequest(format!("invalid entity-tag list {v:?}")))?;
        let end = r
            .find('"')
            .ok_or_else(|| DavError::BadRequest(format!("unterminated entity-tag in {v:?}")))?;
        let tag = &r[..end];
        if tag.bytes().any(|b| b < 0x21 || b == 0x7f) {
            return Err(DavError::BadRequest(format!("invalid entity-tag in {v:?}")));
        }
        // Weak tags never match in the strong comparison these headers use for writes.
        if !weak {
            out.push(format!("\"{tag}\""));
        }
        rest = r[end + 1..].trim_start();
        if let Some(after) = rest.strip_prefix(',') {
            rest = after.trim_start();
        } else if !rest.is_empty() {
            return Err(DavError::BadRequest(format!(
                "invalid entity-tag list {v:?}"
            )));
        }
    }
    if out.is_empty() && !cleaned.contains("W/") {
        return Err(DavError::BadRequest("empty entity-tag list".into()));
    }
    Ok(EtagMatch::List(out))
}

pub fn precondition(h: &HeaderMap) -> DavResult<Precondition> {
    Ok(Precondition {
        if_match: header_str(h, "if-match")?.map(etag_list).transpose()?,
        if_none_match: header_str(h, "if-none-match")?.map(etag_list).transpose()?,
    })
}

/// Overwrite: T (default) or F.
pub fn overwrite(h: &HeaderMap) -> DavResult<bool> {
    match header_str(h, "overwrite")? {
        None => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("T") => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("F") => Ok(false),
        Some(v) => Err(DavError::BadRequest(format!(
            "invalid Overwrite header {v:?}"
        ))),
    }
}

/// The path of the Destination header: an absolute URI (whose authority is not checked
/// against ours: proxies rewrite it) or an absolute path.
pub fn destination(h: &HeaderMap) -> DavResult<String> {
    let v = header_str(h, "destination")?
        .ok_or_else(|| DavError::BadRequest("Destination header missing".into()))?;
    let path = if let Some(rest) = v
        .strip_prefix("http://")
        .or_else(|| v.strip_prefix("https://"))
    {
        match rest.find('/') {
            Some(i) => &rest[i..],
            None => "/",
        }
    } else if v.starts_with('/') {
        v
    } else {
        return Err(DavError::BadRequest(format!("invalid Destination {v:?}")));
    };
    let path = path.split(['?', '#']).next().unwrap_or("/");
    Ok(path.to_owned())
}

/// `Prefer: return=minimal` (RFC 8144) or `Brief: t`: leave out 404 propstats.
pub fn prefer_minimal(h: &HeaderMap) -> bool {
    let prefer = h
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim().eq_ignore_ascii_case("return=minimal"));
    let brief = h
        .get("brief")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("t"));
    prefer || brief
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn hm(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn depth_values() {
        assert_eq!(depth(&hm(&[]), Depth::One).unwrap(), Depth::One);
        assert_eq!(
            depth(&hm(&[("depth", "0")]), Depth::One).unwrap(),
            Depth::Zero
        );
        assert_eq!(
            depth(&hm(&[("depth", "Infinity")]), Depth::One).unwrap(),
            Depth::Infinity
        );
        assert!(depth(&hm(&[("depth", "2")]), Depth::One).is_err());
    }

    #[test]
    fn etag_lists() {
        let p = precondition(&hm(&[("if-match", "\"a\", \"b\"")])).unwrap();
        assert_eq!(
            p.if_match,
            Some(EtagMatch::List(vec!["\"a\"".into(), "\"b\"".into()]))
        );
        let p = precondition(&hm(&[("if-none-match", "*")])).unwrap();
        assert_eq!(p.if_none_match, Some(EtagMatch::Any));
        let p = precondition(&hm(&[("if-match", "\\\"a\\\"")])).unwrap();
        assert_eq!(p.if_match, Some(EtagMatch::List(vec!["\"a\"".into()])));
        assert!(precondition(&hm(&[("if-match", "garbage")])).is_err());
        assert!(precondition(&hm(&[("if-match", "\"a")])).is_err());
        assert!(precondition(&hm(&[("if-match", "\"a\" \"b\"")])).is_err());
    }

    #[test]
    fn destinations() {
        assert_eq!(
            destination(&hm(&[("destination", "http://h:1/a/b?x")])).unwrap(),
            "/a/b"
        );
        assert_eq!(
            destination(&hm(&[("destination", "/a/b")])).unwrap(),
            "/a/b"
        );
        assert!(destination(&hm(&[("destination", "a/b")])).is_err());
        assert!(destination(&hm(&[])).is_err());
    }
}
