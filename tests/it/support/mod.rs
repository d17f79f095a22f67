//! Test support: a real server on an ephemeral port over a fresh database (SQLite in a temp
//! directory, or a new Postgres database created from `ALMANAC_TEST_POSTGRES` and dropped
//! afterwards), and a small DAV client with assertions that print the whole response when
//! they fail.

use almanac::auth::Authenticator;
use almanac::config::Config;
use almanac::dav::xml::{self, Element, NS_DAV};
use almanac::state::AppState;
use almanac::store::{self, DynStore};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

pub const ALICE: (&str, &str) = ("alice", "alice-secret-pw");
pub const BOB: (&str, &str) = ("bob", "bob-secret-pw");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// Where a test's database lives; dropping it removes the database.
pub struct TestDb {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

impl TestDb {
    pub async fn create(backend: Backend) -> TestDb {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}/almanac.db", dir.path().display());
                TestDb {
                    url,
                    _dir: Some(dir),
                    pg: None,
                }
            }
            Backend::Postgres => {
                let base =
                    std::env::var("ALMANAC_TEST_POSTGRES").expect("ALMANAC_TEST_POSTGRES is set");
                let name = format!("almanac_t_{:016x}", rand_u64());
                let admin = sqlx::postgres::PgPoolOptions::new()
                    .max_connections(1)
                    .connect(&base)
                    .await
                    .unwrap_or_else(|e| {
                        panic!(
                            "cannot reach Postgres at ALMANAC_TEST_POSTGRES ({}): {e}",
                            store::redact(&base)
                        )
                    });
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&admin)
                    .await
                    .expect("create database");
                admin.close().await;
                let url = replace_db(&base, &name);
                TestDb {
                    url,
                    _dir: None,
                    pg: Some((base, name)),
                }
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((base, name)) = self.pg.take() {
            // Drop runs inside or outside a runtime; a thread with its own runtime works in both.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async {
                    if let Ok(admin) = sqlx::postgres::PgPoolOptions::new()
                        .max_connections(1)
                        .connect(&base)
                        .await
                    {
                        let _ =
                            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                                .execute(&admin)
                                .await;
                        admin.close().await;
                    }
                });
            })
            .join();
        }
    }
}

fn replace_db(url: &str, db: &str) -> String {
    let (head, query) = match url.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (url, None),
    };
    let scheme_end = head.find("://").map_or(0, |i| i + 3);
    let base = match head[scheme_end..].find('/') {
        Some(i) => &head[..scheme_end + i],
        None => head,
    };
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}

pub fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.finish()
}

/// A running server.
pub struct TestServer {
    pub addr: SocketAddr,
    pub store: DynStore,
    /// The server's authenticator, for what only it can tell (argon2 concurrency).
    pub auth: Arc<Authenticator>,
    /// The database the server runs on (`sqlite://…` or `postgres://…`).
    pub db_url: String,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    http: reqwest::Client,
}

impl TestServer {
    /// Starts a server over `db` with users alice and bob.
    pub async fn start(db: &TestDb) -> TestServer {
        Self::start_with(db, Config::default(), true).await
    }

    pub async fn start_with(db: &TestDb, mut config: Config, add_users: bool) -> TestServer {
        config.database_url = db.url.clone();
        let store = store::open(&db.url).await.expect("open store");
        if add_users {
            for (u, p) in [ALICE, BOB] {
                almanac::users::add_user(store.as_ref(), u, Some(&format!("{u}@example.com")), p)
                    .await
                    .expect("add user");
            }
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = oneshot::channel::<()>();
        let state = AppState::new(store.clone(), config);
        let auth = state.auth.clone();
        let task = tokio::spawn(async move {
            almanac::app::serve(listener, state, async {
                let _ = rx.await;
            })
            .await
            .expect("serve");
        });
        TestServer {
            addr,
            store,
            auth,
            db_url: db.url.clone(),
            shutdown: Some(tx),
            task: Some(task),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
        }
    }

    /// Stops the server and waits until it has.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }

    /// Sends a raw request head (no body follows) as alice and returns the status code. For
    /// what an HTTP client library would not send as is (a Content-Length with no body behind
    /// it, malformed headers).
    pub async fn raw_status(&self, method: &str, path: &str, extra_headers: &str) -> u16 {
        use base64::Engine;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let auth =
            base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", ALICE.0, ALICE.1));
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Basic {auth}\r\n{extra_headers}\r\n",
            self.addr
        );
        let mut sock = tokio::net::TcpStream::connect(self.addr)
            .await
            .expect("connect");
        sock.write_all(head.as_bytes()).await.expect("write");
        let mut buf = Vec::new();
        let mut chunk = [0u8; 1024];
        while !buf.windows(2).any(|w| w == b"\r\n") {
            let n = sock.read(&mut chunk).await.expect("read");
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let line = String::from_utf8_lossy(&buf);
        line.split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("no status line in {line:?}"))
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// A request as alice.
    pub fn req(&self, method: &str, path: &str) -> Req {
        self.req_as(Some(ALICE), method, path)
    }

    pub fn req_as(&self, user: Option<(&str, &str)>, method: &str, path: &str) -> Req {
        request(&self.http, &self.url(path), user, method)
    }

    /// Sends `bytes` as they are on a new connection and reads the answer. For what an HTTP
    /// library refuses to send: invalid UTF-8 in the request line or headers, overlong or
    /// malformed heads, conflicting framing.
    pub async fn raw(&self, bytes: &[u8]) -> RawResp {
        raw_exchange(self.addr, bytes).await
    }

    /// A request head as alice, with `extra` header lines (each ending in CRLF), as bytes.
    pub fn raw_head(&self, method: &str, target: &[u8], extra: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(method.as_bytes());
        v.push(b' ');
        v.extend_from_slice(target);
        v.extend_from_slice(
            format!(
                " HTTP/1.1\r\nHost: {}\r\nAuthorization: {}\r\n",
                self.addr,
                basic(ALICE)
            )
            .as_bytes(),
        );
        v.extend_from_slice(extra);
        v.extend_from_slice(b"\r\n");
        v
    }
}

/// `Basic …` credentials of `user`.
pub fn basic((u, p): (&str, &str)) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
    )
}

/// A request to `url` with `client`, as `user`.
pub fn request(
    client: &reqwest::Client,
    url: &str,
    user: Option<(&str, &str)>,
    method: &str,
) -> Req {
    let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut b = client.request(m, url);
    if let Some((u, p)) = user {
        b = b.basic_auth(u, Some(p));
    }
    let path = url.splitn(4, '/').nth(3).unwrap_or_default();
    Req {
        b,
        desc: format!("{method} /{path}"),
    }
}

/// What came back on a raw connection.
#[derive(Debug)]
pub struct RawResp {
    /// 0 when the server closed the connection without answering.
    pub status: u16,
    /// Header lines, names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// How long a raw exchange may take before the test gives up: a hang guard, not a measurement.
const RAW_PATIENCE: Duration = Duration::from_secs(60);

/// Writes `bytes` to a new connection to `addr` and reads one response (or the close).
pub async fn raw_exchange(addr: SocketAddr, bytes: &[u8]) -> RawResp {
    let mut sock = tokio::net::TcpStream::connect(addr).await.expect("connect");
    use tokio::io::AsyncWriteExt;
    // The server may answer and close before reading everything (413, 431): a failed write
    // is then expected, the answer is what counts.
    let _ = sock.write_all(bytes).await;
    read_response(&mut sock).await
}

/// Reads one HTTP/1.1 response from `sock` (Content-Length or chunked framing, or until close).
pub async fn read_response(sock: &mut tokio::net::TcpStream) -> RawResp {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let read = async {
        loop {
            if let Some(done) = complete_response(&buf) {
                return done;
            }
            match sock.read(&mut chunk).await {
                Ok(0) | Err(_) => {
                    return complete_response(&buf).unwrap_or_else(|| parse_partial(&buf))
                }
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    };
    tokio::time::timeout(RAW_PATIENCE, read)
        .await
        .expect("the server neither answered nor closed the connection")
}

/// The status line and headers (with an empty body) and where the body starts.
fn parse_head(buf: &[u8]) -> Option<(RawResp, usize)> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..end]);
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let head = RawResp {
        status,
        headers,
        body: Vec::new(),
    };
    Some((head, end + 4))
}

fn complete_response(buf: &[u8]) -> Option<RawResp> {
    let (head, start) = parse_head(buf)?;
    let RawResp {
        status, headers, ..
    } = head;
    let find = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let body = &buf[start..];
    if let Some(len) = find("content-length").and_then(|v| v.parse::<usize>().ok()) {
        if body.len() < len {
            return None;
        }
        return Some(RawResp {
            status,
            headers,
            body: body[..len].to_vec(),
        });
    }
    if find("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        let mut out = Vec::new();
        let mut rest = body;
        loop {
            let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
            let size = usize::from_str_radix(
                String::from_utf8_lossy(&rest[..line_end])
                    .split(';')
                    .next()?
                    .trim(),
                16,
            )
            .ok()?;
            rest = &rest[line_end + 2..];
            if size == 0 {
                return Some(RawResp {
                    status,
                    headers,
                    body: out,
                });
            }
            if rest.len() < size + 2 {
                return None;
            }
            out.extend_from_slice(&rest[..size]);
            rest = &rest[size + 2..];
        }
    }
    // Neither: the body runs to the close; only complete once the connection ended.
    None
}

fn parse_partial(buf: &[u8]) -> RawResp {
    match parse_head(buf) {
        Some((head, start)) => RawResp {
            body: buf[start..].to_vec(),
            ..head
        },
        None => RawResp {
            status: 0,
            headers: Vec::new(),
            body: buf.to_vec(),
        },
    }
}

pub struct Req {
    b: reqwest::RequestBuilder,
    desc: String,
}

impl Req {
    pub fn header(mut self, k: &str, v: &str) -> Self {
        self.b = self.b.header(k, v);
        self
    }
    pub fn depth(self, d: &str) -> Self {
        self.header("Depth", d)
    }
    pub fn body(mut self, s: impl Into<String>) -> Self {
        self.b = self.b.body(s.into());
        self
    }
    /// A body of arbitrary bytes (invalid UTF-8 included).
    pub fn bytes(mut self, b: Vec<u8>) -> Self {
        self.b = self.b.body(b);
        self
    }
    pub fn xml(self, s: &str) -> Self {
        self.header("Content-Type", "application/xml; charset=utf-8")
            .body(s.to_owned())
    }
    pub fn ics(self, s: &str) -> Self {
        self.header("Content-Type", "text/calendar; charset=utf-8")
            .body(s.to_owned())
    }
    pub async fn send(self) -> Resp {
        let r = self
            .b
            .send()
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", self.desc));
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let body = r.text().await.unwrap_or_default();
        Resp {
            desc: self.desc,
            status,
            headers,
            body,
        }
    }
}

#[derive(Debug)]
pub struct Resp {
    pub desc: String,
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Resp {
    fn fail(&self, what: &str) -> ! {
        panic!(
            "{what}\n--- {} → {}\n{}\n{}",
            self.desc,
            self.status,
            self.headers
                .iter()
                .map(|(k, v)| format!("{k}: {}", v.to_str().unwrap_or("?")))
                .collect::<Vec<_>>()
                .join("\n"),
            self.body
        )
    }

    #[track_caller]
    pub fn status(&self, code: u16) -> &Self {
        if self.status != code {
            self.fail(&format!("expected status {code}"));
        }
        self
    }

    pub fn header(&self, k: &str) -> Option<&str> {
        self.headers.get(k).and_then(|v| v.to_str().ok())
    }

    #[track_caller]
    pub fn has_header(&self, k: &str, contains: &str) -> &Self {
        match self.header(k) {
            Some(v) if v.contains(contains) => self,
            _ => self.fail(&format!("expected header {k} containing {contains:?}")),
        }
    }

    pub fn xml(&self) -> Element {
        xml::parse(self.body.as_bytes())
            .unwrap_or_else(|e| self.fail(&format!("response is not XML: {e}")))
    }

    /// Asserts a DAV:error body naming the precondition `local` in `ns`.
    #[track_caller]
    pub fn precondition(&self, ns: &str, local: &str) -> &Self {
        let x = self.xml();
        if !x.is(NS_DAV, "error") || x.child(ns, local).is_none() {
            self.fail(&format!("expected precondition {{{ns}}}{local}"));
        }
        self
    }

    /// hrefs of the multistatus responses, in order.
    pub fn hrefs(&self) -> Vec<String> {
        self.responses().iter().map(|(h, _)| h.clone()).collect()
    }

    /// (href, response element) of each multistatus response.
    pub fn responses(&self) -> Vec<(String, Element)> {
        let x = self.xml();
        if !x.is(NS_DAV, "multistatus") {
            self.fail("expected a multistatus");
        }
        x.children_named(NS_DAV, "response")
            .map(|r| {
                (
                    r.child(NS_DAV, "href")
                        .map(|h| h.text())
                        .unwrap_or_default(),
                    r.clone(),
                )
            })
            .collect()
    }

    /// The 200-propstat value element of `ns:local` in the response for `href`.
    pub fn prop(&self, href: &str, ns: &str, local: &str) -> Option<Element> {
        let (_, r) = self.responses().into_iter().find(|(h, _)| h == href)?;
        for ps in r.children_named(NS_DAV, "propstat") {
            let ok = ps
                .child(NS_DAV, "status")
                .is_some_and(|s| s.text().contains(" 200 "));
            if let (true, Some(p)) = (ok, ps.child(NS_DAV, "prop")) {
                if let Some(v) = p.child(ns, local) {
                    return Some(v.clone());
                }
            }
        }
        None
    }

    #[track_caller]
    pub fn prop_text(&self, href: &str, ns: &str, local: &str) -> String {
        match self.prop(href, ns, local) {
            Some(e) => e.text(),
            None => self.fail(&format!("no 200 propstat for {{{ns}}}{local} on {href}")),
        }
    }

    /// Status codes of each propstat's properties for `href`: (local name, status code).
    pub fn prop_statuses(&self, href: &str) -> Vec<(String, u16)> {
        let mut out = Vec::new();
        if let Some((_, r)) = self.responses().into_iter().find(|(h, _)| h == href) {
            for ps in r.children_named(NS_DAV, "propstat") {
                let code = ps
                    .child(NS_DAV, "status")
                    .and_then(|s| s.text().split(' ').nth(1).and_then(|c| c.parse().ok()))
                    .unwrap_or(0);
                if let Some(p) = ps.child(NS_DAV, "prop") {
                    for e in p.elements() {
                        out.push((e.name.local.clone(), code));
                    }
                }
            }
        }
        out
    }

    /// The status of a status-only response (sync removals, multiget misses).
    pub fn response_status(&self, href: &str) -> Option<u16> {
        let (_, r) = self.responses().into_iter().find(|(h, _)| h == href)?;
        r.child(NS_DAV, "status")
            .and_then(|s| s.text().split(' ').nth(1).and_then(|c| c.parse().ok()))
    }

    pub fn sync_token(&self) -> String {
        self.xml()
            .child(NS_DAV, "sync-token")
            .map(|t| t.text())
            .unwrap_or_else(|| self.fail("no sync-token"))
    }
}

pub type Scenario = for<'a> fn(&'a TestServer) -> Pin<Box<dyn Future<Output = ()> + 'a>>;

/// A VEVENT calendar object with the given UID and summary, CRLF line endings.
pub fn event(uid: &str, summary: &str) -> String {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Almanac tests//EN\r\nBEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20240101T000000Z\r\nDTSTART:20240105T100000Z\r\nDTEND:20240105T110000Z\r\nSUMMARY:{summary}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
}

pub fn todo(uid: &str) -> String {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Almanac tests//EN\r\nBEGIN:VTODO\r\nUID:{uid}\r\nDTSTAMP:20240101T000000Z\r\nSUMMARY:Task\r\nEND:VTODO\r\nEND:VCALENDAR\r\n"
    )
}

pub const CAL: &str = "/calendars/alice/default/";

/// Everything a write by `user` could change, as text: the home's members with their sync
/// tokens, CTags and names, and the default calendar's members with their ETags. Every
/// change of a user's data moves the home's revision, so equal snapshots mean nothing
/// changed.
pub async fn snapshot(s: &TestServer, user: (&str, &str)) -> String {
    let home = format!("/calendars/{}/", user.0);
    let props = r#"<D:propfind xmlns:D="DAV:" xmlns:CS="http://calendarserver.org/ns/"><D:prop><D:sync-token/><CS:getctag/><D:displayname/><D:getetag/></D:prop></D:propfind>"#;
    let h = s
        .req_as(Some(user), "PROPFIND", &home)
        .depth("1")
        .xml(props)
        .send()
        .await;
    h.status(207);
    let c = s
        .req_as(Some(user), "PROPFIND", &format!("{home}default/"))
        .depth("1")
        .xml(props)
        .send()
        .await;
    c.status(207);
    format!("{}\n{}", h.body, c.body)
}

pub fn sync_body(token: &str, extra: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?><D:sync-collection xmlns:D="DAV:"><D:sync-token>{token}</D:sync-token>{extra}<D:prop><D:getetag/><D:getcontenttype/></D:prop></D:sync-collection>"#
    )
}
