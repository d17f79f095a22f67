//! The URL space, parsed once per request. Pure.
//!
//! ```text
//! /                               root (discovery: current-user-principal)
//! /principals/                    principal collection
//! /principals/NAME/               a principal
//! /calendars/                     collection of calendar homes
//! /calendars/NAME/                NAME's calendar home
//! /calendars/NAME/CAL/            a calendar collection
//! /calendars/NAME/CAL/OBJECT      a calendar object resource
//! ```
//! Segments are percent-decoded; a segment that decodes to `.`, `..`, something with `/` or
//! NUL, or invalid UTF-8 is refused, so no path can name another place than it appears to.

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};

/// Longest request path accepted; longer is a 414.
pub const MAX_PATH_LEN: usize = 4096;
/// Longest single segment (calendar or object name) accepted.
pub const MAX_SEGMENT_LEN: usize = 255;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DavPath {
    Root,
    PrincipalsRoot,
    Principal(String),
    CalendarsRoot,
    Home(String),
    Calendar(String, String),
    Object(String, String, String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("path too long")]
    TooLong,
    #[error("invalid path: {0}")]
    Invalid(&'static str),
    #[error("no such resource")]
    NotFound,
}

/// Characters escaped in hrefs: everything outside RFC 3986 `pchar`.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

pub fn encode_segment(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

fn decode_segment(s: &str) -> Result<String, PathError> {
    let d = percent_decode_str(s)
        .decode_utf8()
        .map_err(|_| PathError::Invalid("segment is not UTF-8"))?;
    if d == "." || d == ".." {
        return Err(PathError::Invalid("dot segment"));
    }
    if d.contains('/') || d.contains('\\') || d.chars().any(char::is_control) {
        return Err(PathError::Invalid(
            "segment contains a separator or control character",
        ));
    }
    if d.len() > MAX_SEGMENT_LEN {
        return Err(PathError::Invalid("segment too long"));
    }
    Ok(d.into_owned())
}

impl DavPath {
    /// Parses the path part of a request URI.
    pub fn parse(path: &str) -> Result<DavPath, PathError> {
        if path.len() > MAX_PATH_LEN {
            return Err(PathError::TooLong);
        }
        let rest = path
            .strip_prefix('/')
            .ok_or(PathError::Invalid("path must be absolute"))?;
        // Every path of the URL space has at most four segments; the decoded ones move into
        // the result (a multiget parses a hundred hrefs).
        let mut segs = rest.split('/').filter(|raw| !raw.is_empty());
        let mut next = || segs.next().map(decode_segment).transpose();
        let first = next()?;
        let (a, b, c) = (next()?, next()?, next()?);
        // Longer paths name nothing, but a malformed segment anywhere is still reported as such.
        let mut longer = false;
        while next()?.is_some() {
            longer = true;
        }
        if longer {
            return Err(PathError::NotFound);
        }
        Ok(match (first.as_deref(), a, b, c) {
            (None, ..) => DavPath::Root,
            (Some("principals"), None, ..) => DavPath::PrincipalsRoot,
            (Some("principals"), Some(n), None, _) => DavPath::Principal(n),
            (Some("calendars"), None, ..) => DavPath::CalendarsRoot,
            (Some("calendars"), Some(n), None, _) => DavPath::Home(n),
            (Some("calendars"), Some(n), Some(c), None) => DavPath::Calendar(n, c),
            (Some("calendars"), Some(n), Some(c), Some(o)) => DavPath::Object(n, c, o),
            _ => return Err(PathError::NotFound),
        })
    }

    /// The canonical href (collections end in `/`).
    pub fn href(&self) -> String {
        match self {
            DavPath::Root => "/".into(),
            DavPath::PrincipalsRoot => "/principals/".into(),
            DavPath::Principal(n) => principal_href(n),
            DavPath::CalendarsRoot => "/calendars/".into(),
            DavPath::Home(n) => home_href(n),
            DavPath::Calendar(n, c) => calendar_href(n, c),
            DavPath::Object(n, c, o) => object_href(n, c, o),
        }
    }

    /// The user whose namespace this path is in, if any.
    pub fn owner(&self) -> Option<&str> {
        match self {
            DavPath::Principal(n)
            | DavPath::Home(n)
            | DavPath::Calendar(n, _)
            | DavPath::Object(n, _, _) => Some(n),
            _ => None,
        }
    }
}

pub fn principal_href(user: &str) -> String {
    format!("/principals/{}/", encode_segment(user))
}

pub fn home_href(user: &str) -> String {
    format!("/calendars/{}/", encode_segment(user))
}

pub fn calendar_href(user: &str, cal: &str) -> String {
    format!(
        "/calendars/{}/{}/",
        encode_segment(user),
        encode_segment(cal)
    )
}

pub fn object_href(user: &str, cal: &str, obj: &str) -> String {
    member_href(&calendar_href(user, cal), obj)
}

/// The href of member `obj` of the collection at `collection_href` (which ends in `/`): for
/// listings that write thousands of members' hrefs, the collection's part is encoded once.
pub fn member_href(collection_href: &str, obj: &str) -> String {
    let mut href = String::with_capacity(collection_href.len() + obj.len() + 8);
    href.push_str(collection_href);
    href.extend(utf8_percent_encode(obj, SEGMENT));
    href
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_url_space() {
        assert_eq!(DavPath::parse("/").unwrap(), DavPath::Root);
        assert_eq!(
            DavPath::parse("/principals/alice/").unwrap(),
            DavPath::Principal("alice".into())
        );
        assert_eq!(
            DavPath::parse("/calendars/alice").unwrap(),
            DavPath::Home("alice".into())
        );
        assert_eq!(
            DavPath::parse("/calendars/alice/work/a%40b.ics").unwrap(),
            DavPath::Object("alice".into(), "work".into(), "a@b.ics".into())
        );
        assert_eq!(
            DavPath::parse("/calendars/a/b/c/d"),
            Err(PathError::NotFound)
        );
        assert_eq!(DavPath::parse("/nope"), Err(PathError::NotFound));
    }

    #[test]
    fn refuses_traversal_and_garbage() {
        assert!(DavPath::parse("/calendars/alice/..").is_err());
        assert!(DavPath::parse("/calendars/alice/%2e%2e/x").is_err());
        assert!(DavPath::parse("/calendars/alice/a%2fb/").is_err());
        assert!(DavPath::parse("/calendars/alice/%ff/").is_err());
        assert!(DavPath::parse("/calendars/alice/a%00b/").is_err());
        assert_eq!(DavPath::parse(&"/a".repeat(3000)), Err(PathError::TooLong));
        assert!(DavPath::parse("relative").is_err());
    }

    #[test]
    fn hrefs_round_trip() {
        for p in [
            DavPath::Object("bob".into(), "my cal".into(), "x y#1?.ics".into()),
            DavPath::Calendar("b@x".into(), "ü".into()),
        ] {
            assert_eq!(DavPath::parse(&p.href()).unwrap(), p);
        }
    }
}
