//! Multistatus responses (RFC 4918 §13, §14.16–14.24): property values and how each is
//! written, and the response/propstat grouping shared by PROPFIND, PROPPATCH and REPORTs.

use super::xml::{QName, XmlWriter, NS_CALDAV, NS_DAV};
use axum::http::StatusCode;
use std::borrow::Cow;

/// The value of one property, as a shape the writer knows how to emit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PropValue {
    /// `<name/>`
    Empty,
    Text(String),
    /// `<name><D:href>…</D:href></name>`
    Href(String),
    Hrefs(Vec<String>),
    /// Empty child elements, e.g. resourcetype's `<D:collection/><C:calendar/>`.
    Children(Vec<(&'static str, &'static str)>),
    /// `<C:comp name="VEVENT"/>` list of supported-calendar-component-set.
    Comps(Vec<&'static str>),
    /// supported-report-set (RFC 3253 §3.1.5).
    Reports(Vec<(&'static str, &'static str)>),
    /// current-user-privilege-set (RFC 3744 §5.4).
    Privileges(Vec<(&'static str, &'static str)>),
    /// supported-calendar-data (RFC 4791 §5.2.4).
    SupportedCalendarData,
    /// A dead property: the stored fragment is the whole element.
    Dead(String),
}

/// The status line of a propstat or response; the two a listing writes per member are
/// constants, not formatted thousands of times.
pub fn status_line(s: StatusCode) -> Cow<'static, str> {
    match s {
        StatusCode::OK => Cow::Borrowed("HTTP/1.1 200 OK"),
        StatusCode::NOT_FOUND => Cow::Borrowed("HTTP/1.1 404 Not Found"),
        _ => Cow::Owned(format!(
            "HTTP/1.1 {} {}",
            s.as_u16(),
            s.canonical_reason().unwrap_or("")
        )),
    }
}

pub fn write_prop(w: &mut XmlWriter, name: &QName, v: &PropValue) {
    if let PropValue::Dead(frag) = v {
        w.raw_fragment(frag);
        return;
    }
    w.start(&name.ns, &name.local);
    match v {
        PropValue::Empty | PropValue::Dead(_) => {}
        PropValue::Text(t) => {
            w.text(t);
        }
        PropValue::Href(h) => {
            w.text_element(NS_DAV, "href", h);
        }
        PropValue::Hrefs(hs) => {
            for h in hs {
                w.text_element(NS_DAV, "href", h);
            }
        }
        PropValue::Children(cs) => {
            for (ns, l) in cs {
                w.empty(ns, l);
            }
        }
        PropValue::Comps(cs) => {
            for c in cs {
                w.start(NS_CALDAV, "comp").attr("name", c).end();
            }
        }
        PropValue::Reports(rs) => {
            for (ns, l) in rs {
                w.start(NS_DAV, "supported-report")
                    .start(NS_DAV, "report")
                    .empty(ns, l)
                    .end()
                    .end();
            }
        }
        PropValue::Privileges(ps) => {
            for (ns, l) in ps {
                w.start(NS_DAV, "privilege").empty(ns, l).end();
            }
        }
        PropValue::SupportedCalendarData => {
            w.start(NS_CALDAV, "calendar-data")
                .attr("content-type", "text/calendar")
                .attr("version", "2.0")
                .end();
        }
    }
    w.end();
}

/// One `<D:response>` with propstats grouped by status.
#[derive(Debug, Default)]
pub struct PropResponse {
    pub href: String,
    pub found: Vec<(QName, PropValue)>,
    pub missing: Vec<QName>,
    /// Other per-property outcomes (PROPPATCH: 403, 409, 424).
    pub other: Vec<(QName, StatusCode)>,
}

impl PropResponse {
    pub fn new(href: String) -> Self {
        PropResponse {
            href,
            ..Default::default()
        }
    }

    /// Writes the response; `minimal` leaves out the 404 propstat (RFC 8144 return=minimal).
    pub fn write(&self, w: &mut XmlWriter, minimal: bool) {
        w.start(NS_DAV, "response");
        w.text_element(NS_DAV, "href", &self.href);
        if !self.found.is_empty() {
            w.start(NS_DAV, "propstat").start(NS_DAV, "prop");
            for (n, v) in &self.found {
                write_prop(w, n, v);
            }
            w.end()
                .text_element(NS_DAV, "status", &status_line(StatusCode::OK))
                .end();
        }
        let mut groups: Vec<(StatusCode, Vec<&QName>)> = Vec::new();
        if !self.missing.is_empty() && !minimal {
            groups.push((StatusCode::NOT_FOUND, self.missing.iter().collect()));
        }
        for (n, s) in &self.other {
            match groups.iter_mut().find(|(gs, _)| gs == s) {
                Some((_, v)) => v.push(n),
                None => groups.push((*s, vec![n])),
            }
        }
        for (status, names) in groups {
            w.start(NS_DAV, "propstat").start(NS_DAV, "prop");
            for n in names {
                w.empty(&n.ns, &n.local);
            }
            w.end()
                .text_element(NS_DAV, "status", &status_line(status))
                .end();
        }
        if self.found.is_empty() && self.other.is_empty() && (self.missing.is_empty() || minimal) {
            // A response needs a propstat or a status (RFC 4918 §14.24); an empty prop says
            // "nothing to report" without inventing an error.
            w.start(NS_DAV, "propstat").empty(NS_DAV, "prop");
            w.text_element(NS_DAV, "status", &status_line(StatusCode::OK))
                .end();
        }
        w.end();
    }
}

/// A `<D:response>` with every property found and a text value, written as
/// `PropResponse::write` writes it, without building one: what report listings write per
/// member (ETags, calendar data), thousands of times per answer.
pub fn write_found_texts<'a>(
    w: &mut XmlWriter,
    href: &str,
    props: impl IntoIterator<Item = (&'a QName, &'a str)>,
) {
    w.start(NS_DAV, "response");
    w.text_element(NS_DAV, "href", href);
    w.start(NS_DAV, "propstat").start(NS_DAV, "prop");
    for (name, text) in props {
        w.text_element(&name.ns, &name.local, text);
    }
    w.end()
        .text_element(NS_DAV, "status", &status_line(StatusCode::OK))
        .end();
    w.end();
}

/// A `<D:response>` carrying only a status (sync-collection removals, multiget misses).
pub fn write_status_response(w: &mut XmlWriter, href: &str, status: StatusCode) {
    w.start(NS_DAV, "response");
    w.text_element(NS_DAV, "href", href);
    w.text_element(NS_DAV, "status", &status_line(status));
    w.end();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dav::xml::parse;

    #[test]
    fn found_texts_as_prop_response_writes_them() {
        let etag = QName::new(NS_DAV, "getetag");
        let data = QName::new(NS_CALDAV, "calendar-data");
        let mut r = PropResponse::new("/c/a%20b.ics".into());
        r.found
            .push((etag.clone(), PropValue::Text("\"1\"".into())));
        r.found.push((
            data.clone(),
            PropValue::Text("BEGIN:VCALENDAR\r\n<&>\r\n".into()),
        ));
        let mut general = XmlWriter::new();
        general.start(NS_DAV, "multistatus");
        r.write(&mut general, false);
        general.end();
        let mut direct = XmlWriter::new();
        direct.start(NS_DAV, "multistatus");
        write_found_texts(
            &mut direct,
            "/c/a%20b.ics",
            [(&etag, "\"1\""), (&data, "BEGIN:VCALENDAR\r\n<&>\r\n")],
        );
        direct.end();
        assert_eq!(direct.finish(), general.finish());
    }

    #[test]
    fn status_lines() {
        for code in [200, 207, 403, 404, 409, 424, 507] {
            let s = StatusCode::from_u16(code).unwrap();
            let want = format!("HTTP/1.1 {code} {}", s.canonical_reason().unwrap());
            assert_eq!(status_line(s), want);
        }
    }

    #[test]
    fn groups_propstats() {
        let mut r = PropResponse::new("/a/".into());
        r.found.push((
            QName::new(NS_DAV, "displayname"),
            PropValue::Text("A & B".into()),
        ));
        r.missing.push(QName::new("urn:x", "nope"));
        let mut w = XmlWriter::new();
        w.start(NS_DAV, "multistatus");
        r.write(&mut w, false);
        w.end();
        let doc = parse(w.finish().as_bytes()).unwrap();
        let resp = doc.child(NS_DAV, "response").unwrap();
        let stats: Vec<_> = resp.children_named(NS_DAV, "propstat").collect();
        assert_eq!(stats.len(), 2);
        assert_eq!(
            stats[1].child(NS_DAV, "status").unwrap().text(),
            "HTTP/1.1 404 Not Found"
        );
        assert!(stats[1]
            .child(NS_DAV, "prop")
            .unwrap()
            .child("urn:x", "nope")
            .is_some());
    }
}
