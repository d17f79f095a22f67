//! Content-line reader (RFC 5545 §3.1): unfolding, property names, parameters (quoted values,
//! RFC 6868 caret encoding left as sent) and values, built into a component tree. Tolerant of
//! what real clients send (LF-only line endings, a BOM, lower-case names) but strict about
//! structure (every BEGIN has its END), because a half-parsed calendar must never be stored.

/// Components nested deeper than this are refused (RFC 5545 needs three levels).
const MAX_NESTING: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Property {
    /// Upper-cased property name.
    pub name: String,
    /// Parameters as (upper-cased name, value without surrounding quotes).
    pub params: Vec<(String, String)>,
    pub value: String,
}

impl Property {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Component {
    /// Upper-cased component name.
    pub name: String,
    pub props: Vec<Property>,
    pub children: Vec<Component>,
}

impl Component {
    pub fn prop(&self, name: &str) -> Option<&Property> {
        self.props.iter().find(|p| p.name == name)
    }
    pub fn props_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Property> + 'a {
        self.props.iter().filter(move |p| p.name == name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("line {0}: {1}")]
    Line(usize, String),
    #[error("{0}")]
    Structure(String),
}

/// Parses a stream of top-level components.
pub fn parse(text: &str) -> Result<Vec<Component>, ParseError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut tops = Vec::new();
    let mut stack: Vec<Component> = Vec::new();
    for (lineno, line) in unfold(text) {
        if line.is_empty() {
            continue;
        }
        if line.chars().any(|c| c.is_control() && c != '\t') {
            return Err(ParseError::Line(
                lineno,
                "control character in content line".into(),
            ));
        }
        let prop = parse_line(&line).map_err(|m| ParseError::Line(lineno, m))?;
        match prop.name.as_str() {
            "BEGIN" => {
                if stack.len() >= MAX_NESTING {
                    return Err(ParseError::Line(
                        lineno,
                        "components nested too deeply".into(),
                    ));
                }
                let name = prop.value.trim().to_ascii_uppercase();
                if !valid_name(&name) {
                    return Err(ParseError::Line(
                        lineno,
                        format!("invalid component name {:?}", prop.value),
                    ));
                }
                stack.push(Component {
                    name,
                    ..Default::default()
                });
            }
            "END" => {
                let name = prop.value.trim().to_ascii_uppercase();
                let comp = stack
                    .pop()
                    .ok_or_else(|| ParseError::Line(lineno, format!("END:{name} without BEGIN")))?;
                if comp.name != name {
                    return Err(ParseError::Line(
                        lineno,
                        format!("END:{name} closes BEGIN:{}", comp.name),
                    ));
                }
                match stack.last_mut() {
                    Some(parent) => parent.children.push(comp),
                    None => tops.push(comp),
                }
            }
            _ => match stack.last_mut() {
                Some(c) => c.props.push(prop),
                None => {
                    return Err(ParseError::Line(
                        lineno,
                        "property outside any component".into(),
                    ))
                }
            },
        }
    }
    if let Some(open) = stack.last() {
        return Err(ParseError::Structure(format!(
            "BEGIN:{} is never closed",
            open.name
        )));
    }
    Ok(tops)
}

/// Yields logical lines with the number of the physical line they start on.
fn unfold(text: &str) -> impl Iterator<Item = (usize, String)> + '_ {
    let mut lines = text.split('\n').enumerate().peekable();
    std::iter::from_fn(move || {
        let (n, first) = lines.next()?;
        let mut line = first.strip_suffix('\r').unwrap_or(first).to_owned();
        while let Some((_, next)) = lines.peek() {
            if next.starts_with(' ') || next.starts_with('\t') {
                let cont = &next[1..];
                line.push_str(cont.strip_suffix('\r').unwrap_or(cont));
                lines.next();
            } else {
                break;
            }
        }
        Some((n + 1, line))
    })
}

fn valid_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

fn parse_line(line: &str) -> Result<Property, String> {
    let bytes = line.as_bytes();
    let mut i = 0;
    while i < bytes.len() && bytes[i] != b';' && bytes[i] != b':' {
        i += 1;
    }
    let name = line[..i].trim().to_ascii_uppercase();
    if !valid_name(&name) {
        return Err(format!("invalid property name {:?}", &line[..i]));
    }
    let mut params = Vec::new();
    while i < bytes.len() && bytes[i] == b';' {
        i += 1;
        let start = i;
        while i < bytes.len() && bytes[i] != b'=' && bytes[i] != b';' && bytes[i] != b':' {
            i += 1;
        }
        if i >= bytes.len() || bytes[i] != b'=' {
            return Err(format!("parameter without value in {name}"));
        }
        let pname = line[start..i].trim().to_ascii_uppercase();
        if !valid_name(&pname) {
            return Err(format!("invalid parameter name in {name}"));
        }
        i += 1;
        let mut value = String::new();
        loop {
            if i < bytes.len() && bytes[i] == b'"' {
                let qs = i + 1;
                let qe = line[qs..]
                    .find('"')
                    .ok_or_else(|| format!("unterminated quote in {name}"))?
                    + qs;
                value.push_str(&line[qs..qe]);
                i = qe + 1;
            } else {
                let vs = i;
                while i < bytes.len() && !matches!(bytes[i], b',' | b';' | b':' | b'"') {
                    i += 1;
                }
                value.push_str(&line[vs..i]);
            }
            if i < bytes.len() && bytes[i] == b',' {
                value.push(',');
                i += 1;
                continue;
            }
            break;
        }
        params.push((pname, value));
    }
    if i >= bytes.len() || bytes[i] != b':' {
        return Err(format!("property {name} has no value"));
    }
    Ok(Property {
        name,
        params,
        value: line[i + 1..].to_owned(),
    })
}

fn digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// `YYYYMMDD` with a real month and day.
pub fn is_date(s: &str) -> bool {
    let s = s.trim();
    if s.len() != 8 || !digits(s) {
        return false;
    }
    let y: u32 = s[0..4].parse().unwrap_or(0);
    let m: u32 = s[4..6].parse().unwrap_or(0);
    let d: u32 = s[6..8].parse().unwrap_or(0);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&d)
}

/// `YYYYMMDDTHHMMSS` with an optional `Z`; seconds up to 60 (leap second).
pub fn is_date_time(s: &str) -> bool {
    let s = s.trim();
    let s = s.strip_suffix('Z').unwrap_or(s);
    let Some((d, t)) = s.split_once('T') else {
        return false;
    };
    if !is_date(d) || t.len() != 6 || !digits(t) {
        return false;
    }
    let h: u32 = t[0..2].parse().unwrap_or(99);
    let mi: u32 = t[2..4].parse().unwrap_or(99);
    let se: u32 = t[4..6].parse().unwrap_or(99);
    h < 24 && mi < 60 && se <= 60
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unfolds_and_parses_params() {
        let t = "BEGIN:VCALENDAR\nBEGIN:VEVENT\nSUMMARY;LANGUAGE=en:Hello\n  world\nATTENDEE;CN=\"Doe, J\";ROLE=REQ-PARTICIPANT:mailto:j@x\nEND:VEVENT\nEND:VCALENDAR\n";
        let c = parse(t).unwrap();
        let e = &c[0].children[0];
        assert_eq!(e.prop("SUMMARY").unwrap().value, "Hello world");
        let a = e.prop("ATTENDEE").unwrap();
        assert_eq!(a.param("CN"), Some("Doe, J"));
        assert_eq!(a.value, "mailto:j@x");
    }

    #[test]
    fn dates() {
        assert!(is_date("20240229"));
        assert!(!is_date("20230229"));
        assert!(is_date_time("20240101T235960Z"));
        assert!(!is_date_time("20240101T240000"));
        assert!(!is_date_time("199709T180000Z"));
    }

    #[test]
    fn structure_errors() {
        assert!(parse("BEGIN:VCALENDAR\nEND:VEVENT\n").is_err());
        assert!(parse("FOO:bar\n").is_err());
        assert!(parse("BEGIN:VCALENDAR\nX;;:y\nEND:VCALENDAR\n").is_err());
        assert!(parse("BEGIN:VCALENDAR\nORGANIZER;CN=x\nEND:VCALENDAR\n").is_err());
    }
}
