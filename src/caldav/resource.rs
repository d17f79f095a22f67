//! Resources of the URL space and their live properties (RFC 4918 §15, RFC 3744 §5,
//! RFC 4791 §5.2 and §6.2, RFC 5397, RFC 6578 §4, RFC 4331, CalendarServer ctag).
//!
//! Each kind of resource answers `live_prop(name) -> Option<PropValue>`; the PROPFIND
//! algorithm itself (allprop, propname, prop, 404 propstat) is written once, in `methods.rs`.

use crate::dav::multistatus::PropValue;
use crate::dav::path::{self, DavPath};
use crate::dav::xml::{QName, NS_CALDAV, NS_CS, NS_DAV};
use crate::dav::{DavError, DavResult};
use crate::ical::expand::Budget;
use crate::state::AppState;
use crate::store::{Collection, ObjectMeta, Principal};
use crate::timefmt::{http_date, rfc3339};
use std::sync::Arc;
use std::time::Instant;

/// A resolved request target.
#[derive(Debug, Clone)]
pub enum Res {
    Root,
    PrincipalsRoot,
    CalendarsRoot,
    Principal,
    Home(Collection),
    Calendar(Collection),
    /// The calendar is shared: a listing holds one per member, and a calendar's properties
    /// (a calendar-timezone VTIMEZONE, say) can be kilobytes.
    Object(Arc<Collection>, ObjectMeta),
    /// No calendar here yet; MKCALENDAR can make one.
    NewCalendar(String),
    /// No object here yet; PUT can make one.
    NewObject(Collection, String),
    /// An object path whose calendar does not exist.
    Orphan,
}

impl Res {
    /// Methods this resource supports: the single source of `Allow` and of 405 decisions.
    pub fn allowed(&self) -> &'static [&'static str] {
        match self {
            Res::Root | Res::PrincipalsRoot | Res::CalendarsRoot => &["OPTIONS", "PROPFIND"],
            Res::Principal => &["OPTIONS", "PROPFIND", "REPORT"],
            Res::Home(_) => &["OPTIONS", "PROPFIND", "PROPPATCH", "REPORT"],
            Res::Calendar(_) => &[
                "OPTIONS",
                "GET",
                "HEAD",
                "PROPFIND",
                "PROPPATCH",
                "REPORT",
                "DELETE",
            ],
            Res::Object(..) => &[
                "OPTIONS", "GET", "HEAD", "PUT", "DELETE", "PROPFIND", "COPY", "MOVE",
            ],
            Res::NewCalendar(_) => &["OPTIONS", "MKCALENDAR", "MKCOL"],
            Res::NewObject(..) => &["OPTIONS", "PUT"],
            Res::Orphan => &["OPTIONS"],
        }
    }

    pub fn exists(&self) -> bool {
        !matches!(self, Res::NewCalendar(_) | Res::NewObject(..) | Res::Orphan)
    }
}

/// What a request's path resolves to, fetched in the same statement that confirmed the
/// caller's cached credentials (`app::dav_inner`), so `resolve` need not ask the store again.
#[derive(Debug)]
pub enum Prefetched {
    /// `Store::calendar`'s answer for a calendar path.
    Calendar(Option<Collection>),
    /// `Store::calendar_object`'s answer for an object path: the calendar, if it exists, and
    /// the member (with its body for GET and HEAD), if it exists.
    Object(crate::store::CalendarObjectFound),
}

/// Per-request context: who asks, and the state they ask of.
pub struct Ctx<'a> {
    pub st: &'a AppState,
    pub me: &'a Principal,
    /// The caller's home, loaded once per request that needs quota or home properties.
    pub home: Option<Collection>,
    /// Set before `resolve` when the method will read the object's body (GET/HEAD), so the
    /// body comes with the resolution instead of in a second query.
    pub want_body: bool,
    /// The body fetched by `resolve` when `want_body` was set.
    pub prefetched: Option<crate::store::StoredObject>,
    /// The path's calendar (and member), already fetched with the request's authentication
    /// (`Request::prefetched`): `resolve` uses them instead of asking the store.
    pub found: Option<Prefetched>,
    /// When the request's time (`limits.request_timeout_seconds`) runs out. Long loops check
    /// it themselves: CPU work between awaits cannot be interrupted from outside.
    pub deadline: Option<Instant>,
}

impl<'a> Ctx<'a> {
    pub fn new(st: &'a AppState, me: &'a Principal) -> Self {
        Ctx {
            st,
            me,
            home: None,
            want_body: false,
            prefetched: None,
            found: None,
            deadline: None,
        }
    }

    /// Refuses to go on once the request's time is up (503 with `Retry-After`).
    pub fn check_deadline(&self) -> DavResult<()> {
        match self.deadline {
            Some(d) if Instant::now() >= d => Err(DavError::Status(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
            )),
            _ => Ok(()),
        }
    }

    /// The recurrence-expansion budget of this request: an instance count and the deadline.
    pub fn budget(&self) -> Budget {
        Budget::new(self.st.config.limits.max_instances_per_request).until(self.deadline)
    }

    /// Loads the home when one of `names` is a quota property, the only properties that read
    /// it: a listing or a report that asks for none costs one query less.
    pub async fn load_home_for<'n>(
        &mut self,
        names: impl IntoIterator<Item = &'n QName>,
    ) -> DavResult<()> {
        let quota = |q: &QName| {
            q.ns == NS_DAV
                && matches!(
                    q.local.as_str(),
                    "quota-used-bytes" | "quota-available-bytes"
                )
        };
        if names.into_iter().any(quota) {
            self.load_home().await?;
        }
        Ok(())
    }

    pub async fn load_home(&mut self) -> DavResult<&Collection> {
        if self.home.is_none() {
            self.home = Some(self.st.store.home(self.me.id).await?);
        }
        Ok(self.home.as_ref().expect("home loaded above"))
    }

    /// Resolves a path for the caller. Anything in another user's namespace is "not found",
    /// whether it exists or not, so nothing about other users can be learned.
    pub async fn resolve(&mut self, p: &DavPath) -> DavResult<Res> {
        if let Some(owner) = p.owner() {
            if owner != self.me.name {
                return Err(DavError::Status(axum::http::StatusCode::NOT_FOUND));
            }
        }
        let store = &self.st.store;
        Ok(match p {
            DavPath::Root => Res::Root,
            DavPath::PrincipalsRoot => Res::PrincipalsRoot,
            DavPath::CalendarsRoot => Res::CalendarsRoot,
            DavPath::Principal(_) => Res::Principal,
            DavPath::Home(_) => Res::Home(store.home(self.me.id).await?),
            DavPath::Calendar(_, c) => {
                let found = match self.found.take() {
                    Some(Prefetched::Calendar(found)) => found,
                    _ => store.calendar(self.me.id, c).await?,
                };
                match found {
                    Some(col) => Res::Calendar(col),
                    None => Res::NewCalendar(c.clone()),
                }
            }
            DavPath::Object(_, c, o) => {
                let found = match self.found.take() {
                    Some(Prefetched::Object(found)) => found,
                    _ => {
                        store
                            .calendar_object(self.me.id, c, o, self.want_body)
                            .await?
                    }
                };
                match found {
                    None => Res::Orphan,
                    Some((col, None)) => Res::NewObject(col, o.clone()),
                    Some((col, Some(obj))) => {
                        let meta = obj.meta.clone();
                        if self.want_body {
                            self.prefetched = Some(obj);
                        }
                        Res::Object(Arc::new(col), meta)
                    }
                }
            }
        })
    }

    pub fn sync_token(&self, c: &Collection) -> String {
        format!(
            "urn:almanac:sync:{}:{}:{}",
            self.st.store.instance_id(),
            c.id,
            c.revision
        )
    }

    /// Parses a sync token of collection `c`; any other token is `None`.
    pub fn parse_sync_token(&self, c: &Collection, token: &str) -> Option<i64> {
        let rest = token.strip_prefix("urn:almanac:sync:")?;
        let mut it = rest.split(':');
        let (inst, id, rev) = (it.next()?, it.next()?, it.next()?);
        if it.next().is_some()
            || inst != self.st.store.instance_id()
            || id.parse::<i64>().ok()? != c.id
        {
            return None;
        }
        rev.parse::<i64>().ok().filter(|r| *r >= 0)
    }

    pub fn href(&self, r: &Res) -> String {
        let me = &self.me.name;
        match r {
            Res::Root => "/".into(),
            Res::PrincipalsRoot => "/principals/".into(),
            Res::CalendarsRoot => "/calendars/".into(),
            Res::Principal => path::principal_href(me),
            Res::Home(_) => path::home_href(me),
            Res::Calendar(c) => path::calendar_href(me, &c.name),
            Res::Object(c, o) => path::object_href(me, &c.name, &o.name),
            Res::NewCalendar(n) => path::calendar_href(me, n),
            Res::NewObject(c, n) => path::object_href(me, &c.name, n),
            Res::Orphan => "/".into(),
        }
    }

    fn quota(&self) -> Option<(i64, i64)> {
        let used = self.home.as_ref()?.used_bytes.max(0);
        let quota = self.st.config.limits.quota_bytes as i64;
        Some((used, (quota - used).max(0)))
    }

    /// The value of a live property, or `None` where it does not apply.
    pub fn live_prop(&self, r: &Res, q: &QName) -> Option<PropValue> {
        use PropValue as V;
        let me = &self.me.name;
        let common = match (q.ns.as_str(), q.local.as_str()) {
            (NS_DAV, "current-user-principal") => Some(V::Href(path::principal_href(me))),
            (NS_DAV, "principal-collection-set") => Some(V::Href("/principals/".into())),
            (NS_DAV, "current-user-privilege-set") => Some(V::Privileges(privileges(r))),
            (NS_DAV, "owner")
                if !matches!(r, Res::Root | Res::PrincipalsRoot | Res::CalendarsRoot) =>
            {
                Some(V::Href(path::principal_href(me)))
            }
            _ => None,
        };
        if common.is_some() {
            return common;
        }
        match r {
            Res::Root | Res::PrincipalsRoot | Res::CalendarsRoot => {
                match (q.ns.as_str(), q.local.as_str()) {
                    (NS_DAV, "resourcetype") => Some(V::Children(vec![(NS_DAV, "collection")])),
                    _ => None,
                }
            }
            Res::Principal => match (q.ns.as_str(), q.local.as_str()) {
                (NS_DAV, "resourcetype") => Some(V::Children(vec![
                    (NS_DAV, "collection"),
                    (NS_DAV, "principal"),
                ])),
                (NS_DAV, "displayname") => Some(V::Text(me.clone())),
                (NS_DAV, "principal-URL") => Some(V::Href(path::principal_href(me))),
                (NS_DAV, "supported-report-set") => {
                    Some(V::Reports(vec![(NS_DAV, "expand-property")]))
                }
                (NS_CALDAV, "calendar-home-set") => Some(V::Href(path::home_href(me))),
                // No delegation yet: the proxy sets Apple asks for exist and are empty.
                (NS_CS, "calendar-proxy-read-for") | (NS_CS, "calendar-proxy-write-for") => {
                    Some(V::Empty)
                }
                (NS_CALDAV, "calendar-user-address-set") => {
                    let mut hrefs = Vec::new();
                    if let Some(e) = &self.me.email {
                        hrefs.push(format!("mailto:{e}"));
                    }
                    hrefs.push(path::principal_href(me));
                    Some(V::Hrefs(hrefs))
                }
                _ => None,
            },
            Res::Home(c) | Res::Calendar(c) => {
                let is_cal = matches!(r, Res::Calendar(_));
                match (q.ns.as_str(), q.local.as_str()) {
                    (NS_DAV, "resourcetype") if is_cal => Some(V::Children(vec![
                        (NS_DAV, "collection"),
                        (NS_CALDAV, "calendar"),
                    ])),
                    (NS_DAV, "resourcetype") => Some(V::Children(vec![(NS_DAV, "collection")])),
                    (NS_DAV, "displayname") => c.displayname.clone().map(V::Text),
                    (NS_DAV, "creationdate") => Some(V::Text(rfc3339(c.created_at))),
                    (NS_DAV, "getlastmodified") => Some(V::Text(http_date(c.updated_at))),
                    (NS_DAV, "sync-token") | (NS_CS, "getctag") => {
                        Some(V::Text(self.sync_token(c)))
                    }
                    (NS_DAV, "supported-report-set") if is_cal => Some(V::Reports(vec![
                        (NS_CALDAV, "calendar-multiget"),
                        (NS_CALDAV, "calendar-query"),
                        (NS_CALDAV, "free-busy-query"),
                        (NS_DAV, "sync-collection"),
                    ])),
                    (NS_DAV, "supported-report-set") => {
                        Some(V::Reports(vec![(NS_DAV, "sync-collection")]))
                    }
                    (NS_DAV, "quota-used-bytes") => {
                        self.quota().map(|(u, _)| V::Text(u.to_string()))
                    }
                    (NS_DAV, "quota-available-bytes") => {
                        self.quota().map(|(_, a)| V::Text(a.to_string()))
                    }
                    (NS_CALDAV, "calendar-description") if is_cal => {
                        c.description.clone().map(V::Text)
                    }
                    (NS_CALDAV, "calendar-timezone") if is_cal => c.timezone.clone().map(V::Text),
                    (NS_CALDAV, "supported-calendar-component-set") if is_cal => {
                        Some(V::Comps(c.components.iter().map(|k| k.as_str()).collect()))
                    }
                    (NS_CALDAV, "supported-calendar-data") if is_cal => {
                        Some(V::SupportedCalendarData)
                    }
                    (NS_CALDAV, "max-resource-size") if is_cal => {
                        Some(V::Text(self.st.config.limits.max_resource_size.to_string()))
                    }
                    _ => None,
                }
            }
            Res::Object(_, o) => match (q.ns.as_str(), q.local.as_str()) {
                (NS_DAV, "resourcetype") => Some(V::Empty),
                (NS_DAV, "getetag") => Some(V::Text(o.etag.clone())),
                (NS_DAV, "getcontenttype") => Some(V::Text(content_type(&o.component))),
                (NS_DAV, "getcontentlength") => Some(V::Text(o.size.to_string())),
                (NS_DAV, "getlastmodified") => Some(V::Text(http_date(o.modified_at))),
                (NS_DAV, "creationdate") => Some(V::Text(rfc3339(o.created_at))),
                _ => None,
            },
            Res::NewCalendar(_) | Res::NewObject(..) | Res::Orphan => None,
        }
    }
}

/// `text/calendar; charset=utf-8; component=vevent` (RFC 4791 §4.1 component parameter).
pub fn content_type(component: &str) -> String {
    format!(
        "text/calendar; charset=utf-8; component={}",
        component.to_ascii_lowercase()
    )
}

fn privileges(r: &Res) -> Vec<(&'static str, &'static str)> {
    match r {
        // A subscription: readable and renamable (removing it is the home's unbind); its
        // members are the refresher's.
        Res::Calendar(c) if c.read_only => vec![
            (NS_DAV, "read"),
            (NS_DAV, "write-properties"),
            (NS_DAV, "read-current-user-privilege-set"),
            (NS_CALDAV, "read-free-busy"),
        ],
        Res::Object(c, _) if c.read_only => vec![
            (NS_DAV, "read"),
            (NS_DAV, "read-current-user-privilege-set"),
            (NS_CALDAV, "read-free-busy"),
        ],
        Res::Home(_) | Res::Calendar(_) | Res::Object(..) => vec![
            (NS_DAV, "all"),
            (NS_DAV, "read"),
            (NS_DAV, "write"),
            (NS_DAV, "write-properties"),
            (NS_DAV, "write-content"),
            (NS_DAV, "bind"),
            (NS_DAV, "unbind"),
            (NS_DAV, "read-current-user-privilege-set"),
            (NS_CALDAV, "read-free-busy"),
        ],
        _ => vec![
            (NS_DAV, "read"),
            (NS_DAV, "read-current-user-privilege-set"),
        ],
    }
}

/// Properties listed by `allprop` (RFC 4918 §9.1: the RFC 4918 live properties; the many
/// computed CalDAV and ACL properties are only returned when asked for by name) besides the
/// dead properties.
pub fn allprop_names(r: &Res) -> Vec<QName> {
    let mut v = vec![QName::new(NS_DAV, "resourcetype")];
    match r {
        Res::Object(..) => {
            for n in [
                "getetag",
                "getcontenttype",
                "getcontentlength",
                "getlastmodified",
                "creationdate",
            ] {
                v.push(QName::new(NS_DAV, n));
            }
        }
        Res::Home(_) | Res::Calendar(_) => {
            for n in ["displayname", "creationdate", "getlastmodified"] {
                v.push(QName::new(NS_DAV, n));
            }
        }
        Res::Principal => v.push(QName::new(NS_DAV, "displayname")),
        _ => {}
    }
    v
}

/// Every live property Almanac computes; `propname` lists those a resource has.
pub const LIVE_PROPS: &[(&str, &str)] = &[
    (NS_DAV, "resourcetype"),
    (NS_DAV, "displayname"),
    (NS_DAV, "getetag"),
    (NS_DAV, "getcontenttype"),
    (NS_DAV, "getcontentlength"),
    (NS_DAV, "getlastmodified"),
    (NS_DAV, "creationdate"),
    (NS_DAV, "current-user-principal"),
    (NS_DAV, "principal-collection-set"),
    (NS_DAV, "current-user-privilege-set"),
    (NS_DAV, "owner"),
    (NS_DAV, "principal-URL"),
    (NS_DAV, "supported-report-set"),
    (NS_DAV, "sync-token"),
    (NS_DAV, "quota-used-bytes"),
    (NS_DAV, "quota-available-bytes"),
    (NS_CS, "getctag"),
    (NS_CALDAV, "calendar-home-set"),
    (NS_CALDAV, "calendar-user-address-set"),
    (NS_CALDAV, "calendar-description"),
    (NS_CALDAV, "calendar-timezone"),
    (NS_CALDAV, "supported-calendar-component-set"),
    (NS_CALDAV, "supported-calendar-data"),
    (NS_CALDAV, "max-resource-size"),
];
