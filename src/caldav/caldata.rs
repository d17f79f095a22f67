//! `CALDAV:calendar-data` in REPORTs (RFC 4791 §9.6): partial retrieval (comp/prop selection),
//! `expand` (occurrences as UTC instances with RECURRENCE-ID), `limit-recurrence-set` and
//! `limit-freebusy-set`. Without any of these the stored bytes are served untouched. Pure.

use super::filter::{instance_matches, parse_time_range, FilterError, TimeRange};
use crate::dav::xml::{Element, NS_CALDAV};
use crate::ical::expand::{Budget, LimitExceeded, Series};
use crate::ical::freebusy::{periods_of, utc_stamp};
use crate::ical::parse::{parse, Component, Property};
use crate::ical::value::{prop_time, Time, TimeCtx};
use crate::ical::{write, ComponentKind};

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CompSel {
    pub name: String,
    pub allprop: bool,
    /// (name, novalue)
    pub props: Vec<(String, bool)>,
    pub allcomp: bool,
    pub comps: Vec<CompSel>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CalendarData {
    pub comp: Option<CompSel>,
    pub expand: Option<TimeRange>,
    pub limit_recurrence: Option<TimeRange>,
    pub limit_freebusy: Option<TimeRange>,
}

fn parse_comp(e: &Element) -> Result<CompSel, FilterError> {
    let name = e
        .attr("name")
        .map(|n| n.trim().to_ascii_uppercase())
        .filter(|n| !n.is_empty());
    let mut sel = CompSel {
        name: name.ok_or_else(|| FilterError::Invalid("comp without name".into()))?,
        ..Default::default()
    };
    for c in e.elements() {
        match (c.name.ns.as_str(), c.name.local.as_str()) {
            (NS_CALDAV, "allprop") => sel.allprop = true,
            (NS_CALDAV, "allcomp") => sel.allcomp = true,
            (NS_CALDAV, "prop") => {
                let n = c
                    .attr("name")
                    .map(|n| n.trim().to_ascii_uppercase())
                    .unwrap_or_default();
                sel.props.push((n, c.attr("novalue") == Some("yes")));
            }
            (NS_CALDAV, "comp") => sel.comps.push(parse_comp(c)?),
            _ => {
                return Err(FilterError::Invalid(format!(
                    "unexpected {} in comp",
                    c.name
                )))
            }
        }
    }
    // An empty <comp/> selects the whole component (RFC 4791 §7.8.1's VTIMEZONE example);
    // once anything is listed, only what is listed is returned.
    if e.elements().next().is_none() {
        sel.allprop = true;
        sel.allcomp = true;
    }
    Ok(sel)
}

impl CalendarData {
    /// Parses a `<C:calendar-data>` request element; `Err(None)` for an unsupported media type.
    pub fn parse(e: &Element) -> Result<CalendarData, Option<FilterError>> {
        if let Some(ct) = e.attr("content-type") {
            if !ct.trim().eq_ignore_ascii_case("text/calendar")
                || e.attr("version").is_some_and(|v| v.trim() != "2.0")
            {
                return Err(None);
            }
        }
        let mut cd = CalendarData::default();
        for c in e.elements() {
            match (c.name.ns.as_str(), c.name.local.as_str()) {
                (NS_CALDAV, "comp") => cd.comp = Some(parse_comp(c).map_err(Some)?),
                (NS_CALDAV, "expand") => cd.expand = Some(range_both(c)?),
                (NS_CALDAV, "limit-recurrence-set") => cd.limit_recurrence = Some(range_both(c)?),
                (NS_CALDAV, "limit-freebusy-set") => cd.limit_freebusy = Some(range_both(c)?),
                _ => {
                    return Err(Some(FilterError::Invalid(format!(
                        "unexpected {} in calendar-data",
                        c.name
                    ))))
                }
            }
        }
        Ok(cd)
    }

    /// Whether the stored bytes are the answer.
    pub fn is_plain(&self) -> bool {
        *self == CalendarData::default()
    }

    pub fn render(
        &self,
        raw: &str,
        ctx: &TimeCtx,
        budget: &Budget,
    ) -> Result<String, LimitExceeded> {
        if self.is_plain() {
            return Ok(raw.to_owned());
        }
        let Ok(mut tops) = parse(raw) else {
            return Ok(raw.to_owned());
        };
        let Some(mut cal) = tops.pop() else {
            return Ok(raw.to_owned());
        };
        if let Some(tr) = self.expand {
            cal = expand(&cal, ctx, tr, budget)?;
        } else if let Some(tr) = self.limit_recurrence {
            cal = limit_recurrence(&cal, ctx, tr, budget)?;
        }
        if let Some(tr) = self.limit_freebusy {
            limit_freebusy(&mut cal, ctx, tr);
        }
        if let Some(sel) = &self.comp {
            if sel.name == cal.name {
                cal = select(&cal, sel);
            }
        }
        Ok(write::to_string(&cal))
    }
}

/// expand and the limit elements need both bounds (RFC 4791 §9.6.5–9.6.7).
fn range_both(e: &Element) -> Result<TimeRange, Option<FilterError>> {
    if e.attr("start").is_none() || e.attr("end").is_none() {
        return Err(Some(FilterError::Invalid(format!(
            "{} needs start and end",
            e.name.local
        ))));
    }
    parse_time_range(e).map_err(Some)
}

fn select(c: &Component, sel: &CompSel) -> Component {
    let props = if sel.allprop {
        c.props.clone()
    } else {
        c.props
            .iter()
            .filter_map(|p| {
                let (_, novalue) = sel.props.iter().find(|(n, _)| *n == p.name)?;
                Some(if *novalue {
                    Property {
                        value: String::new(),
                        ..p.clone()
                    }
                } else {
                    p.clone()
                })
            })
            .collect()
    };
    let children = c
        .children
        .iter()
        .filter_map(|ch| {
            if let Some(s) = sel.comps.iter().find(|s| s.name == ch.name) {
                Some(select(ch, s))
            } else if sel.allcomp {
                Some(ch.clone())
            } else {
                None
            }
        })
        .collect();
    Component {
        name: c.name.clone(),
        props,
        children,
    }
}

fn utc_prop(name: &str, ts: i64) -> Property {
    Property {
        name: name.into(),
        params: vec![],
        value: utc_stamp(ts),
    }
}

fn date_prop(name: &str, t: &Time) -> Property {
    Property {
        name: name.into(),
        params: vec![("VALUE".into(), "DATE".into())],
        value: t.local().format("%Y%m%d").to_string(),
    }
}

/// RFC 4791 §9.6.5: every occurrence in the range as its own component, in UTC, with a
/// RECURRENCE-ID; no RRULE/RDATE/EXDATE and no VTIMEZONE left.
fn expand(
    cal: &Component,
    ctx: &TimeCtx,
    tr: TimeRange,
    budget: &Budget,
) -> Result<Component, LimitExceeded> {
    let mut out = Component {
        name: cal.name.clone(),
        props: cal.props.clone(),
        children: Vec::new(),
    };
    for kind in [
        ComponentKind::Event,
        ComponentKind::Todo,
        ComponentKind::Journal,
    ] {
        let series = Series::new(cal, kind);
        if series.comps.is_empty() {
            continue;
        }
        let recurring = series.is_recurring();
        let mut insts = series.instances(ctx, tr.start, tr.end, budget)?;
        insts.sort_by_key(|x| (x.start, x.rid));
        for x in insts {
            let src = series.comps[x.comp];
            if !instance_matches(kind, &x, src, ctx, tr) {
                continue;
            }
            let mut c = Component {
                name: src.name.clone(),
                props: Vec::new(),
                children: src.children.clone(),
            };
            let date = src
                .prop("DTSTART")
                .and_then(prop_time)
                .filter(|t| t.is_date());
            for p in &src.props {
                match p.name.as_str() {
                    "RRULE" | "RDATE" | "EXDATE" | "EXRULE" | "RECURRENCE-ID" => {}
                    "DTSTART" => c.props.push(match (&date, x.start) {
                        (Some(_), Some(s)) => {
                            date_prop("DTSTART", &Time::Date(ctx.floating.utc_to_local(s).date()))
                        }
                        (None, Some(s)) => utc_prop("DTSTART", s),
                        _ => p.clone(),
                    }),
                    "DTEND" | "DUE" => c.props.push(match (&date, x.end) {
                        (Some(_), Some(e)) => {
                            date_prop(&p.name, &Time::Date(ctx.floating.utc_to_local(e).date()))
                        }
                        (None, Some(e)) => utc_prop(&p.name, e),
                        _ => p.clone(),
                    }),
                    _ => c.props.push(p.clone()),
                }
            }
            if let (true, Some(rid)) = (recurring, x.rid) {
                let prop = match &date {
                    Some(_) => date_prop(
                        "RECURRENCE-ID",
                        &Time::Date(ctx.floating.utc_to_local(rid).date()),
                    ),
                    None => utc_prop("RECURRENCE-ID", rid),
                };
                let at = c
                    .props
                    .iter()
                    .position(|p| p.name == "DTSTART")
                    .map_or(c.props.len(), |i| i + 1);
                c.props.insert(at, prop);
            }
            out.children.push(c);
        }
    }
    // Other components (VFREEBUSY, X- components) pass through; zones are no longer needed.
    for ch in &cal.children {
        let k = ComponentKind::parse(&ch.name);
        if ch.name != "VTIMEZONE"
            && !matches!(
                k,
                Some(ComponentKind::Event | ComponentKind::Todo | ComponentKind::Journal)
            )
        {
            out.children.push(ch.clone());
        }
    }
    Ok(out)
}

/// RFC 4791 §9.6.6: the master, and only the overrides whose occurrence meets the range.
fn limit_recurrence(
    cal: &Component,
    ctx: &TimeCtx,
    tr: TimeRange,
    budget: &Budget,
) -> Result<Component, LimitExceeded> {
    let mut keep = vec![true; cal.children.len()];
    for kind in [
        ComponentKind::Event,
        ComponentKind::Todo,
        ComponentKind::Journal,
    ] {
        let series = Series::new(cal, kind);
        if series.comps.is_empty() {
            continue;
        }
        let insts = series.instances(ctx, tr.start, tr.end, budget)?;
        for (ci, child) in cal.children.iter().enumerate() {
            if child.name != kind.as_str() || child.prop("RECURRENCE-ID").is_none() {
                continue;
            }
            let Some(idx) = series.comps.iter().position(|c| std::ptr::eq(*c, child)) else {
                continue;
            };
            keep[ci] = insts
                .iter()
                .any(|x| x.comp == idx && instance_matches(kind, x, child, ctx, tr));
        }
    }
    let children = cal
        .children
        .iter()
        .zip(keep)
        .filter(|(_, k)| *k)
        .map(|(c, _)| c.clone())
        .collect();
    Ok(Component {
        name: cal.name.clone(),
        props: cal.props.clone(),
        children,
    })
}

/// RFC 4791 §9.6.7: only the FREEBUSY periods that meet the range.
fn limit_freebusy(cal: &mut Component, ctx: &TimeCtx, tr: TimeRange) {
    for c in cal.children.iter_mut().filter(|c| c.name == "VFREEBUSY") {
        let mut props = Vec::new();
        for p in c.props.drain(..) {
            if p.name != "FREEBUSY" {
                props.push(p);
                continue;
            }
            let kept: Vec<String> = periods_of(&p, ctx)
                .into_iter()
                .filter(|(s, e)| tr.start < *e && tr.end > *s)
                .map(|(s, e)| format!("{}/{}", utc_stamp(s), utc_stamp(e)))
                .collect();
            if !kept.is_empty() {
                props.push(Property {
                    value: kept.join(","),
                    ..p
                });
            }
        }
        c.props = props;
    }
}
