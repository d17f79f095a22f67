//! Concurrency: preconditions hold under racing clients, revisions are one per write, and
//! sync-collection from any earlier token returns exactly the changes after it — in one
//! process, and with two `almanac serve` processes sharing one database.
//!
//! Time is a logical clock: one atomic counter ticked before each request is sent and after
//! its answer arrives. A write acknowledged before a token was asked for is in that token's
//! state; a write sent after the token arrived is not. Writes overlapping a token request may
//! fall either side, so for tokens taken while writers run the check has a must-list and a
//! may-list; tokens taken between phases (no write in flight) are checked exactly.

use crate::support::*;
use almanac::dav::xml::NS_DAV;
use futures_util::future::join_all;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// One server to talk to, in this process or another.
#[derive(Clone)]
pub struct Peer {
    base: String,
    http: reqwest::Client,
}

impl Peer {
    fn at(addr: std::net::SocketAddr) -> Peer {
        Peer {
            base: format!("http://{addr}"),
            http: reqwest::Client::new(),
        }
    }

    fn req(&self, method: &str, path: &str) -> Req {
        request(
            &self.http,
            &format!("{}{path}", self.base),
            Some(ALICE),
            method,
        )
    }
}

pub async fn if_match_race_has_one_winner(s: &TestServer) {
    if_match_races(&Peer::at(s.addr), &Peer::at(s.addr)).await;
}

pub async fn concurrent_writers_keep_sync_exact(s: &TestServer) {
    concurrent_writers(&[Peer::at(s.addr)]).await;
}

/// Two clients update with the same If-Match: one wins, one gets 412, every round; the same
/// for create-only PUTs (If-None-Match: *) and for a DELETE racing a PUT.
async fn if_match_races(a: &Peer, b: &Peer) {
    let href = "/calendars/alice/default/race.ics";
    let mut etag = a
        .req("PUT", href)
        .ics(&event("race", "v0"))
        .send()
        .await
        .status(201)
        .header("etag")
        .expect("etag")
        .to_owned();
    for round in 0..20 {
        let (va, vb) = (
            event("race", &format!("a{round}")),
            event("race", &format!("b{round}")),
        );
        let (ra, rb) = tokio::join!(
            a.req("PUT", href).header("If-Match", &etag).ics(&va).send(),
            b.req("PUT", href).header("If-Match", &etag).ics(&vb).send()
        );
        let mut codes = [ra.status, rb.status];
        codes.sort_unstable();
        assert_eq!(codes, [204, 412], "round {round}: {ra:?} {rb:?}");
        let (winner, body) = if ra.status == 204 {
            (&ra, &va)
        } else {
            (&rb, &vb)
        };
        etag = winner.header("etag").expect("etag").to_owned();
        let get = a.req("GET", href).send().await;
        assert_eq!(
            &get.status(200).body,
            body,
            "round {round}: the winner's bytes"
        );
        assert_eq!(get.header("etag"), Some(etag.as_str()));
    }
    let peers = [a, b];
    for round in 0..10 {
        let href = format!("/calendars/alice/default/create{round}.ics");
        let puts = (0..5).map(|i| {
            peers[i % 2]
                .req("PUT", &href)
                .header("If-None-Match", "*")
                .ics(&event(&format!("create{round}"), &format!("writer {i}")))
                .send()
        });
        let answers = join_all(puts).await;
        let created: Vec<&Resp> = answers.iter().filter(|r| r.status == 201).collect();
        assert_eq!(created.len(), 1, "round {round}: {answers:?}");
        assert!(
            answers.iter().all(|r| r.status == 201 || r.status == 412),
            "{answers:?}"
        );
        let get = a.req("GET", &href).send().await;
        assert_eq!(get.header("etag"), created[0].header("etag"));
    }
    for round in 0..10 {
        let href = format!("/calendars/alice/default/doomed{round}.ics");
        let etag = a
            .req("PUT", &href)
            .ics(&event(&format!("doomed{round}"), "v0"))
            .send()
            .await
            .status(201)
            .header("etag")
            .expect("etag")
            .to_owned();
        let update = event(&format!("doomed{round}"), "v1");
        let (del, put) = tokio::join!(
            a.req("DELETE", &href).header("If-Match", &etag).send(),
            b.req("PUT", &href)
                .header("If-Match", &etag)
                .ics(&update)
                .send()
        );
        let mut codes = [del.status, put.status];
        codes.sort_unstable();
        assert_eq!(codes, [204, 412], "round {round}: {del:?} {put:?}");
        let get = a.req("GET", &href).send().await;
        if del.status == 204 {
            get.status(404);
        } else {
            assert_eq!(get.status(200).body, update);
        }
    }
}

/// One acknowledged write: which object, when it was sent and answered (logical clock), and
/// the ETag it left (`None`: deleted).
#[derive(Debug, Clone)]
struct Op {
    href: String,
    sent: u64,
    acked: u64,
    etag: Option<String>,
}

/// A sync token and when it was asked for and answered.
#[derive(Debug, Clone)]
struct Token {
    token: String,
    sent: u64,
    answered: u64,
}

impl Token {
    fn revision(&self) -> i64 {
        self.token
            .rsplit(':')
            .next()
            .and_then(|r| r.parse().ok())
            .unwrap_or_else(|| panic!("no revision in {}", self.token))
    }
}

struct Clock(AtomicU64);

impl Clock {
    fn tick(&self) -> u64 {
        self.0.fetch_add(1, Ordering::SeqCst)
    }
}

const WRITERS: usize = 50;

fn obj(w: usize, j: usize) -> String {
    format!("/calendars/alice/default/w{w}-{j}.ics")
}

async fn token(peer: &Peer, clock: &Clock) -> Token {
    let sent = clock.tick();
    let r = peer
        .req("PROPFIND", CAL)
        .depth("0")
        .xml(r#"<D:propfind xmlns:D="DAV:"><D:prop><D:sync-token/></D:prop></D:propfind>"#)
        .send()
        .await;
    let answered = clock.tick();
    let token = r.prop_text(CAL, NS_DAV, "sync-token");
    Token {
        token,
        sent,
        answered,
    }
}

/// One write through `peer`, recorded on the clock; it must succeed.
async fn write(
    peer: &Peer,
    clock: &Clock,
    method: &str,
    href: &str,
    cond: (&str, &str),
    body: Option<String>,
) -> Op {
    let mut req = peer.req(method, href).header(cond.0, cond.1);
    if let Some(b) = &body {
        req = req.ics(b);
    }
    let sent = clock.tick();
    let r = req.send().await;
    let acked = clock.tick();
    assert!(matches!(r.status, 201 | 204), "{method} {href}: {r:?}");
    Op {
        href: href.to_owned(),
        sent,
        acked,
        etag: body.map(|_| r.header("etag").expect("etag").to_owned()),
    }
}

/// Tokens taken per phase while writers run: enough to land between and amid writes, few
/// enough that checking each stays cheap.
const SAMPLES: usize = 25;

/// Takes tokens through the peers in turn until `done` (at most [`SAMPLES`]).
async fn sample(peers: &[Peer], clock: &Clock, done: &AtomicBool) -> Vec<Token> {
    let mut out = Vec::new();
    while !done.load(Ordering::SeqCst) && out.len() < SAMPLES {
        out.push(token(&peers[out.len() % peers.len()], clock).await);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    out
}

/// 50 writers on one calendar, spread over `peers`: each creates three objects (phase 1),
/// then updates one, deletes one and updates the third (phase 2), every write conditional.
/// Tokens are taken before, between and after the phases (exact) and continuously during
/// them (bounded); each is then checked against the log of acknowledged writes.
async fn concurrent_writers(peers: &[Peer]) {
    let clock = Clock(AtomicU64::new(0));
    let peer = |w: usize| &peers[w % peers.len()];
    let t0 = token(&peers[0], &clock).await;

    let done = AtomicBool::new(false);
    let phase1 = async {
        let writers = (0..WRITERS).map(|w| {
            let clock = &clock;
            async move {
                let mut ops = Vec::new();
                for j in 0..3 {
                    let body = event(&format!("w{w}-{j}"), "created");
                    ops.push(
                        write(
                            peer(w),
                            clock,
                            "PUT",
                            &obj(w, j),
                            ("If-None-Match", "*"),
                            Some(body),
                        )
                        .await,
                    );
                }
                ops
            }
        });
        let ops: Vec<Op> = join_all(writers).await.into_iter().flatten().collect();
        done.store(true, Ordering::SeqCst);
        ops
    };
    let (mut ops, mut sampled) = tokio::join!(phase1, sample(peers, &clock, &done));
    let t_mid = token(peers.last().expect("a peer"), &clock).await;

    let etags: BTreeMap<String, String> = ops
        .iter()
        .map(|o| (o.href.clone(), o.etag.clone().expect("created")))
        .collect();
    let done = AtomicBool::new(false);
    let phase2 = async {
        let writers = (0..WRITERS).map(|w| {
            let (clock, etags) = (&clock, &etags);
            // The other process this time, where there are two.
            let p = peer(w + 1);
            async move {
                vec![
                    write(
                        p,
                        clock,
                        "PUT",
                        &obj(w, 0),
                        ("If-Match", &etags[&obj(w, 0)]),
                        Some(event(&format!("w{w}-0"), "updated")),
                    )
                    .await,
                    write(
                        p,
                        clock,
                        "DELETE",
                        &obj(w, 1),
                        ("If-Match", &etags[&obj(w, 1)]),
                        None,
                    )
                    .await,
                    write(
                        p,
                        clock,
                        "PUT",
                        &obj(w, 2),
                        ("If-Match", &etags[&obj(w, 2)]),
                        Some(event(&format!("w{w}-2"), "updated")),
                    )
                    .await,
                ]
            }
        });
        let ops: Vec<Op> = join_all(writers).await.into_iter().flatten().collect();
        done.store(true, Ordering::SeqCst);
        ops
    };
    let (ops2, sampled2) = tokio::join!(phase2, sample(peers, &clock, &done));
    ops.extend(ops2);
    sampled.extend(sampled2);
    let t_end = token(&peers[0], &clock).await;

    // Every write took exactly one revision.
    assert_eq!(
        t_end.revision() - t0.revision(),
        ops.len() as i64,
        "{} writes moved the revision from {} to {}",
        ops.len(),
        t0.revision(),
        t_end.revision()
    );
    let last: BTreeMap<&str, &Op> = {
        let mut m = BTreeMap::new();
        for o in &ops {
            let e = m.entry(o.href.as_str()).or_insert(o);
            if o.acked > e.acked {
                *e = o;
            }
        }
        m
    };
    let mut by_href: BTreeMap<&str, Vec<&Op>> = BTreeMap::new();
    for o in &ops {
        by_href.entry(o.href.as_str()).or_default().push(o);
    }
    let exact = [&t0, &t_mid, &t_end];
    let mut tokens: Vec<&Token> = exact.iter().copied().chain(sampled.iter()).collect();
    tokens.sort_by_key(|t| t.sent);
    // Revisions never go backwards between tokens that do not overlap.
    for (i, a) in tokens.iter().enumerate() {
        for b in &tokens[i + 1..] {
            if a.answered < b.sent {
                assert!(a.revision() <= b.revision(), "{a:?} then {b:?}");
            }
        }
    }
    for (n, t) in tokens.iter().enumerate() {
        // What the token's revision must count: writes acknowledged before it was asked for,
        // and at most those sent before it was answered.
        let rev = t.revision() - t0.revision();
        let acked_before = ops.iter().filter(|o| o.acked < t.sent).count() as i64;
        let sent_before = ops.iter().filter(|o| o.sent < t.answered).count() as i64;
        assert!(
            (acked_before..=sent_before).contains(&rev),
            "token {n} ({t:?}): revision +{rev}, expected {acked_before}..={sent_before}"
        );
        let r = peers[n % peers.len()]
            .req("REPORT", CAL)
            .xml(&sync_body(&t.token, ""))
            .send()
            .await;
        r.status(207);
        // One parse per answer: (href, ETag or None for a 404).
        let got: BTreeMap<String, Option<String>> = r
            .responses()
            .into_iter()
            .map(|(h, resp)| {
                let etag = resp
                    .children_named(NS_DAV, "propstat")
                    .filter_map(|ps| ps.child(NS_DAV, "prop")?.child(NS_DAV, "getetag"))
                    .map(|e| e.text())
                    .next();
                if etag.is_none() {
                    let status = resp
                        .child(NS_DAV, "status")
                        .map(|s| s.text())
                        .unwrap_or_default();
                    assert!(
                        status.contains(" 404 "),
                        "{h}: neither ETag nor 404: {status}"
                    );
                }
                (h, etag)
            })
            .collect();
        let mut must = BTreeSet::new();
        let mut may = BTreeSet::new();
        for (href, on_href) in &by_href {
            if on_href.iter().any(|o| o.sent > t.answered) {
                must.insert(href.to_string());
            } else if !on_href.iter().all(|o| o.acked < t.sent) {
                may.insert(href.to_string());
            }
        }
        if exact.iter().any(|e| std::ptr::eq(*e, *t)) {
            assert!(
                may.is_empty(),
                "token {n} was taken with writes in flight: {may:?}"
            );
        }
        for h in &must {
            assert!(
                got.contains_key(h),
                "token {n} ({t:?}): {h} changed after it but is not reported"
            );
        }
        for (h, etag) in &got {
            assert!(
                must.contains(h) || may.contains(h),
                "token {n} ({t:?}): {h} is reported but did not change after it"
            );
            // Whatever is reported is the current state.
            assert_eq!(etag, &last[h.as_str()].etag, "token {n}: {h}");
        }
    }
    // And the calendar holds exactly the surviving objects of the writers.
    let listing = peers[0]
        .req("PROPFIND", CAL)
        .depth("1")
        .xml(r#"<D:propfind xmlns:D="DAV:"><D:prop><D:getetag/></D:prop></D:propfind>"#)
        .send()
        .await;
    // (Objects of earlier scenarios on the same calendar aside.)
    let listed: BTreeSet<String> = listing
        .hrefs()
        .into_iter()
        .filter(|h| h.starts_with("/calendars/alice/default/w"))
        .collect();
    let alive: BTreeSet<String> = last
        .iter()
        .filter(|(_, o)| o.etag.is_some())
        .map(|(h, _)| h.to_string())
        .collect();
    assert_eq!(listed, alive);
}

/// An `almanac serve` child process, killed when dropped.
struct Server {
    child: std::process::Child,
    addr: std::net::SocketAddr,
    _log: tempfile::NamedTempFile,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const BIN: &str = env!("CARGO_BIN_EXE_almanac");

/// Runs `almanac ARGS` against `db`, with `stdin` as standard input; it must succeed.
async fn cli(db: &TestDb, args: &[&str], stdin: &str) {
    let (url, args, stdin) = (
        db.url.clone(),
        args.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        stdin.to_owned(),
    );
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut child = std::process::Command::new(BIN)
            .args(&args)
            .env("ALMANAC_DATABASE_URL", &url)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run almanac");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin.as_bytes())
            .expect("write stdin");
        let out = child.wait_with_output().expect("wait");
        assert!(
            out.status.success(),
            "almanac {args:?}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    })
    .await
    .expect("cli task");
}

impl Server {
    /// Starts `almanac serve` on a free port over `db` and waits until it answers.
    async fn start(db: &TestDb) -> Server {
        for _attempt in 0..5 {
            // The port is free now; another process could take it before the server binds,
            // in which case the server exits and another port is tried.
            let addr = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("free port");
            let log = tempfile::NamedTempFile::new().expect("log file");
            let child = std::process::Command::new(BIN)
                .arg("serve")
                .env("ALMANAC_DATABASE_URL", &db.url)
                .env("ALMANAC_LISTEN", addr.to_string())
                .env("ALMANAC_ADMIN_PASSWORD", "admin-secret-pw")
                .env("ALMANAC_LOG", "warn")
                .stdout(std::process::Stdio::null())
                .stderr(log.reopen().expect("log"))
                .spawn()
                .expect("start almanac serve");
            let mut server = Server {
                child,
                addr,
                _log: log,
            };
            let http = reqwest::Client::new();
            for _ in 0..600 {
                if let Ok(Some(status)) = server.child.try_wait() {
                    let log = std::fs::read_to_string(server._log.path()).unwrap_or_default();
                    if log.contains("binding") {
                        break;
                    }
                    panic!("almanac serve exited with {status}: {log}");
                }
                if let Ok(r) = http.get(format!("http://{addr}/healthz")).send().await {
                    if r.status().is_success() {
                        return server;
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            if server.child.try_wait().ok().flatten().is_none() {
                let log = std::fs::read_to_string(server._log.path()).unwrap_or_default();
                panic!("almanac serve on {addr} never became healthy: {log}");
            }
        }
        panic!("could not start almanac serve on a free port");
    }
}

/// Two `almanac serve` processes on one database (Postgres; SQLite in WAL mode too): the
/// same races and the same 50 writers, spread over both processes, keep preconditions,
/// revisions and sync exactly as one process does.
pub async fn two_processes_share_one_database(db: &TestDb) {
    for (name, password) in [ALICE, BOB] {
        cli(
            db,
            &[
                "user",
                "add",
                name,
                "--email",
                &format!("{name}@example.com"),
                "--password-stdin",
            ],
            &format!("{password}\n"),
        )
        .await;
    }
    let (a, b) = tokio::join!(Server::start(db), Server::start(db));
    let peers = [Peer::at(a.addr), Peer::at(b.addr)];
    // A hang becomes a failure here, so the child processes are killed on the way out
    // instead of outliving a test runner that was killed from outside.
    tokio::time::timeout(Duration::from_secs(300), async {
        if_match_races(&peers[0], &peers[1]).await;
        concurrent_writers(&peers).await;
    })
    .await
    .expect("the two-process races did not finish");
    // Both processes see the same state.
    let listing = |p: &Peer| {
        p.req("PROPFIND", CAL)
            .depth("1")
            .xml(r#"<D:propfind xmlns:D="DAV:" xmlns:CS="http://calendarserver.org/ns/"><D:prop><D:getetag/><CS:getctag/></D:prop></D:propfind>"#)
            .send()
    };
    let (la, lb) = tokio::join!(listing(&peers[0]), listing(&peers[1]));
    assert_eq!(la.status(207).body, lb.status(207).body);
    drop((a, b));
}
