//! Serialising components (RFC 5545 §3.1): used only where the server must build iCalendar
//! (partial retrieval, expanded instances, free/busy, feeds). Stored objects are always served
//! as the bytes the client sent.

use super::parse::{Component, Property};

/// Folds a content line at 75 octets (never inside a UTF-8 sequence) and ends it with CRLF.
pub fn fold(line: &str) -> String {
    let mut out = String::with_capacity(line.len() + line.len() / 74 * 3 + 2);
    let mut width = 0;
    for ch in line.chars() {
        let n = ch.len_utf8();
        if width + n > 75 {
            out.push_str("\r\n ");
            width = 1;
        }
        out.push(ch);
        width += n;
    }
    out.push_str("\r\n");
    out
}

fn needs_quotes(v: &str) -> bool {
    v.contains([':', ';', ','])
}

/// The content line of a property: name, parameters (quoted where the value needs it), value.
pub fn property_line(p: &Property) -> String {
    let mut s = p.name.clone();
    for (k, v) in &p.params {
        s.push(';');
        s.push_str(k);
        s.push('=');
        // Quotes were stripped when read; any value holding a delimiter gets them back.
        if needs_quotes(v) {
            s.push('"');
            s.push_str(v);
            s.push('"');
        } else {
            s.push_str(v);
        }
    }
    s.push(':');
    s.push_str(&p.value);
    s
}

pub fn write_component(c: &Component, out: &mut String) {
    out.push_str(&fold(&format!("BEGIN:{}", c.name)));
    for p in &c.props {
        out.push_str(&fold(&property_line(p)));
    }
    for child in &c.children {
        write_component(child, out);
    }
    out.push_str(&fold(&format!("END:{}", c.name)));
}

pub fn to_string(c: &Component) -> String {
    let mut s = String::new();
    write_component(c, &mut s);
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ical::parse::parse;

    #[test]
    fn folds_at_75_octets_and_round_trips() {
        let long = format!("SUMMARY:{}", "ü".repeat(60));
        let folded = fold(&long);
        assert!(folded.split("\r\n").all(|l| l.len() <= 75));
        let text = format!("BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:a\r\nATTENDEE;CN=\"Doe, J\";X-A=\"a:b\":mailto:x@y\r\n{folded}END:VEVENT\r\nEND:VCALENDAR\r\n");
        let c = parse(&text).unwrap();
        let again = parse(&to_string(&c[0])).unwrap();
        assert_eq!(c, again);
    }
}
