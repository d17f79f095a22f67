//! XML in and out for WebDAV (RFC 4918 §14, §13 multistatus). Pure: no axum, sqlx or tokio.
//!
//! The reader turns a request body into a small namespace-resolved element tree and refuses what
//! a DAV server never needs and an attacker loves: DTDs (and with them entity expansion),
//! unknown entity references, and absurd nesting. The writer owns the prefix map and all
//! escaping, so handlers never build XML with `format!`.

use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;
use std::fmt::Write as _;

pub const NS_DAV: &str = "DAV:";
pub const NS_CALDAV: &str = "urn:ietf:params:xml:ns:caldav";
pub const NS_CS: &str = "http://calendarserver.org/ns/";
pub const NS_ICAL: &str = "http://apple.com/ns/ical/";
/// Bound to the prefix `xml` by definition (`xml:lang`, `xml:space`); declaring any prefix for
/// it, even `xml` itself, is an error (Namespaces in XML 1.0 §3).
pub const NS_XML: &str = "http://www.w3.org/XML/1998/namespace";
/// The namespace of `xmlns` declarations themselves.
const NS_XMLNS: &str = "http://www.w3.org/2000/xmlns/";

/// Nesting deeper than this is refused: no DAV request needs more than a dozen levels, and the
/// limit keeps recursive code over the tree safe from stack exhaustion.
pub const MAX_DEPTH: usize = 64;
/// Elements in one request body, a guard against documents built to exhaust memory.
pub const MAX_ELEMENTS: usize = 100_000;

/// A qualified name: namespace URI (empty for no namespace) and local name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QName {
    pub ns: String,
    pub local: String,
}

impl QName {
    pub fn new(ns: &str, local: &str) -> Self {
        QName {
            ns: ns.to_owned(),
            local: local.to_owned(),
        }
    }
    pub fn is(&self, ns: &str, local: &str) -> bool {
        self.ns == ns && self.local == local
    }
}

impl std::fmt::Display for QName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{{{}}}{}", self.ns, self.local)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Element(Element),
    Text(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    pub name: QName,
    /// Attributes other than namespace declarations, with resolved names.
    pub attrs: Vec<(QName, String)>,
    pub children: Vec<Node>,
}

impl Element {
    pub fn is(&self, ns: &str, local: &str) -> bool {
        self.name.is(ns, local)
    }
    pub fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
    }
    pub fn child(&self, ns: &str, local: &str) -> Option<&Element> {
        self.elements().find(|e| e.is(ns, local))
    }
    pub fn children_named<'a>(
        &'a self,
        ns: &'a str,
        local: &'a str,
    ) -> impl Iterator<Item = &'a Element> + 'a {
        self.elements().filter(move |e| e.is(ns, local))
    }
    /// Concatenated text of this element's direct text children.
    pub fn text(&self) -> String {
        let mut s = String::new();
        for n in &self.children {
            if let Node::Text(t) = n {
                s.push_str(t);
            }
        }
        s
    }
    pub fn attr(&self, local: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(q, _)| q.ns.is_empty() && q.local == local)
            .map(|(_, v)| v.as_str())
    }

    /// Serialises the element as a self-contained fragment: every namespace it uses is declared
    /// on the element that first needs it, so the text can be stored (dead properties) and later
    /// embedded verbatim in any document that uses no default namespace.
    pub fn to_fragment(&self) -> String {
        let mut out = String::new();
        let mut scope: Vec<(String, String)> = Vec::new();
        write_fragment(self, &mut out, &mut scope);
        out
    }
}

fn prefix_for(
    ns: &str,
    scope: &mut Vec<(String, String)>,
    decls: &mut Vec<(String, String)>,
) -> Option<String> {
    if ns.is_empty() {
        return None;
    }
    if ns == NS_XML {
        return Some("xml".to_owned());
    }
    if let Some((p, _)) = scope.iter().rev().find(|(_, n)| n == ns) {
        return Some(p.clone());
    }
    let p = format!("x{}", scope.len());
    scope.push((p.clone(), ns.to_owned()));
    decls.push((p.clone(), ns.to_owned()));
    Some(p)
}

fn write_fragment(e: &Element, out: &mut String, scope: &mut Vec<(String, String)>) {
    let depth = scope.len();
    let mut decls = Vec::new();
    let tag = match prefix_for(&e.name.ns, scope, &mut decls) {
        Some(p) => format!("{p}:{}", e.name.local),
        None => e.name.local.clone(),
    };
    let mut attrs = String::new();
    for (q, v) in &e.attrs {
        match prefix_for(&q.ns, scope, &mut decls) {
            Some(p) => {
                let _ = write!(attrs, " {p}:{}=\"{}\"", q.local, escape(v));
            }
            None => {
                let _ = write!(attrs, " {}=\"{}\"", q.local, escape(v));
            }
        }
    }
    out.push('<');
    out.push_str(&tag);
    for (p, ns) in &decls {
        let _ = write!(out, " xmlns:{p}=\"{}\"", escape(ns));
    }
    out.push_str(&attrs);
    if e.children.is_empty() {
        out.push_str("/>");
    } else {
        out.push('>');
        for c in &e.children {
            match c {
                Node::Element(ce) => write_fragment(ce, out, scope),
                Node::Text(t) => out.push_str(&escape(t)),
            }
        }
        out.push_str("</");
        out.push_str(&tag);
        out.push('>');
    }
    scope.truncate(depth);
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum XmlError {
    #[error("XML is not well-formed: {0}")]
    Malformed(String),
    #[error("XML document type declarations are not accepted")]
    Doctype,
    #[error("XML nesting deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("XML document has more than {MAX_ELEMENTS} elements")]
    TooManyElements,
    #[error("request body is empty")]
    Empty,
    #[error("request body is not UTF-8")]
    NotUtf8,
}

/// Parses a complete document and returns its root element.
pub fn parse(body: &[u8]) -> Result<Element, XmlError> {
    let text = std::str::from_utf8(body).map_err(|_| XmlError::NotUtf8)?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    xml_chars(text)?;
    let mut reader = NsReader::from_str(text);
    reader.config_mut().trim_text(false);
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut count = 0usize;
    loop {
        let (res, ev) = reader
            .read_resolved_event()
            .map_err(|e| XmlError::Malformed(e.to_string()))?;
        match ev {
            Event::Start(ref s) | Event::Empty(ref s) => {
                if root.is_some() {
                    return Err(XmlError::Malformed("content after the root element".into()));
                }
                count += 1;
                if count > MAX_ELEMENTS {
                    return Err(XmlError::TooManyElements);
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(XmlError::TooDeep);
                }
                let ns = resolved_ns(&res)?;
                let local = utf8(s.local_name().as_ref())?;
                let mut attrs = Vec::new();
                for a in s.attributes() {
                    let a = a.map_err(|e| XmlError::Malformed(e.to_string()))?;
                    let key = a.key;
                    if key.as_ref() == b"xmlns" || key.as_ref().starts_with(b"xmlns:") {
                        continue;
                    }
                    let (ares, alocal) = reader.resolve_attribute(key);
                    let ans = resolved_ns(&ares)?;
                    let value = a
                        .unescape_value()
                        .map_err(|e| XmlError::Malformed(e.to_string()))?;
                    xml_chars(&value)?;
                    attrs.push((
                        QName {
                            ns: ans,
                            local: utf8(alocal.as_ref())?,
                        },
                        value.into_owned(),
                    ));
                }
                let el = Element {
                    name: QName { ns, local },
                    attrs,
                    children: Vec::new(),
                };
                if matches!(ev, Event::Empty(_)) {
                    push_child(&mut stack, &mut root, el);
                } else {
                    stack.push(el);
                }
            }
            Event::End(_) => {
                let el = stack
                    .pop()
                    .ok_or_else(|| XmlError::Malformed("unbalanced end tag".into()))?;
                push_child(&mut stack, &mut root, el);
            }
            Event::Text(t) => {
                let s = t
                    .unescape()
                    .map_err(|e| XmlError::Malformed(e.to_string()))?;
                xml_chars(&s)?;
                match stack.last_mut() {
                    Some(top) => push_text(top, &s),
                    None if s.trim().is_empty() => {}
                    None => {
                        return Err(XmlError::Malformed("text outside the root element".into()))
                    }
                }
            }
            Event::CData(c) => {
                let s = utf8(&c)?;
                match stack.last_mut() {
                    Some(top) => push_text(top, &s),
                    None => {
                        return Err(XmlError::Malformed("CDATA outside the root element".into()))
                    }
                }
            }
            Event::DocType(_) => return Err(XmlError::Doctype),
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(XmlError::Malformed("unexpected end of document".into()));
    }
    root.ok_or(XmlError::Empty)
}

fn push_text(top: &mut Element, s: &str) {
    if let Some(Node::Text(prev)) = top.children.last_mut() {
        prev.push_str(s);
    } else {
        top.children.push(Node::Text(s.to_owned()));
    }
}

fn push_child(stack: &mut [Element], root: &mut Option<Element>, el: Element) {
    match stack.last_mut() {
        Some(parent) => {
            // Whitespace-only text between elements carries no meaning in DAV bodies.
            if let Some(Node::Text(t)) = parent.children.last() {
                if t.trim().is_empty() {
                    parent.children.pop();
                }
            }
            parent.children.push(Node::Element(el));
        }
        None => *root = Some(el),
    }
}

/// XML 1.0 §2.2 `Char`: control characters other than tab, LF and CR (also when written as
/// character references) make a document not well-formed. Accepting them would let a client
/// store a dead property that we then serve inside multistatus answers no strict parser reads.
fn xml_chars(s: &str) -> Result<(), XmlError> {
    let forbidden = |c: char| {
        matches!(c, '\0'..='\u{8}' | '\u{b}' | '\u{c}' | '\u{e}'..='\u{1f}')
            || matches!(c, '\u{fffe}' | '\u{ffff}')
    };
    // Bytes first (every request body passes here): a control byte, or 0xEF, the first byte
    // of U+FFFE and U+FFFF in UTF-8, is what can start a forbidden character.
    let suspect = |b: u8| (b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r')) || b == 0xEF;
    if !s.bytes().any(suspect) {
        return Ok(());
    }
    match s.chars().find(|&c| forbidden(c)) {
        Some(c) => Err(XmlError::Malformed(format!(
            "character U+{:04X} is not allowed in XML",
            u32::from(c)
        ))),
        None => Ok(()),
    }
}

fn resolved_ns(res: &ResolveResult) -> Result<String, XmlError> {
    match res {
        // The reader hands namespace names over as written; `xmlns:x="a&amp;b"` names `a&b`
        // (and our writer escapes it back), so references are resolved here.
        ResolveResult::Bound(ns) => {
            let ns = quick_xml::escape::unescape(&utf8(ns.as_ref())?)
                .map_err(|e| XmlError::Malformed(e.to_string()))?
                .into_owned();
            xml_chars(&ns)?;
            // Namespaces in XML 1.0 §3: the `xmlns` prefix names no element or attribute.
            if ns == NS_XMLNS {
                return Err(XmlError::Malformed(
                    "the xmlns prefix cannot name an element or attribute".into(),
                ));
            }
            Ok(ns)
        }
        ResolveResult::Unbound => Ok(String::new()),
        ResolveResult::Unknown(p) => Err(XmlError::Malformed(format!(
            "undeclared namespace prefix {}",
            String::from_utf8_lossy(p)
        ))),
    }
}

fn utf8(b: &[u8]) -> Result<String, XmlError> {
    std::str::from_utf8(b)
        .map(str::to_owned)
        .map_err(|_| XmlError::NotUtf8)
}

/// Escapes text for element content and attribute values.
pub fn escape(s: &str) -> std::borrow::Cow<'_, str> {
    let b = s.as_bytes();
    if memchr::memchr3(b'<', b'&', b'\r', b).is_none() && memchr::memchr2(b'>', b'"', b).is_none() {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    escape_into(&mut out, s);
    std::borrow::Cow::Owned(out)
}

/// [`escape`] appended to `out`, copying the runs between special characters whole.
///
/// This runs over every href, ETag and calendar body of a multistatus (profiles of PROPFIND
/// and multiget had it as the top function by self time), so the special characters are
/// found with vectorised searches (`memchr`), two of them kept ahead: one for `<`, `&` and CR
/// (CR ends every iCalendar line), one for the rarer `>` and `"`. Each search resumes only
/// after the character it found, so the whole text is scanned once.
pub fn escape_into(out: &mut String, s: &str) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len());
    let frequent = |at: usize| memchr::memchr3(b'<', b'&', b'\r', &bytes[at..]).map(|i| at + i);
    let rare = |at: usize| memchr::memchr2(b'>', b'"', &bytes[at..]).map(|i| at + i);
    let (mut next_frequent, mut next_rare) = (frequent(0), rare(0));
    let mut from = 0;
    loop {
        let i = match (next_frequent, next_rare) {
            (None, None) => break,
            (Some(i), None) | (None, Some(i)) => i,
            (Some(a), Some(b)) => a.min(b),
        };
        // Every special character is ASCII, so `i` is a character boundary.
        out.push_str(&s[from..i]);
        out.push_str(replacement(bytes[i]));
        from = i + 1;
        if next_frequent == Some(i) {
            next_frequent = frequent(from);
        } else {
            next_rare = rare(from);
        }
    }
    out.push_str(&s[from..]);
}

fn replacement(b: u8) -> &'static str {
    match b {
        b'<' => "&lt;",
        b'>' => "&gt;",
        b'&' => "&amp;",
        b'"' => "&quot;",
        // A literal CR would be normalised away by the receiving parser (XML 1.0 §2.11);
        // iCalendar data needs its CRLFs to survive.
        _ => "&#13;",
    }
}

/// Size of the pieces a large document is written in.
const PIECE: usize = 64 * 1024;

/// Fixed prefixes for the namespaces we speak; anything else gets a local declaration.
const PREFIXES: &[(&str, &str)] = &[
    ("D", NS_DAV),
    ("C", NS_CALDAV),
    ("CS", NS_CS),
    ("ICAL", NS_ICAL),
];

/// Builds a response document. The root element declares the fixed prefixes; no default
/// namespace is ever declared, so unprefixed names always mean "no namespace".
pub struct XmlWriter {
    out: String,
    /// Completed parts of the document: a large multistatus grows in pieces of about
    /// [`PIECE`] bytes instead of one string that doubles (and copies itself) as it grows.
    done: Vec<bytes::Bytes>,
    /// The qualified names of the open elements, back to back: no allocation per element.
    names: String,
    /// Where each open element's name starts in `names`.
    stack: Vec<usize>,
    open_tag: bool,
}

impl Default for XmlWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl XmlWriter {
    pub fn new() -> Self {
        let mut out = String::with_capacity(4096);
        out.push_str("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n");
        XmlWriter {
            out,
            done: Vec::new(),
            names: String::new(),
            stack: Vec::new(),
            open_tag: false,
        }
    }

    fn close_open(&mut self) {
        if self.open_tag {
            self.out.push('>');
            self.open_tag = false;
        }
    }

    /// Appends the qualified name of `{ns}local` to `names`.
    fn push_name(&mut self, ns: &str, local: &str) {
        let prefix = if ns.is_empty() {
            None
        } else if ns == NS_XML {
            Some("xml")
        } else {
            Some(
                PREFIXES
                    .iter()
                    .find(|(_, n)| *n == ns)
                    .map_or("x", |(p, _)| *p),
            )
        };
        if let Some(p) = prefix {
            self.names.push_str(p);
            self.names.push(':');
        }
        self.names.push_str(local);
    }

    /// Opens an element. `ns` outside the fixed set is declared on the element itself.
    pub fn start(&mut self, ns: &str, local: &str) -> &mut Self {
        self.close_open();
        let at = self.names.len();
        self.push_name(ns, local);
        self.out.push('<');
        self.out.push_str(&self.names[at..]);
        if self.stack.is_empty() {
            for (p, n) in PREFIXES {
                let _ = write!(self.out, " xmlns:{p}=\"{n}\"");
            }
        }
        if !ns.is_empty() && ns != NS_XML && !PREFIXES.iter().any(|(_, n)| *n == ns) {
            let _ = write!(self.out, " xmlns:x=\"{}\"", escape(ns));
        }
        self.open_tag = true;
        self.stack.push(at);
        self
    }

    pub fn attr(&mut self, name: &str, value: &str) -> &mut Self {
        debug_assert!(self.open_tag);
        let _ = write!(self.out, " {name}=\"{}\"", escape(value));
        self
    }

    /// Moves the text written so far to `done` once it is a piece's worth.
    fn maybe_cut(&mut self) {
        if self.out.len() >= PIECE && !self.open_tag {
            let next = String::with_capacity(PIECE + PIECE / 4);
            self.done
                .push(bytes::Bytes::from(std::mem::replace(&mut self.out, next)));
        }
    }

    pub fn end(&mut self) -> &mut Self {
        let at = self.stack.pop().expect("end() without start()");
        if self.open_tag {
            self.out.push_str("/>");
            self.open_tag = false;
        } else {
            self.out.push_str("</");
            self.out.push_str(&self.names[at..]);
            self.out.push('>');
        }
        self.names.truncate(at);
        self.maybe_cut();
        self
    }

    pub fn empty(&mut self, ns: &str, local: &str) -> &mut Self {
        self.start(ns, local).end()
    }

    pub fn text(&mut self, s: &str) -> &mut Self {
        self.close_open();
        escape_into(&mut self.out, s);
        self
    }

    pub fn text_element(&mut self, ns: &str, local: &str, s: &str) -> &mut Self {
        self.start(ns, local).text(s).end()
    }

    /// Embeds a fragment produced by [`Element::to_fragment`].
    pub fn raw_fragment(&mut self, fragment: &str) -> &mut Self {
        self.close_open();
        self.out.push_str(fragment);
        self
    }

    /// The document as one string (small documents, tests).
    pub fn finish(self) -> String {
        let parts = self.finish_parts();
        let mut s = String::with_capacity(parts.iter().map(|p| p.len()).sum());
        for p in &parts {
            s.push_str(std::str::from_utf8(p).expect("the writer writes UTF-8"));
        }
        s
    }

    /// The document in pieces, for a response body that is sent without joining them.
    pub fn finish_parts(mut self) -> Vec<bytes::Bytes> {
        self.close_open();
        debug_assert!(self.stack.is_empty());
        self.done.push(bytes::Bytes::from(self.out));
        self.done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_namespaces_and_text() {
        let e = parse(br#"<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns="urn:x"><D:prop><foo a="1">hi &amp; bye</foo></D:prop></D:propfind>"#).unwrap();
        assert!(e.is(NS_DAV, "propfind"));
        let prop = e.child(NS_DAV, "prop").unwrap();
        let foo = prop.elements().next().unwrap();
        assert_eq!(foo.name, QName::new("urn:x", "foo"));
        assert_eq!(foo.text(), "hi & bye");
        assert_eq!(foo.attr("a"), Some("1"));
    }

    #[test]
    fn refuses_doctype_and_entities() {
        let bomb = br#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]><D:propfind xmlns:D="DAV:">&lol2;</D:propfind>"#;
        assert_eq!(parse(bomb), Err(XmlError::Doctype));
        assert!(matches!(
            parse(br#"<a>&foo;</a>"#),
            Err(XmlError::Malformed(_))
        ));
    }

    #[test]
    fn refuses_deep_nesting_and_garbage() {
        let deep = "<a>".repeat(MAX_DEPTH + 1) + &"</a>".repeat(MAX_DEPTH + 1);
        assert_eq!(parse(deep.as_bytes()), Err(XmlError::TooDeep));
        assert!(parse(b"<a><b></a>").is_err());
        assert!(parse(b"<a>").is_err());
        assert_eq!(parse(b"  "), Err(XmlError::Empty));
        assert!(parse(b"<x:a/>").is_err());
        assert!(parse(b"<a/><b/>").is_err());
    }

    #[test]
    fn fragment_round_trips() {
        let src = br#"<A:color xmlns:A="http://apple.com/ns/ical/" symbolic-color="custom">#FF0000FF</A:color>"#;
        let e = parse(src).unwrap();
        let frag = e.to_fragment();
        assert_eq!(parse(frag.as_bytes()).unwrap(), e);
        let e2 = parse(br#"<C:x xmlns:C="urn:c"><NO xmlns=""/><C:y>a&lt;b</C:y></C:x>"#).unwrap();
        assert_eq!(parse(e2.to_fragment().as_bytes()).unwrap(), e2);
    }

    #[test]
    fn escape_replaces_each_special_and_keeps_the_rest() {
        assert_eq!(escape("plain ü ✓"), "plain ü ✓");
        assert!(matches!(escape("plain"), std::borrow::Cow::Borrowed(_)));
        assert_eq!(
            escape("<a href=\"x\">&é\r\n</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;é&#13;\n&lt;/a&gt;"
        );
        let mut out = String::from("<p>");
        escape_into(&mut out, "\"\"");
        escape_into(&mut out, "");
        escape_into(&mut out, "ü&");
        assert_eq!(out, "<p>&quot;&quot;ü&amp;");
        // Every byte value: what parses back is what went in.
        let ascii: String = (1u8..=0x7f)
            .map(char::from)
            .filter(|c| !c.is_control() || matches!(c, '\r' | '\n' | '\t'))
            .collect();
        let all = format!("a{ascii}ü✓z");
        let doc = format!("<D:x xmlns:D=\"DAV:\">{}</D:x>", escape(&all));
        assert_eq!(parse(doc.as_bytes()).unwrap().text(), all);
    }

    #[test]
    fn writer_escapes_and_keeps_crlf() {
        let mut w = XmlWriter::new();
        w.start(NS_DAV, "multistatus")
            .text_element(NS_CALDAV, "calendar-data", "A<B\r\n")
            .end();
        let s = w.finish();
        assert!(
            s.contains("<C:calendar-data>A&lt;B&#13;\n</C:calendar-data>"),
            "{s}"
        );
        let back = parse(s.as_bytes()).unwrap();
        assert_eq!(
            back.child(NS_CALDAV, "calendar-data").unwrap().text(),
            "A<B\r\n"
        );
    }
}
