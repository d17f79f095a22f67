//! Load and benchmark tool for any RFC 4791 (CalDAV) server: Almanac, Radicale, Xandikos, …
//!
//! ```sh
//! cargo run --release --example bench -- --url http://127.0.0.1:8008/ --user alice \
//!     --password-env ALICE_PASSWORD --events 1000 --runs 5 --pid "$SERVER_PID" --json out.json
//! ```
//!
//! It finds the calendar home (RFC 6764 / RFC 4791 §6.2: `current-user-principal`, then
//! `calendar-home-set`; `/.well-known/caldav` when the base URL does not answer), creates a fresh
//! calendar with MKCALENDAR, uploads N generated events with PUT (`If-None-Match: *`) and then
//! measures, over R runs: PROPFIND Depth 1, calendar-query for one week and one month,
//! calendar-multiget of 100, sync-collection (initial, and incremental after one change),
//! free-busy-query for one month and GET of one event under concurrent load. The events are
//! generated from a seed, so the tool knows every occurrence of every event and checks each
//! answer against its own expectation (RFC 4791 §9.9 overlap): a fast wrong answer is not a
//! result. A mismatch is printed loudly, recorded in the JSON and makes the exit status 1, but
//! the run goes on, so a peer's figures are still shown beside its mistakes.
//!
//! Output: a table (median, min, max) on stdout and, with `--json`, every raw sample.
//! Exit status: 0 all checks passed, 1 a check failed, 2 the run could not be done.
//!
//! With `--get-baseline URL` every GET load is paired with the same load against a reference
//! server (bench-peers.sh gives nginx serving the same bytes as a static file) and the pair's
//! ratio is recorded too.
//!
//! Every server gets one unrecorded warm-up run before the R measured ones.
//! Timings include the client: it runs on the same machine and shares its cores with the
//! server, as the peers' figures do. Run it against servers on loopback only.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, TimeDelta, TimeZone, Timelike};
use clap::Parser;
use quick_xml::events::Event as XmlEvent;
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;
use reqwest::{Method, StatusCode, Url};
use serde::Serialize;

const DAV: &str = "DAV:";
const CALDAV: &str = "urn:ietf:params:xml:ns:caldav";

/// The query windows are fixed dates inside the two generated years, chosen across DST changes:
/// the week holds the US change (2026-11-01), the month both March changes (US 03-08, EU 03-29).
const WEEK: (&str, &str) = ("20261026T000000Z", "20261102T000000Z");
const MONTH: (&str, &str) = ("20260301T000000Z", "20260401T000000Z");

#[derive(Parser, Debug)]
#[command(
    name = "bench",
    about = "Benchmark any CalDAV server: uploads generated events, measures and checks the answers"
)]
struct Args {
    /// Base URL (discovery via current-user-principal → calendar-home-set) or calendar-home URL.
    #[arg(long, required_unless_present_any = ["emit_event", "emit_events", "get_only", "calendar"])]
    url: Option<String>,
    /// User name for Basic authentication; without it no credentials are sent.
    #[arg(long)]
    user: Option<String>,
    /// Password (visible in the process list: prefer --password-env).
    #[arg(long, conflicts_with = "password_env")]
    password: Option<String>,
    /// Name of an environment variable holding the password.
    #[arg(long, value_name = "VAR")]
    password_env: Option<String>,
    /// Events to upload.
    #[arg(long, default_value_t = 1000)]
    events: usize,
    /// Measured runs per operation (the upload is timed in this many equal chunks).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// PID of the server process: its peak RSS (VmHWM) is reported. One process only.
    #[arg(long)]
    pid: Option<u32>,
    /// Write every raw sample, the checks and the set-up as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Concurrent PUTs during the upload.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Concurrent GETs in the GET load.
    #[arg(long, default_value_t = 16)]
    get_concurrency: usize,
    /// GET requests per run in the GET load.
    #[arg(long, default_value_t = 2000)]
    get_requests: usize,
    /// Seed of the generated calendar: the same seed gives the same events, byte for byte.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Keep the calendar instead of deleting it at the end.
    #[arg(long)]
    keep: bool,
    /// A name for the server in the output (e.g. "radicale").
    #[arg(long)]
    label: Option<String>,
    /// Only run the GET load against this URL (e.g. a static server holding --emit-event's file).
    #[arg(long, value_name = "URL", conflicts_with = "emit_event")]
    get_only: Option<String>,
    /// A reference server for the GET load (e.g. nginx serving --emit-event's file as a static
    /// file): every GET run is paired with a run of the same load against this URL, right
    /// before or after it (alternately), and the pair's ratio is a sample of its own
    /// (`get_vs_baseline`, %). On a shared, noisy machine a ratio of two loads a second apart
    /// holds still where one of two measurements minutes apart does not. Sent no credentials.
    #[arg(long, value_name = "URL", conflicts_with = "emit_event")]
    get_baseline: Option<String>,
    /// Write the event the GET load fetches (same seed) to FILE and exit.
    #[arg(long, value_name = "FILE")]
    emit_event: Option<PathBuf>,
    /// Use this existing calendar instead of discovering the home and creating one; it is not
    /// deleted at the end.
    #[arg(long, value_name = "URL")]
    calendar: Option<String>,
    /// Time the PUTs of events M..N only. Events 0..M go in first, untimed, or with --preloaded
    /// are already there: a server too slow to fill by PUT (Radicale and Xandikos need hours
    /// for 10,000 events) is loaded out of band and still measured on the same PUT window.
    #[arg(long, value_name = "M", default_value_t = 0)]
    put_from: usize,
    /// The calendar given with --calendar already holds events 0..M (M of --put-from).
    #[arg(long, requires = "calendar")]
    preloaded: bool,
    /// Write events 0..M (M of --put-from, or all when 0) into DIR as the files the tool would
    /// PUT (same names and bytes), for loading a server out of band, and exit.
    #[arg(long, value_name = "DIR", conflicts_with = "emit_event")]
    emit_events: Option<PathBuf>,
    /// Time-out of one request, in seconds.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
    /// A shell command run after the upload and before the first timed query; it must exit 0.
    /// bench-peers.sh uses it to wait until PostgreSQL's autovacuum has caught up with the
    /// load, as it does by itself within a minute or two of a bulk load.
    #[arg(long, value_name = "CMD")]
    after_load: Option<String>,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    match run(args).await {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("bench: error: {e:#}");
            std::process::exit(2);
        }
    }
}

/// Returns whether every check passed.
async fn run(args: Args) -> Result<bool> {
    if args.runs == 0 || args.events == 0 || args.concurrency == 0 || args.get_concurrency == 0 {
        bail!("--runs, --events, --concurrency and --get-concurrency must be at least 1");
    }
    if args.put_from >= args.events {
        bail!("--put-from must be below --events");
    }
    if let Some(dir) = &args.emit_events {
        let events = generate(args.seed, args.events);
        let upto = if args.put_from == 0 {
            events.len()
        } else {
            args.put_from
        };
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        for ev in &events[..upto] {
            let path = dir.join(&ev.name);
            std::fs::write(&path, ev.ics(0))
                .with_context(|| format!("writing {}", path.display()))?;
        }
        eprintln!("bench: wrote {upto} events into {}", dir.display());
        return Ok(true);
    }
    if let Some(path) = &args.emit_event {
        let events = generate(args.seed, args.events);
        let ev = &events[get_target(&events)];
        std::fs::write(path, ev.ics(0)).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("bench: wrote {} ({})", path.display(), ev.name);
        return Ok(true);
    }
    let password = match (&args.password, &args.password_env) {
        (Some(p), _) => Some(p.clone()),
        (None, Some(var)) => {
            Some(std::env::var(var).with_context(|| format!("--password-env: ${var} is not set"))?)
        }
        (None, None) => None,
    };
    let http = Http::new(
        args.user.clone(),
        password,
        args.timeout,
        args.get_concurrency,
    )?;
    let baseline = match &args.get_baseline {
        Some(u) => Some(Baseline {
            http: Http::new(None, None, args.timeout, args.get_concurrency)?,
            url: Url::parse(u).context("--get-baseline")?,
        }),
        None => None,
    };
    let baseline = baseline.as_ref();
    let mut report = Report::new(&args);
    if let Some(target) = &args.get_only {
        let url = Url::parse(target).context("--get-only")?;
        report.url = target.clone();
        for run in 0..args.runs {
            get_load(&http, &url, baseline, &args, run, &mut report).await?;
        }
        return finish(&args, report);
    }
    if let Some(given) = &args.calendar {
        let cal = with_slash(Url::parse(given).context("--calendar")?);
        report.url = cal.to_string();
        report.calendar = cal.to_string();
        bench_calendar(&http, &cal, baseline, &args, &mut report).await?;
        return finish(&args, report);
    }
    let base = Url::parse(args.url.as_deref().unwrap_or_default()).context("--url")?;
    report.url = base.to_string();

    let home = discover(&http, &base).await?;
    eprintln!("bench: calendar home {home}");
    let cal = make_calendar(&http, &home, args.seed).await?;
    report.calendar = cal.to_string();
    eprintln!("bench: created {cal}");

    let result = bench_calendar(&http, &cal, baseline, &args, &mut report).await;
    if args.keep {
        eprintln!("bench: kept {cal}");
    } else {
        match http.send(http.request("DELETE", &cal)).await {
            Ok(r) if r.status.is_success() => eprintln!("bench: deleted {cal}"),
            Ok(r) => eprintln!("bench: warning: DELETE {cal} answered {}", r.status),
            Err(e) => eprintln!("bench: warning: DELETE {cal} failed: {e:#}"),
        }
    }
    result?;
    finish(&args, report)
}

fn finish(args: &Args, mut report: Report) -> Result<bool> {
    if let Some(pid) = args.pid {
        match peak_rss(pid) {
            Ok((hwm, rss)) => {
                report.peak_rss_kib = Some(hwm);
                report.rss_at_end_kib = Some(rss);
            }
            Err(e) => eprintln!("bench: warning: peak RSS of pid {pid}: {e:#}"),
        }
    }
    report.ok = report.checks.failures.is_empty();
    print_table(&report);
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
        eprintln!("bench: wrote {}", path.display());
    }
    Ok(report.ok)
}

// ---------------------------------------------------------------------------------------------
// The measurements

async fn bench_calendar(
    http: &Http,
    cal: &Url,
    baseline: Option<&Baseline>,
    args: &Args,
    report: &mut Report,
) -> Result<()> {
    let events = Arc::new(generate(args.seed, args.events));
    report.mix = Mix::of(&events);
    eprintln!(
        "bench: {} events ({} single, {} recurring, {} all-day), {} bytes",
        events.len(),
        report.mix.single,
        report.mix.recurring,
        report.mix.all_day,
        report.mix.bytes
    );

    upload(http, cal, &events, args, report).await?;
    if let Some(cmd) = &args.after_load {
        let started = Instant::now();
        let sh = cmd.clone();
        let status = tokio::task::spawn_blocking(move || {
            std::process::Command::new("sh").arg("-c").arg(sh).status()
        })
        .await?
        .with_context(|| format!("--after-load {cmd:?}"))?;
        if !status.success() {
            bail!("--after-load {cmd:?} exited with {status}");
        }
        report.notes.push(format!(
            "after the upload, before the queries: `{cmd}` ({:.0} s)",
            started.elapsed().as_secs_f64()
        ));
    }

    let all: BTreeSet<String> = events.iter().map(|e| e.name.clone()).collect();
    let week = window(WEEK)?;
    let month = window(MONTH)?;
    let expect_week = expected_in(&events, week);
    let expect_month = expected_in(&events, month);
    report
        .expected
        .insert("query_week".into(), expect_week.len());
    report
        .expected
        .insert("query_month".into(), expect_month.len());
    let multiget: Vec<usize> = {
        let k = events.len().min(100);
        (0..k).map(|i| i * events.len() / k).collect()
    };
    report
        .expected
        .insert("multiget_100".into(), multiget.len());
    report.expected.insert("propfind_depth1".into(), all.len());
    report.expected.insert("sync_initial".into(), all.len());
    let get_url = cal.join(&events[get_target(&events)].name)?;

    // One unrecorded run first, on every server: a calendar filled out of band has cold caches
    // that PUTs would have warmed (Radicale's sync history, Xandikos's query index), and a
    // server filled by PUT has not yet run a single query (its first run was slower on every
    // operation: Almanac's week query at 100k took 42-57 ms in run 1, 3.8-8.7 ms after).
    // The warm-up's mismatches still count.
    let warmups = 1;
    let mut scratch = Report::new(args);
    for pass in 0..warmups + args.runs {
        let run = pass.saturating_sub(warmups);
        let report: &mut Report = if pass < warmups {
            eprintln!("bench: warm-up run (not recorded)");
            &mut scratch
        } else {
            eprintln!("bench: run {}/{}", run + 1, args.runs);
            &mut *report
        };

        // PROPFIND Depth 1: what a client does to learn the members and their ETags.
        let body = r#"<?xml version="1.0" encoding="utf-8"?>
<D:propfind xmlns:D="DAV:"><D:prop><D:resourcetype/><D:getetag/><D:getcontenttype/></D:prop></D:propfind>"#;
        let r = http
            .send(http.dav("PROPFIND", cal, Some("1"), body))
            .await?;
        report.sample("propfind_depth1", "ms", r.elapsed);
        let check = expect_status(&r, 207).and_then(|_| {
            let ms = parse_multistatus(&r.body)?;
            compare_names(&all, &member_names(&ms, cal))
        });
        report.check("propfind_depth1", run, check);

        for (op, (start, end), expected) in [
            ("query_week", WEEK, &expect_week),
            ("query_month", MONTH, &expect_month),
        ] {
            let body = format!(
                r#"<?xml version="1.0" encoding="utf-8"?>
<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/></D:prop><C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT"><C:time-range start="{start}" end="{end}"/></C:comp-filter></C:comp-filter></C:filter></C:calendar-query>"#
            );
            let r = http.send(http.dav("REPORT", cal, Some("1"), &body)).await?;
            report.sample(op, "ms", r.elapsed);
            let check = expect_status(&r, 207).and_then(|_| {
                let ms = parse_multistatus(&r.body)?;
                compare_names(expected, &member_names(&ms, cal))
            });
            report.check(op, run, check);
        }

        let mut hrefs = String::new();
        for &i in &multiget {
            hrefs.push_str("<D:href>");
            hrefs.push_str(cal.join(&events[i].name)?.path());
            hrefs.push_str("</D:href>");
        }
        let body = format!(
            r#"<?xml version="1.0" encoding="utf-8"?>
<C:calendar-multiget xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/><C:calendar-data/></D:prop>{hrefs}</C:calendar-multiget>"#
        );
        let r = http.send(http.dav("REPORT", cal, None, &body)).await?;
        report.sample("multiget_100", "ms", r.elapsed);
        let check = expect_status(&r, 207).and_then(|_| {
            let ms = parse_multistatus(&r.body)?;
            check_multiget(&ms, &events, &multiget)
        });
        report.check("multiget_100", run, check);

        // sync-collection (RFC 6578): the initial listing, then one change and the delta.
        let (token, etags, elapsed, pages, check) = sync_initial(http, cal, &all).await?;
        report.sample("sync_initial", "ms", elapsed);
        if pages > 1 {
            report.notes.push(format!(
                "run {}: the initial sync came in {pages} pages (507 truncation)",
                run + 1
            ));
        }
        report.check("sync_initial", run, check);
        let changed = &events[(pass * 7919 + 13) % events.len()];
        let changed_url = cal.join(&changed.name)?;
        let mut put = http
            .request("PUT", &changed_url)
            .header("Content-Type", "text/calendar; charset=utf-8")
            .body(changed.ics(pass as u32 + 1));
        if let Some(etag) = etags.get(&changed.name) {
            put = put.header("If-Match", etag.as_str());
        }
        let r = http.send(put).await?;
        if !r.status.is_success() {
            bail!(
                "changing {} for the incremental sync: {} {}",
                changed.name,
                r.status,
                snippet(&r.body)
            );
        }
        match token {
            Some(token) => {
                let (elapsed, check) = sync_delta(http, cal, &token, &changed.name).await?;
                report.sample("sync_incremental", "ms", elapsed);
                report.check("sync_incremental", run, check);
            }
            None => report.check(
                "sync_incremental",
                run,
                Err("the initial sync gave no sync-token".into()),
            ),
        }

        let body = format!(
            r#"<?xml version="1.0" encoding="utf-8"?>
<C:free-busy-query xmlns:C="urn:ietf:params:xml:ns:caldav"><C:time-range start="{}" end="{}"/></C:free-busy-query>"#,
            MONTH.0, MONTH.1
        );
        let r = http.send(http.dav("REPORT", cal, Some("1"), &body)).await?;
        let check = expect_status(&r, 200).and_then(|_| {
            if String::from_utf8_lossy(&r.body).contains("BEGIN:VFREEBUSY") {
                Ok(())
            } else {
                Err(format!("no VFREEBUSY in the answer: {}", snippet(&r.body)))
            }
        });
        if check.is_ok() {
            report.sample("freebusy_month", "ms", r.elapsed);
        }
        report.check("freebusy_month", run, check);

        get_load(http, &get_url, baseline, args, run, report).await?;
    }
    for f in scratch.checks.failures {
        report.checks.failures.push(Failure {
            operation: format!("{} (warm-up)", f.operation),
            ..f
        });
    }
    Ok(())
}

/// PUTs the events: 0..M (`--put-from`) untimed unless preloaded, then M..N timed in `runs`
/// consecutive chunks. Each chunk is one sample, and later chunks land in a fuller calendar, so
/// the spread shows whether writes slow down as it grows.
async fn upload(
    http: &Http,
    cal: &Url,
    events: &Arc<Vec<Event>>,
    args: &Args,
    report: &mut Report,
) -> Result<()> {
    let from = args.put_from;
    if from > 0 {
        if args.preloaded {
            report.notes.push(format!(
                "events 0..{from} were loaded out of band; PUT timed for events {from}..{}",
                events.len()
            ));
        } else {
            put_range(http, cal, events, 0, from, args.concurrency).await?;
            eprintln!("bench: uploaded {from}/{} (untimed)", events.len());
            report.notes.push(format!(
                "events 0..{from} uploaded untimed; PUT timed for events {from}..{}",
                events.len()
            ));
        }
    }
    let todo = events.len() - from;
    let chunks = args.runs.min(todo);
    for c in 0..chunks {
        let (lo, hi) = (from + c * todo / chunks, from + (c + 1) * todo / chunks);
        let started = Instant::now();
        put_range(http, cal, events, lo, hi, args.concurrency).await?;
        let rate = (hi - lo) as f64 / started.elapsed().as_secs_f64();
        report.sample_value("put", "events/s", rate);
        eprintln!("bench: uploaded {hi}/{} ({rate:.1} events/s)", events.len());
    }
    Ok(())
}

/// PUTs events lo..hi (`If-None-Match: *`) from `concurrency` connections.
async fn put_range(
    http: &Http,
    cal: &Url,
    events: &Arc<Vec<Event>>,
    lo: usize,
    hi: usize,
    concurrency: usize,
) -> Result<()> {
    let next = Arc::new(AtomicUsize::new(lo));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (http, cal, events, next) = (http.clone(), cal.clone(), events.clone(), next.clone());
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= hi {
                    return Ok::<(), anyhow::Error>(());
                }
                let ev = &events[i];
                let rb = http
                    .request("PUT", &cal.join(&ev.name)?)
                    .header("Content-Type", "text/calendar; charset=utf-8")
                    .header("If-None-Match", "*")
                    .body(ev.ics(0));
                let r = http.send(rb).await?;
                if !r.status.is_success() {
                    bail!(
                        "PUT {} answered {}: {}\n{}",
                        ev.name,
                        r.status,
                        snippet(&r.body),
                        ev.ics(0)
                    );
                }
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(())
}

/// The reference server of the GET load (`--get-baseline`), with a client of its own.
struct Baseline {
    http: Http,
    url: Url,
}

/// The GET load of one run: `get_requests` GETs of one URL from `get_concurrency` connections,
/// one sample in requests/s; with a baseline, the same load against it too and the ratio.
async fn get_load(
    http: &Http,
    url: &Url,
    baseline: Option<&Baseline>,
    args: &Args,
    run: usize,
    report: &mut Report,
) -> Result<()> {
    let Some(size) = first_get(http, url, "get", run, report).await? else {
        return Ok(());
    };
    let reference = match baseline {
        Some(b) => first_get(&b.http, &b.url, "get_baseline", run, report)
            .await?
            .map(|size| (b, size)),
        None => None,
    };
    // Which of the pair goes first alternates, so that neither always finds the machine as
    // the other left it.
    let reference_first = run % 2 == 1;
    let mut reference_rate = None;
    if let (Some((b, bsize)), true) = (reference, reference_first) {
        reference_rate = Some(get_rate(&b.http, &b.url, bsize, args).await?);
    }
    let (rate, bad) = get_rate(http, url, size, args).await?;
    if let (Some((b, bsize)), false) = (reference, reference_first) {
        reference_rate = Some(get_rate(&b.http, &b.url, bsize, args).await?);
    }
    report.sample_value("get", "req/s", rate);
    report.check("get", run, all_good(bad, size, args));
    if let (Some((_, bsize)), Some((brate, bbad))) = (reference, reference_rate) {
        report.sample_value("get_baseline", "req/s", brate);
        report.check("get_baseline", run, all_good(bbad, bsize, args));
        report.sample_value("get_vs_baseline", "%", 100.0 * rate / brate);
    }
    Ok(())
}

/// The size of the body of one GET of `url`, or `None` (a failed `op` check) when it is not a
/// 200 with a body.
async fn first_get(
    http: &Http,
    url: &Url,
    op: &str,
    run: usize,
    report: &mut Report,
) -> Result<Option<usize>> {
    let first = http.send(http.request("GET", url)).await?;
    if first.status != StatusCode::OK || first.body.is_empty() {
        let detail = format!(
            "GET {url} answered {} with {} bytes",
            first.status,
            first.body.len()
        );
        report.check(op, run, Err(detail));
        return Ok(None);
    }
    Ok(Some(first.body.len()))
}

/// `get_requests` GETs of `url` from `get_concurrency` tasks: the rate in requests/s and how
/// many answers were not a 200 of `size` bytes.
async fn get_rate(http: &Http, url: &Url, size: usize, args: &Args) -> Result<(f64, usize)> {
    let next = Arc::new(AtomicUsize::new(0));
    let bad = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..args.get_concurrency {
        let (http, url, next, bad, total) = (
            http.clone(),
            url.clone(),
            next.clone(),
            bad.clone(),
            args.get_requests,
        );
        tasks.spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < total {
                let r = http.send(http.request("GET", &url)).await?;
                if r.status != StatusCode::OK || r.body.len() != size {
                    bad.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok::<(), anyhow::Error>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    let secs = started.elapsed().as_secs_f64();
    Ok((args.get_requests as f64 / secs, bad.load(Ordering::Relaxed)))
}

fn all_good(bad: usize, size: usize, args: &Args) -> Result<(), String> {
    if bad == 0 {
        Ok(())
    } else {
        Err(format!(
            "{bad} of {} GETs were not 200 with the same {size} bytes",
            args.get_requests
        ))
    }
}

/// The initial sync-collection, following 507 truncation (RFC 6578 §3.6) page by page.
/// Returns the final token, every member's ETag, the total time, the pages and the check.
async fn sync_initial(
    http: &Http,
    cal: &Url,
    all: &BTreeSet<String>,
) -> Result<(
    Option<String>,
    HashMap<String, String>,
    Duration,
    usize,
    Result<(), String>,
)> {
    let mut token = String::new();
    let mut names = Vec::new();
    let mut etags = HashMap::new();
    let mut elapsed = Duration::ZERO;
    for page in 1..=1000 {
        let r = http
            .send(http.dav("REPORT", cal, Some("0"), &sync_body(&token)))
            .await?;
        elapsed += r.elapsed;
        if let Err(e) = expect_status(&r, 207) {
            return Ok((None, etags, elapsed, page, Err(e)));
        }
        let ms = match parse_multistatus(&r.body) {
            Ok(ms) => ms,
            Err(e) => return Ok((None, etags, elapsed, page, Err(e))),
        };
        let truncated = ms
            .responses
            .iter()
            .any(|resp| same_collection(&resp.href, cal) && resp.status == Some(507));
        for resp in &ms.responses {
            if let Some(name) = member_name(&resp.href, cal) {
                if let Some(etag) = resp.prop_text(DAV, "getetag") {
                    etags.insert(name.clone(), etag.to_owned());
                }
                names.push(name);
            }
        }
        let Some(next) = ms.sync_token else {
            return Ok((None, etags, elapsed, page, Err("no sync-token".into())));
        };
        token = next;
        if !truncated {
            let check = compare_names(all, &names);
            return Ok((Some(token), etags, elapsed, page, check));
        }
    }
    bail!("the initial sync was still truncated after 1000 pages")
}

/// The delta after one change must name exactly the changed member.
async fn sync_delta(
    http: &Http,
    cal: &Url,
    token: &str,
    changed: &str,
) -> Result<(Duration, Result<(), String>)> {
    let r = http
        .send(http.dav("REPORT", cal, Some("0"), &sync_body(token)))
        .await?;
    let check = expect_status(&r, 207).and_then(|_| {
        let ms = parse_multistatus(&r.body)?;
        let want = BTreeSet::from([changed.to_owned()]);
        compare_names(&want, &member_names(&ms, cal))
    });
    Ok((r.elapsed, check))
}

fn sync_body(token: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<D:sync-collection xmlns:D="DAV:"><D:sync-token>{}</D:sync-token><D:sync-level>1</D:sync-level><D:prop><D:getetag/></D:prop></D:sync-collection>"#,
        xml_escape(token)
    )
}

fn check_multiget(ms: &Multistatus, events: &[Event], wanted: &[usize]) -> Result<(), String> {
    let mut found = 0;
    let mut problems = Vec::new();
    for &i in wanted {
        let ev = &events[i];
        let resp = ms
            .responses
            .iter()
            .find(|r| r.href.rsplit('/').next() == Some(ev.name.as_str()));
        match resp.and_then(|r| r.prop_text(CALDAV, "calendar-data")) {
            Some(data) if data.contains("BEGIN:VCALENDAR") && data.contains(&ev.uid) => found += 1,
            Some(_) => problems.push(format!("{}: calendar-data without its UID", ev.name)),
            None => problems.push(format!("{}: no calendar-data", ev.name)),
        }
    }
    if found == wanted.len() {
        Ok(())
    } else {
        problems.truncate(5);
        Err(format!(
            "{found} of {} objects returned; {}",
            wanted.len(),
            problems.join("; ")
        ))
    }
}

fn expect_status(r: &Reply, want: u16) -> Result<(), String> {
    if r.status.as_u16() == want {
        Ok(())
    } else {
        Err(format!(
            "status {} (wanted {want}): {}",
            r.status,
            snippet(&r.body)
        ))
    }
}

/// Compares the names a server returned with the expected set (duplicates count as errors).
fn compare_names(expected: &BTreeSet<String>, got: &[String]) -> Result<(), String> {
    let got_set: BTreeSet<String> = got.iter().cloned().collect();
    let missing: Vec<&String> = expected.difference(&got_set).collect();
    let extra: Vec<&String> = got_set.difference(expected).collect();
    let dups = got.len() - got_set.len();
    if missing.is_empty() && extra.is_empty() && dups == 0 {
        return Ok(());
    }
    let few = |v: &[&String]| {
        let mut s: Vec<&str> = v.iter().take(5).map(|s| s.as_str()).collect();
        if v.len() > 5 {
            s.push("…");
        }
        s.join(", ")
    };
    Err(format!(
        "expected {} hrefs, got {}: {} missing [{}], {} unexpected [{}], {} duplicated",
        expected.len(),
        got.len(),
        missing.len(),
        few(&missing),
        extra.len(),
        few(&extra),
        dups
    ))
}

// ---------------------------------------------------------------------------------------------
// Discovery and the calendar

/// RFC 6764 §6 / RFC 4791 §6.2: URL → current-user-principal → calendar-home-set. A URL that is
/// already one of the homes is used as it is.
async fn discover(http: &Http, base: &Url) -> Result<Url> {
    let body = r#"<?xml version="1.0" encoding="utf-8"?>
<D:propfind xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:current-user-principal/><C:calendar-home-set/><D:resourcetype/></D:prop></D:propfind>"#;
    let mut url = base.clone();
    let mut tried_well_known = false;
    let mut r;
    let mut hops = 0;
    loop {
        r = http
            .send(http.dav("PROPFIND", &url, Some("0"), body))
            .await?;
        if r.status.is_redirection() && hops < 5 {
            let loc = r
                .headers
                .get("location")
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| anyhow!("{} from {url} without Location", r.status))?;
            url = url.join(loc)?;
            hops += 1;
            continue;
        }
        if r.status.as_u16() == 207 || tried_well_known {
            break;
        }
        tried_well_known = true;
        url = base.join("/.well-known/caldav")?;
    }
    if r.status.as_u16() != 207 {
        bail!("PROPFIND {url} answered {}: {}", r.status, snippet(&r.body));
    }
    let ms = parse_multistatus(&r.body).map_err(|e| anyhow!("PROPFIND {url}: {e}"))?;
    let first = ms
        .responses
        .first()
        .ok_or_else(|| anyhow!("PROPFIND {url}: empty multistatus"))?;
    let mut homes = first.prop_hrefs(CALDAV, "calendar-home-set");
    if homes.is_empty() {
        if let Some(principal) = first.prop_hrefs(DAV, "current-user-principal").first() {
            let purl = url.join(principal)?;
            let r = http
                .send(http.dav("PROPFIND", &purl, Some("0"), body))
                .await?;
            if r.status.as_u16() == 207 {
                let ms = parse_multistatus(&r.body).map_err(|e| anyhow!("PROPFIND {purl}: {e}"))?;
                if let Some(p) = ms.responses.first() {
                    homes = p.prop_hrefs(CALDAV, "calendar-home-set");
                }
            }
        }
    }
    let homes: Vec<Url> = homes
        .iter()
        .map(|h| url.join(h))
        .collect::<Result<_, _>>()?;
    let given = base.path().trim_end_matches('/');
    if let Some(h) = homes
        .iter()
        .find(|h| h.path().trim_end_matches('/') == given)
    {
        return Ok(with_slash(h.clone()));
    }
    if let Some(h) = homes.first() {
        return Ok(with_slash(h.clone()));
    }
    if first
        .prop_children(DAV, "resourcetype")
        .contains(&"collection".to_owned())
    {
        eprintln!("bench: no calendar-home-set found: using {base} as the calendar home");
        return Ok(with_slash(base.clone()));
    }
    bail!("no calendar home found at {base} (no current-user-principal / calendar-home-set)")
}

fn with_slash(mut u: Url) -> Url {
    if !u.path().ends_with('/') {
        let p = format!("{}/", u.path());
        u.set_path(&p);
    }
    u
}

/// MKCALENDAR (RFC 4791 §5.3.1) of a calendar named after the seed, the time and the PID, so
/// runs never collide.
async fn make_calendar(http: &Http, home: &Url, seed: u64) -> Result<Url> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?;
    let name = format!(
        "bench-{seed}-{}-{}/",
        now.as_secs(),
        std::process::id() as u64 * 1000 + u64::from(now.subsec_millis())
    );
    let url = home.join(&name)?;
    let body = format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set><D:prop><D:displayname>Benchmark (seed {seed})</D:displayname><C:supported-calendar-component-set><C:comp name="VEVENT"/></C:supported-calendar-component-set></D:prop></D:set></C:mkcalendar>"#
    );
    let r = http.send(http.dav("MKCALENDAR", &url, None, &body)).await?;
    if r.status.as_u16() != 201 {
        bail!(
            "MKCALENDAR {url} answered {}: {}",
            r.status,
            snippet(&r.body)
        );
    }
    Ok(url)
}

// ---------------------------------------------------------------------------------------------
// HTTP

#[derive(Clone)]
struct Http {
    client: reqwest::Client,
    user: Option<String>,
    password: Option<String>,
}

struct Reply {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: bytes::Bytes,
    /// From sending the request to the last byte of the body.
    elapsed: Duration,
}

impl Http {
    fn new(
        user: Option<String>,
        password: Option<String>,
        timeout: u64,
        pool: usize,
    ) -> Result<Self> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(timeout))
            .pool_max_idle_per_host(pool.max(8))
            .tcp_nodelay(true)
            .build()?;
        Ok(Http {
            client,
            user,
            password,
        })
    }

    fn request(&self, method: &str, url: &Url) -> reqwest::RequestBuilder {
        let method = Method::from_bytes(method.as_bytes()).unwrap_or(Method::GET);
        let rb = self.client.request(method, url.clone());
        match &self.user {
            Some(u) => rb.basic_auth(u, self.password.as_ref()),
            None => rb,
        }
    }

    fn dav(
        &self,
        method: &str,
        url: &Url,
        depth: Option<&str>,
        body: &str,
    ) -> reqwest::RequestBuilder {
        let rb = self
            .request(method, url)
            .header("Content-Type", "application/xml; charset=utf-8")
            .body(body.to_owned());
        match depth {
            Some(d) => rb.header("Depth", d),
            None => rb,
        }
    }

    async fn send(&self, rb: reqwest::RequestBuilder) -> Result<Reply> {
        let req = rb.build()?;
        let what = format!("{} {}", req.method(), req.url());
        let started = Instant::now();
        let resp = self
            .client
            .execute(req)
            .await
            .with_context(|| what.clone())?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.with_context(|| what.clone())?;
        Ok(Reply {
            status,
            headers,
            body,
            elapsed: started.elapsed(),
        })
    }
}

fn snippet(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(body);
    let s = s.trim();
    if s.len() > 300 {
        let mut cut = 300;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}…", &s[..cut])
    } else {
        s.to_owned()
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

// ---------------------------------------------------------------------------------------------
// Multistatus (RFC 4918 §14.16), read with a streaming namespace-aware parser of its own: the
// tool must not trust the server's code to check the server.

#[derive(Default, Debug)]
struct Multistatus {
    responses: Vec<MsResponse>,
    sync_token: Option<String>,
}

#[derive(Default, Debug)]
struct MsResponse {
    href: String,
    status: Option<u16>,
    propstats: Vec<PropStat>,
}

#[derive(Default, Debug)]
struct PropStat {
    status: u16,
    props: Vec<Prop>,
}

#[derive(Default, Debug)]
struct Prop {
    ns: String,
    name: String,
    text: String,
    /// DAV:href elements inside the property (current-user-principal, calendar-home-set).
    hrefs: Vec<String>,
    /// Local names of the property's child elements (resourcetype).
    children: Vec<String>,
}

impl MsResponse {
    fn found(&self, ns: &str, name: &str) -> Option<&Prop> {
        self.propstats
            .iter()
            .filter(|ps| ps.status == 200)
            .flat_map(|ps| ps.props.iter())
            .find(|p| p.ns == ns && p.name == name)
    }
    fn prop_text(&self, ns: &str, name: &str) -> Option<&str> {
        self.found(ns, name).map(|p| p.text.as_str())
    }
    fn prop_hrefs(&self, ns: &str, name: &str) -> Vec<String> {
        self.found(ns, name)
            .map(|p| p.hrefs.clone())
            .unwrap_or_default()
    }
    fn prop_children(&self, ns: &str, name: &str) -> Vec<String> {
        self.found(ns, name)
            .map(|p| p.children.clone())
            .unwrap_or_default()
    }
}

fn parse_multistatus(body: &[u8]) -> Result<Multistatus, String> {
    let text = std::str::from_utf8(body).map_err(|_| "multistatus is not UTF-8".to_owned())?;
    let mut reader = NsReader::from_str(text);
    let mut stack: Vec<(String, String)> = Vec::new();
    let mut buf = String::new();
    let mut ms = Multistatus::default();
    let err = |e: quick_xml::Error| format!("malformed multistatus: {e}");
    loop {
        let (res, ev) = reader.read_resolved_event().map_err(err)?;
        match ev {
            XmlEvent::Start(ref s) | XmlEvent::Empty(ref s) => {
                let ns = match res {
                    ResolveResult::Bound(n) => String::from_utf8_lossy(n.as_ref()).into_owned(),
                    _ => String::new(),
                };
                let local = String::from_utf8_lossy(s.local_name().as_ref()).into_owned();
                buf.clear();
                let depth = stack.len();
                if depth == 0 && !(ns == DAV && local == "multistatus") {
                    return Err(format!("root element is {local}, not DAV:multistatus"));
                }
                if depth == 1 && ns == DAV && local == "response" {
                    ms.responses.push(MsResponse::default());
                }
                let in_response = stack.get(1).is_some_and(|e| e.1 == "response");
                if in_response && depth == 2 && ns == DAV && local == "propstat" {
                    if let Some(r) = ms.responses.last_mut() {
                        r.propstats.push(PropStat::default());
                    }
                }
                if in_response && depth == 4 && stack[3].1 == "prop" {
                    if let Some(ps) = ms.responses.last_mut().and_then(|r| r.propstats.last_mut()) {
                        ps.props.push(Prop {
                            ns: ns.clone(),
                            name: local.clone(),
                            ..Prop::default()
                        });
                    }
                }
                if in_response && depth == 5 && stack[3].1 == "prop" {
                    if let Some(p) = last_prop(&mut ms) {
                        p.children.push(local.clone());
                    }
                }
                if matches!(ev, XmlEvent::Start(_)) {
                    stack.push((ns, local));
                } else {
                    stack.push((ns, local));
                    end_element(&mut ms, &mut stack, &buf);
                }
            }
            XmlEvent::End(_) => {
                end_element(&mut ms, &mut stack, &buf);
                buf.clear();
            }
            XmlEvent::Text(t) => buf.push_str(&t.unescape().map_err(err)?),
            XmlEvent::CData(c) => buf.push_str(&String::from_utf8_lossy(&c)),
            XmlEvent::Eof => break,
            _ => {}
        }
    }
    if stack.is_empty() {
        Ok(ms)
    } else {
        Err("multistatus ended early".into())
    }
}

fn last_prop(ms: &mut Multistatus) -> Option<&mut Prop> {
    ms.responses
        .last_mut()?
        .propstats
        .last_mut()?
        .props
        .last_mut()
}

/// Pops the element `stack` ends with and files the text collected inside it.
fn end_element(ms: &mut Multistatus, stack: &mut Vec<(String, String)>, text: &str) {
    let Some((ns, local)) = stack.pop() else {
        return;
    };
    let depth = stack.len();
    let in_response = stack.get(1).is_some_and(|e| e.1 == "response");
    let dav = ns == DAV;
    if depth == 1 && dav && local == "sync-token" {
        ms.sync_token = Some(text.trim().to_owned());
    } else if in_response && depth == 2 && dav && local == "href" {
        if let Some(r) = ms.responses.last_mut() {
            if r.href.is_empty() {
                r.href = text.trim().to_owned();
            }
        }
    } else if in_response && depth == 2 && dav && local == "status" {
        if let Some(r) = ms.responses.last_mut() {
            r.status = status_code(text);
        }
    } else if in_response && depth == 3 && dav && local == "status" && stack[2].1 == "propstat" {
        if let Some(ps) = ms.responses.last_mut().and_then(|r| r.propstats.last_mut()) {
            ps.status = status_code(text).unwrap_or(0);
        }
    } else if in_response && depth == 4 && stack[3].1 == "prop" {
        if let Some(p) = last_prop(ms) {
            p.text = text.to_owned();
        }
    } else if in_response && depth >= 5 && dav && local == "href" && stack[3].1 == "prop" {
        if let Some(p) = last_prop(ms) {
            p.hrefs.push(text.trim().to_owned());
        }
    }
}

fn status_code(line: &str) -> Option<u16> {
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The decoded path of an href (absolute URL or path).
fn href_path(href: &str) -> String {
    let path = match Url::parse(href) {
        Ok(u) => u.path().to_owned(),
        Err(_) => href.to_owned(),
    };
    percent_encoding::percent_decode_str(&path)
        .decode_utf8_lossy()
        .into_owned()
}

fn same_collection(href: &str, cal: &Url) -> bool {
    let cal_path = percent_encoding::percent_decode_str(cal.path()).decode_utf8_lossy();
    href_path(href).trim_end_matches('/') == cal_path.trim_end_matches('/')
}

/// The member name (last segment) of an href, or None for the collection itself.
fn member_name(href: &str, cal: &Url) -> Option<String> {
    if href.is_empty() || same_collection(href, cal) {
        return None;
    }
    let path = href_path(href);
    path.trim_end_matches('/')
        .rsplit('/')
        .next()
        .map(str::to_owned)
}

fn member_names(ms: &Multistatus, cal: &Url) -> Vec<String> {
    ms.responses
        .iter()
        .filter(|r| r.status.is_none_or(|s| s == 200))
        .filter_map(|r| member_name(&r.href, cal))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The generated calendar and what the tool expects of it

/// splitmix64: tiny, and the same numbers on every platform and every version of every crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as u64) as i64
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Zone {
    Berlin,
    NewYork,
}

impl Zone {
    fn tzid(self) -> &'static str {
        match self {
            Zone::Berlin => "Europe/Berlin",
            Zone::NewYork => "America/New_York",
        }
    }
    fn tz(self) -> chrono_tz::Tz {
        match self {
            Zone::Berlin => chrono_tz::Europe::Berlin,
            Zone::NewYork => chrono_tz::America::New_York,
        }
    }
    /// As calendar clients write it (Thunderbird/Lightning style); the rules agree with the
    /// tz database for the generated years.
    fn vtimezone(self) -> &'static str {
        match self {
            Zone::Berlin => {
                "BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nX-LIC-LOCATION:Europe/Berlin\r\n\
BEGIN:DAYLIGHT\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nTZNAME:CEST\r\n\
DTSTART:19700329T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\nEND:DAYLIGHT\r\n\
BEGIN:STANDARD\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nTZNAME:CET\r\n\
DTSTART:19701025T030000\r\nRRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nEND:STANDARD\r\n\
END:VTIMEZONE\r\n"
            }
            Zone::NewYork => {
                "BEGIN:VTIMEZONE\r\nTZID:America/New_York\r\nX-LIC-LOCATION:America/New_York\r\n\
BEGIN:DAYLIGHT\r\nTZOFFSETFROM:-0500\r\nTZOFFSETTO:-0400\r\nTZNAME:EDT\r\n\
DTSTART:19700308T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=2SU\r\nEND:DAYLIGHT\r\n\
BEGIN:STANDARD\r\nTZOFFSETFROM:-0400\r\nTZOFFSETTO:-0500\r\nTZNAME:EST\r\n\
DTSTART:19701101T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=11;BYDAY=1SU\r\nEND:STANDARD\r\n\
END:VTIMEZONE\r\n"
            }
        }
    }
    /// Local wall time → UTC seconds. Generated times lie between 07:00 and 21:00, far from the
    /// 02:00–03:00 transitions, so every one of them exists exactly once.
    fn utc(self, local: NaiveDateTime) -> i64 {
        self.tz()
            .from_local_datetime(&local)
            .earliest()
            .map(|t| t.timestamp())
            .unwrap_or_else(|| local.and_utc().timestamp())
    }
}

#[derive(Debug)]
struct Person {
    name: String,
    email: String,
}

#[derive(Debug)]
enum Kind {
    Single,
    /// VALUE=DATE; floating, so a server without a calendar-timezone reads it in UTC.
    AllDay,
    Recurring(Rule),
}

#[derive(Debug)]
struct Rule {
    /// The RRULE value, e.g. `FREQ=WEEKLY;BYDAY=TU,TH;COUNT=10`.
    rrule: String,
    exdates: Vec<NaiveDateTime>,
    moved: Option<Moved>,
}

/// A RECURRENCE-ID override that moves one instance.
#[derive(Debug)]
struct Moved {
    original: NaiveDateTime,
    start: NaiveDateTime,
    end: NaiveDateTime,
}

#[derive(Debug)]
struct Event {
    name: String,
    uid: String,
    /// None for all-day events.
    zone: Option<Zone>,
    kind: Kind,
    /// Local wall time (midnight of the first day for all-day events).
    start: NaiveDateTime,
    end: NaiveDateTime,
    summary: &'static str,
    location: Option<&'static str>,
    description: Option<String>,
    categories: Option<&'static str>,
    organizer: Option<Person>,
    attendees: Vec<Person>,
    alarm: Option<&'static str>,
    tentative: bool,
    /// Every instance as [start, end) in UTC seconds, after EXDATEs and the override.
    occurrences: Vec<(i64, i64)>,
}

const SUMMARIES: &[&str] = &[
    "Team stand-up",
    "1:1 with Priya",
    "Quarterly planning",
    "Dentist",
    "Lunch with Marco",
    "Project review: Phoenix",
    "Customer call – Acme GmbH",
    "Sprint retrospective",
    "Yoga",
    "Board meeting",
    "Flight LH 400 FRA→JFK",
    "Code review",
    "Design workshop",
    "Budget sync",
    "Parent-teacher conference",
    "Interview: backend engineer",
    "Coffee with Lena",
    "Release 2.4 go/no-go",
    "Physiotherapy",
    "All hands",
];
const LOCATIONS: &[&str] = &[
    "Room 4.12",
    "Zoom",
    "Friedrichstraße 68, 10117 Berlin",
    "Café Einstein",
    "https://meet.example.com/abc-defg-hij",
    "Conference room \"Hudson\"",
    "350 5th Ave, New York, NY 10118",
    "Home office",
];
const DESCRIPTIONS: &[&str] = &[
    "Agenda:\n1. Status\n2. Risks, blockers\n3. Next steps",
    "Please read the attached proposal before the meeting; comments welcome.",
    "Dial-in: +49 30 1234567, PIN 998877#",
    "Bring the signed contract (two copies) and your ID.",
    "Notes from last time: the migration is on track, the API freeze is moved by one week.",
];
const CATEGORIES: &[&str] = &["Work", "Personal", "Travel", "Meeting,Work", "Health"];
const FIRST: &[&str] = &[
    "Anna", "Ben", "Chloé", "David", "Emre", "Fatima", "Georg", "Hannah", "Ines", "Jonas",
];
const LAST: &[&str] = &[
    "Müller", "Smith", "García", "Nguyen", "Kowalski", "Schmidt", "Rossi", "Cohen",
];
const ALARMS: &[&str] = &["-PT5M", "-PT10M", "-PT15M", "-PT30M", "-PT1H"];
const WEEKDAYS: [&str; 7] = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"];

fn person(rng: &mut Rng) -> Person {
    let (f, l) = (*rng.pick(FIRST), *rng.pick(LAST));
    let mail = |s: &str| {
        s.chars()
            .map(|c| match c {
                'ü' => 'u',
                'é' => 'e',
                'í' => 'i',
                c => c.to_ascii_lowercase(),
            })
            .collect::<String>()
    };
    Person {
        name: format!("{f} {l}"),
        email: format!("{}.{}@example.com", mail(f), mail(l)),
    }
}

fn first_day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 1, 1).unwrap_or_default()
}

fn at(day: NaiveDate, hour: i64, minute: i64) -> NaiveDateTime {
    day.and_hms_opt(hour as u32, minute as u32, 0)
        .unwrap_or_default()
}

/// N events from the seed: ~85% single timed events over 2026–2027 (Europe/Berlin or
/// America/New_York), ~10% daily/weekly series with COUNT or UNTIL (some with EXDATEs, some with
/// a moved instance), ~5% all-day; attendees on ~30%, alarms on ~40%.
fn generate(seed: u64, n: usize) -> Vec<Event> {
    let mut rng = Rng(seed ^ 0xA1A4_A4AC_0000_0001);
    (0..n).map(|i| event(&mut rng, seed, i)).collect()
}

fn event(rng: &mut Rng, seed: u64, i: usize) -> Event {
    let uuid = format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        rng.next() as u32,
        rng.next() as u16,
        rng.next() & 0xfff,
        0x8000 | (rng.next() & 0x3fff),
        rng.next() & 0xffff_ffff_ffff
    );
    let roll = rng.below(100);
    let zone = if rng.chance(55) {
        Zone::Berlin
    } else {
        Zone::NewYork
    };
    let summary = *rng.pick(SUMMARIES);
    let mut ev = Event {
        name: format!("{uuid}.ics"),
        uid: format!("{}-{seed}-{i}@bench.almanac.invalid", uuid.to_uppercase()),
        zone: Some(zone),
        kind: Kind::Single,
        start: NaiveDateTime::default(),
        end: NaiveDateTime::default(),
        summary,
        location: rng.chance(60).then(|| *rng.pick(LOCATIONS)),
        description: rng.chance(40).then(|| rng.pick(DESCRIPTIONS).to_string()),
        categories: rng.chance(30).then(|| *rng.pick(CATEGORIES)),
        organizer: None,
        attendees: Vec::new(),
        alarm: None,
        tentative: rng.chance(5),
        occurrences: Vec::new(),
    };
    if roll < 85 {
        let day = first_day() + TimeDelta::days(rng.range(0, 729));
        ev.start = at(day, rng.range(7, 19), 15 * rng.range(0, 3));
        ev.end = ev.start + TimeDelta::minutes(*rng.pick(&[15, 30, 45, 60, 60, 60, 90, 120, 180]));
        ev.occurrences = vec![(zone.utc(ev.start), zone.utc(ev.end))];
    } else if roll < 95 {
        let day = first_day() + TimeDelta::days(rng.range(0, 699));
        ev.start = at(day, rng.range(8, 18), 30 * rng.range(0, 1));
        let length = TimeDelta::minutes(*rng.pick(&[30, 45, 60]));
        ev.end = ev.start + length;
        let (rule, locals) = recurrence(rng, ev.start, zone);
        let mut rule = rule;
        // EXDATEs and the override pick among real instances, never the first.
        if locals.len() > 3 && rng.chance(35) {
            for _ in 0..rng.range(1, 2) {
                let x = locals[rng.range(1, locals.len() as i64 - 1) as usize];
                if !rule.exdates.contains(&x) {
                    rule.exdates.push(x);
                }
            }
            rule.exdates.sort();
        }
        if locals.len() > 2 && rng.chance(25) {
            let original = locals[rng.range(1, locals.len() as i64 - 1) as usize];
            if !rule.exdates.contains(&original) {
                let shift = *rng.pick(&[
                    TimeDelta::hours(2),
                    TimeDelta::days(1),
                    TimeDelta::days(3) - TimeDelta::hours(1),
                ]);
                let start = original + shift;
                let end = start + length + TimeDelta::minutes(30 * rng.range(0, 1));
                rule.moved = Some(Moved {
                    original,
                    start,
                    end,
                });
            }
        }
        ev.occurrences = recurrence_set(&locals, &rule, length, zone);
        ev.kind = Kind::Recurring(rule);
    } else {
        let day = first_day() + TimeDelta::days(rng.range(0, 729));
        ev.zone = None;
        ev.kind = Kind::AllDay;
        ev.start = at(day, 0, 0);
        ev.end = ev.start + TimeDelta::days(if rng.chance(70) { 1 } else { rng.range(2, 3) });
        ev.occurrences = vec![(ev.start.and_utc().timestamp(), ev.end.and_utc().timestamp())];
    }
    if !matches!(ev.kind, Kind::AllDay) && rng.chance(30) {
        ev.organizer = Some(person(rng));
        ev.attendees = (0..rng.range(2, 6)).map(|_| person(rng)).collect();
    }
    if rng.chance(40) {
        ev.alarm = Some(if matches!(ev.kind, Kind::AllDay) {
            "-PT15H"
        } else {
            *rng.pick(ALARMS)
        });
    }
    ev
}

/// A daily or weekly rule from `start` and its instances' local start times (RFC 5545 §3.3.10,
/// for the rules generated here only: INTERVAL on DAILY, BYDAY within the week of DTSTART on
/// WEEKLY with WKST=MO, COUNT or an inclusive UTC UNTIL).
fn recurrence(rng: &mut Rng, start: NaiveDateTime, zone: Zone) -> (Rule, Vec<NaiveDateTime>) {
    let daily = rng.chance(50);
    let by_count = rng.chance(50);
    let first_wd = start.weekday().num_days_from_monday() as i64;
    let (mut rrule, step_days, days): (String, i64, Vec<i64>) = if daily {
        let interval = if rng.chance(20) { 2 } else { 1 };
        let r = if interval == 1 {
            "FREQ=DAILY".to_owned()
        } else {
            "FREQ=DAILY;INTERVAL=2".to_owned()
        };
        (r, interval, vec![0])
    } else {
        let mut days = vec![first_wd];
        if first_wd < 6 && rng.chance(40) {
            days.push(rng.range(first_wd + 1, 6));
        }
        let by: Vec<&str> = days.iter().map(|&d| WEEKDAYS[d as usize]).collect();
        (format!("FREQ=WEEKLY;BYDAY={}", by.join(",")), 7, days)
    };
    let count = if daily {
        rng.range(5, 30)
    } else {
        rng.range(4, 26)
    };
    let until = if by_count {
        None
    } else {
        let span = if daily {
            TimeDelta::days(rng.range(10, 60))
        } else {
            TimeDelta::weeks(rng.range(4, 40))
        };
        Some(zone.utc(start + span))
    };
    match until {
        None => rrule.push_str(&format!(";COUNT={count}")),
        Some(u) => rrule.push_str(&format!(";UNTIL={}", fmt_utc(u))),
    }
    let end = match until {
        None => RuleEnd::Count(count),
        Some(u) => RuleEnd::Until(u),
    };
    let locals = instances(start, daily, step_days, &days, end, zone);
    (
        Rule {
            rrule,
            exdates: Vec::new(),
            moved: None,
        },
        locals,
    )
}

/// RFC 5545 §3.8.5.1 and §3.8.4.4: the rule's instances less the EXDATEs, with the overridden
/// instance at its new time; [start, end) in UTC seconds.
fn recurrence_set(
    locals: &[NaiveDateTime],
    rule: &Rule,
    length: TimeDelta,
    zone: Zone,
) -> Vec<(i64, i64)> {
    locals
        .iter()
        .filter(|l| !rule.exdates.contains(l))
        .map(|&l| match &rule.moved {
            Some(m) if m.original == l => (zone.utc(m.start), zone.utc(m.end)),
            _ => (zone.utc(l), zone.utc(l + length)),
        })
        .collect()
}

#[derive(Clone, Copy, Debug)]
enum RuleEnd {
    Count(i64),
    /// Inclusive, in UTC seconds (RFC 5545: UNTIL is UTC when DTSTART has a TZID).
    Until(i64),
}

/// The local start times a generated rule yields, in order: DAILY every `step_days` days, or
/// WEEKLY on `days` (0 = Monday, the default WKST) of every week from DTSTART's week on.
fn instances(
    start: NaiveDateTime,
    daily: bool,
    step_days: i64,
    days: &[i64],
    end: RuleEnd,
    zone: Zone,
) -> Vec<NaiveDateTime> {
    let first_wd = i64::from(start.weekday().num_days_from_monday());
    let period_start = start - TimeDelta::days(if daily { 0 } else { first_wd });
    let mut locals = Vec::new();
    'periods: for p in 0..2000 {
        for &d in days {
            let l = period_start + TimeDelta::days(p * step_days + if daily { 0 } else { d });
            if l < start {
                continue;
            }
            match end {
                RuleEnd::Until(u) if zone.utc(l) > u => break 'periods,
                RuleEnd::Count(c) if locals.len() as i64 >= c => break 'periods,
                _ => locals.push(l),
            }
        }
    }
    locals
}

/// The event the GET load fetches: the first single timed event, the most common kind.
fn get_target(events: &[Event]) -> usize {
    events
        .iter()
        .position(|e| matches!(e.kind, Kind::Single))
        .unwrap_or(0)
}

/// RFC 4791 §9.9: a VEVENT with DTEND matches [ws, we) when start < we and end > ws; an object
/// matches when any of its instances does.
fn expected_in(events: &[Event], (ws, we): (i64, i64)) -> BTreeSet<String> {
    events
        .iter()
        .filter(|e| e.occurrences.iter().any(|&(s, end)| s < we && end > ws))
        .map(|e| e.name.clone())
        .collect()
}

fn window((start, end): (&str, &str)) -> Result<(i64, i64)> {
    let p = |s: &str| {
        NaiveDateTime::parse_from_str(s, "%Y%m%dT%H%M%SZ")
            .map(|t| t.and_utc().timestamp())
            .with_context(|| format!("bad window {s}"))
    };
    Ok((p(start)?, p(end)?))
}

fn fmt_local(t: NaiveDateTime) -> String {
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

fn fmt_date(t: NaiveDateTime) -> String {
    format!("{:04}{:02}{:02}", t.year(), t.month(), t.day())
}

fn fmt_utc(secs: i64) -> String {
    let t = DateTime::from_timestamp(secs, 0).unwrap_or_default();
    format!("{}Z", fmt_local(t.naive_utc()))
}

/// RFC 5545 §3.3.11 TEXT escaping.
fn ical_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// RFC 5545 §3.1: content lines longer than 75 octets are folded (CRLF and one space).
fn push_line(out: &mut String, line: &str) {
    let mut rest = line;
    let mut limit = 75;
    while rest.len() > limit {
        let mut cut = limit;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        out.push_str(&rest[..cut]);
        out.push_str("\r\n ");
        rest = &rest[cut..];
        limit = 74;
    }
    out.push_str(rest);
    out.push_str("\r\n");
}

impl Event {
    /// The iCalendar object; `revision` > 0 is the same event edited (summary, SEQUENCE, stamps),
    /// with the same times, so the query expectations still hold.
    fn ics(&self, revision: u32) -> String {
        let mut o = String::with_capacity(2048);
        o.push_str("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Almanac//bench 1.0//EN\r\n");
        o.push_str("CALSCALE:GREGORIAN\r\n");
        if let Some(z) = self.zone {
            o.push_str(z.vtimezone());
        }
        let stamp = fmt_utc(1_764_576_000 + i64::from(revision) * 60); // 2025-12-01T08:00Z
        let time = |name: &str, t: NaiveDateTime| match self.zone {
            Some(z) => format!("{name};TZID={}:{}", z.tzid(), fmt_local(t)),
            None => format!("{name};VALUE=DATE:{}", fmt_date(t)),
        };
        let mut line = |s: &str| push_line(&mut o, s);
        line("BEGIN:VEVENT");
        line(&format!("UID:{}", self.uid));
        line(&format!("DTSTAMP:{stamp}"));
        line("CREATED:20251201T080000Z");
        line(&format!("LAST-MODIFIED:{stamp}"));
        if revision > 0 {
            line(&format!("SEQUENCE:{revision}"));
        }
        let summary = if revision > 0 {
            format!("{} (edited {revision})", self.summary)
        } else {
            self.summary.to_owned()
        };
        line(&format!("SUMMARY:{}", ical_text(&summary)));
        line(&time("DTSTART", self.start));
        line(&time("DTEND", self.end));
        if let Kind::Recurring(rule) = &self.kind {
            line(&format!("RRULE:{}", rule.rrule));
            if let (false, Some(z)) = (rule.exdates.is_empty(), self.zone) {
                let list: Vec<String> = rule.exdates.iter().map(|&t| fmt_local(t)).collect();
                line(&format!("EXDATE;TZID={}:{}", z.tzid(), list.join(",")));
            }
        }
        if let Some(l) = self.location {
            line(&format!("LOCATION:{}", ical_text(l)));
        }
        if let Some(d) = &self.description {
            line(&format!("DESCRIPTION:{}", ical_text(d)));
        }
        if let Some(c) = self.categories {
            line(&format!("CATEGORIES:{c}"));
        }
        line(if self.tentative {
            "STATUS:TENTATIVE"
        } else {
            "STATUS:CONFIRMED"
        });
        line(if matches!(self.kind, Kind::AllDay) {
            "TRANSP:TRANSPARENT"
        } else {
            "TRANSP:OPAQUE"
        });
        if let Some(org) = &self.organizer {
            line(&format!("ORGANIZER;CN={}:mailto:{}", org.name, org.email));
            line(&format!(
                "ATTENDEE;CN={};PARTSTAT=ACCEPTED;ROLE=CHAIR:mailto:{}",
                org.name, org.email
            ));
            for (k, a) in self.attendees.iter().enumerate() {
                let partstat = ["NEEDS-ACTION", "ACCEPTED", "TENTATIVE", "DECLINED"][k % 4];
                line(&format!(
                    "ATTENDEE;CN={};CUTYPE=INDIVIDUAL;PARTSTAT={partstat};ROLE=REQ-PARTICIPANT;RSVP=TRUE:mailto:{}",
                    a.name, a.email
                ));
            }
        }
        if let Some(trigger) = self.alarm {
            line("BEGIN:VALARM");
            line("ACTION:DISPLAY");
            line("DESCRIPTION:Reminder");
            line(&format!("TRIGGER:{trigger}"));
            line("END:VALARM");
        }
        line("END:VEVENT");
        if let Kind::Recurring(Rule { moved: Some(m), .. }) = &self.kind {
            line("BEGIN:VEVENT");
            line(&format!("UID:{}", self.uid));
            line(&format!("DTSTAMP:{stamp}"));
            line(&time("RECURRENCE-ID", m.original));
            line("SEQUENCE:1");
            line(&format!("SUMMARY:{} (moved)", ical_text(self.summary)));
            line(&time("DTSTART", m.start));
            line(&time("DTEND", m.end));
            line("STATUS:CONFIRMED");
            line("END:VEVENT");
        }
        line("END:VCALENDAR");
        o
    }
}

// ---------------------------------------------------------------------------------------------
// Results

#[derive(Serialize)]
struct Report {
    tool: &'static str,
    label: Option<String>,
    url: String,
    calendar: String,
    events: usize,
    runs: usize,
    seed: u64,
    concurrency: usize,
    get_concurrency: usize,
    get_requests: usize,
    /// PUT was timed for events put_from..events (see notes).
    put_from: usize,
    preloaded: bool,
    started_unix: u64,
    mix: Mix,
    /// Hrefs the tool expects per operation.
    expected: BTreeMap<String, usize>,
    operations: Vec<Operation>,
    peak_rss_kib: Option<u64>,
    rss_at_end_kib: Option<u64>,
    rss_note: &'static str,
    checks: Checks,
    notes: Vec<String>,
    ok: bool,
}

#[derive(Serialize, Default)]
struct Mix {
    single: usize,
    recurring: usize,
    all_day: usize,
    with_exdate: usize,
    with_override: usize,
    with_attendees: usize,
    with_alarm: usize,
    bytes: usize,
}

impl Mix {
    fn of(events: &[Event]) -> Mix {
        let mut m = Mix::default();
        for e in events {
            match &e.kind {
                Kind::Single => m.single += 1,
                Kind::AllDay => m.all_day += 1,
                Kind::Recurring(r) => {
                    m.recurring += 1;
                    m.with_exdate += usize::from(!r.exdates.is_empty());
                    m.with_override += usize::from(r.moved.is_some());
                }
            }
            m.with_attendees += usize::from(!e.attendees.is_empty());
            m.with_alarm += usize::from(e.alarm.is_some());
            m.bytes += e.ics(0).len();
        }
        m
    }
}

#[derive(Serialize)]
struct Operation {
    name: String,
    unit: &'static str,
    samples: Vec<f64>,
    median: Option<f64>,
    min: Option<f64>,
    max: Option<f64>,
}

#[derive(Serialize, Default)]
struct Checks {
    passed: usize,
    failures: Vec<Failure>,
}

#[derive(Serialize)]
struct Failure {
    operation: String,
    run: usize,
    detail: String,
}

const RSS_NOTE: &str = "VmHWM of the one process given with --pid; a server that forks or uses \
several processes (pre-fork workers, a separate database server such as PostgreSQL) is not covered";

impl Report {
    fn new(args: &Args) -> Report {
        Report {
            tool: "almanac-bench 1",
            label: args.label.clone(),
            url: String::new(),
            calendar: String::new(),
            events: args.events,
            runs: args.runs,
            seed: args.seed,
            concurrency: args.concurrency,
            get_concurrency: args.get_concurrency,
            get_requests: args.get_requests,
            put_from: args.put_from,
            preloaded: args.preloaded,
            started_unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            mix: Mix::default(),
            expected: BTreeMap::new(),
            operations: Vec::new(),
            peak_rss_kib: None,
            rss_at_end_kib: None,
            rss_note: RSS_NOTE,
            checks: Checks::default(),
            notes: Vec::new(),
            ok: false,
        }
    }

    fn sample(&mut self, op: &str, unit: &'static str, d: Duration) {
        self.sample_value(op, unit, d.as_secs_f64() * 1000.0);
    }

    fn sample_value(&mut self, op: &str, unit: &'static str, v: f64) {
        let o = match self.operations.iter().position(|o| o.name == op) {
            Some(i) => &mut self.operations[i],
            None => {
                self.operations.push(Operation {
                    name: op.to_owned(),
                    unit,
                    samples: Vec::new(),
                    median: None,
                    min: None,
                    max: None,
                });
                self.operations.last_mut().expect("just pushed")
            }
        };
        o.samples.push(v);
        let mut s = o.samples.clone();
        s.sort_by(f64::total_cmp);
        let n = s.len();
        o.median = Some(if n % 2 == 1 {
            s[n / 2]
        } else {
            (s[n / 2 - 1] + s[n / 2]) / 2.0
        });
        o.min = s.first().copied();
        o.max = s.last().copied();
    }

    fn check(&mut self, op: &str, run: usize, result: Result<(), String>) {
        match result {
            Ok(()) => self.checks.passed += 1,
            Err(detail) => {
                eprintln!("bench: MISMATCH {op} (run {}): {detail}", run + 1);
                self.checks.failures.push(Failure {
                    operation: op.to_owned(),
                    run,
                    detail,
                });
            }
        }
    }
}

fn print_table(r: &Report) {
    let label = r.label.as_deref().unwrap_or(&r.url);
    println!(
        "\n{label}: {} events, {} runs, seed {}",
        r.events, r.runs, r.seed
    );
    println!(
        "{:<22} {:>12} {:>12} {:>12}  unit",
        "operation", "median", "min", "max"
    );
    for o in &r.operations {
        let f = |v: Option<f64>| v.map_or("n/a".to_owned(), |v| format!("{v:.2}"));
        println!(
            "{:<22} {:>12} {:>12} {:>12}  {}",
            o.name,
            f(o.median),
            f(o.min),
            f(o.max),
            o.unit
        );
    }
    if let Some(hwm) = r.peak_rss_kib {
        println!(
            "{:<22} {:>12.1}  MiB (VmHWM; at the end {:.1} MiB)",
            "peak RSS",
            hwm as f64 / 1024.0,
            r.rss_at_end_kib.unwrap_or(0) as f64 / 1024.0
        );
    }
    for n in &r.notes {
        println!("note: {n}");
    }
    let failed = r.checks.failures.len();
    println!("checks: {} passed, {failed} failed", r.checks.passed);
    if failed > 0 {
        println!("MISMATCHES:");
        for f in &r.checks.failures {
            println!("  {} run {}: {}", f.operation, f.run + 1, f.detail);
        }
    }
}

/// Peak and current resident set size in KiB from /proc/PID/status.
fn peak_rss(pid: u32) -> Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| anyhow!("no {name} in /proc/{pid}/status"))
    };
    Ok((field("VmHWM:")?, field("VmRSS:")?))
}

#[cfg(test)]
mod tests {
    //! The tool's own expectations: a wrong expectation would blame a correct server.
    use super::*;

    fn local(y: i32, m: u32, d: u32, h: u32, min: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, m, d)
            .and_then(|d| d.and_hms_opt(h, min, 0))
            .expect("valid date")
    }

    fn utc(s: &str) -> i64 {
        window((s, s)).expect("utc").0
    }

    #[test]
    fn weekly_two_days_with_count_starts_in_dtstart_week() {
        // Tuesday 2026-03-10, BYDAY=TU,TH;COUNT=5.
        let got = instances(
            local(2026, 3, 10, 9, 0),
            false,
            7,
            &[1, 3],
            RuleEnd::Count(5),
            Zone::Berlin,
        );
        let want: Vec<NaiveDateTime> = [(3, 10), (3, 12), (3, 17), (3, 19), (3, 24)]
            .iter()
            .map(|&(m, d)| local(2026, m, d, 9, 0))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn until_is_inclusive_and_wall_time_survives_dst() {
        // Daily 09:00 Berlin from Friday 2026-03-27; DST starts Sunday 03-29.
        // UNTIL = 2026-03-30 09:00 CEST = 07:00Z is itself an instance.
        let got = instances(
            local(2026, 3, 27, 9, 0),
            true,
            1,
            &[0],
            RuleEnd::Until(utc("20260330T070000Z")),
            Zone::Berlin,
        );
        assert_eq!(got.len(), 4);
        let utcs: Vec<i64> = got.iter().map(|&l| Zone::Berlin.utc(l)).collect();
        assert_eq!(utcs[0], utc("20260327T080000Z")); // CET, +01:00
        assert_eq!(utcs[3], utc("20260330T070000Z")); // CEST, +02:00
        let short = instances(
            local(2026, 3, 27, 9, 0),
            true,
            1,
            &[0],
            RuleEnd::Until(utc("20260330T065959Z")),
            Zone::Berlin,
        );
        assert_eq!(short.len(), 3);
    }

    #[test]
    fn new_york_daily_interval_two() {
        // US DST starts 2026-03-08: 10:00 EST = 15:00Z, then 10:00 EDT = 14:00Z.
        let got = instances(
            local(2026, 3, 6, 10, 0),
            true,
            2,
            &[0],
            RuleEnd::Count(3),
            Zone::NewYork,
        );
        let utcs: Vec<i64> = got.iter().map(|&l| Zone::NewYork.utc(l)).collect();
        assert_eq!(
            utcs,
            vec![
                utc("20260306T150000Z"),
                utc("20260308T140000Z"),
                utc("20260310T140000Z")
            ]
        );
    }

    #[test]
    fn exdate_removes_and_override_moves_an_instance() {
        let locals: Vec<NaiveDateTime> = (0..4).map(|d| local(2026, 6, 1 + d, 9, 0)).collect();
        let rule = Rule {
            rrule: String::new(),
            exdates: vec![locals[1]],
            moved: Some(Moved {
                original: locals[2],
                start: local(2026, 6, 10, 11, 0),
                end: local(2026, 6, 10, 12, 30),
            }),
        };
        let set = recurrence_set(&locals, &rule, TimeDelta::hours(1), Zone::Berlin);
        assert_eq!(
            set,
            vec![
                (utc("20260601T070000Z"), utc("20260601T080000Z")),
                (utc("20260610T090000Z"), utc("20260610T103000Z")),
                (utc("20260604T070000Z"), utc("20260604T080000Z")),
            ]
        );
    }

    #[test]
    fn overlap_follows_rfc4791_9_9() {
        let mut events = generate(7, 1);
        events[0].occurrences = vec![(100, 200)];
        let name = events[0].name.clone();
        for (window, hit) in [
            ((200, 300), false), // ends exactly at the window's start
            ((0, 100), false),   // starts exactly at the window's end
            ((199, 300), true),
            ((0, 101), true),
            ((120, 150), true), // inside
        ] {
            assert_eq!(
                expected_in(&events, window).contains(&name),
                hit,
                "{window:?}"
            );
        }
    }

    #[test]
    fn compare_names_reports_missing_extra_and_duplicates() {
        let want: BTreeSet<String> = ["a.ics", "b.ics"].iter().map(|s| s.to_string()).collect();
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(compare_names(&want, &s(&["b.ics", "a.ics"])).is_ok());
        let e = compare_names(&want, &s(&["a.ics"])).unwrap_err();
        assert!(e.contains("1 missing [b.ics]"), "{e}");
        let e = compare_names(&want, &s(&["a.ics", "b.ics", "c.ics"])).unwrap_err();
        assert!(e.contains("1 unexpected [c.ics]"), "{e}");
        let e = compare_names(&want, &s(&["a.ics", "b.ics", "b.ics"])).unwrap_err();
        assert!(e.contains("1 duplicated"), "{e}");
    }

    #[test]
    fn multistatus_parser_reads_hrefs_statuses_and_data() {
        let body = br#"<?xml version="1.0"?>
<multistatus xmlns="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav">
 <response><href>http://h:1/cal/x/</href><propstat><prop><resourcetype><collection/><c:calendar/></resourcetype></prop><status>HTTP/1.1 200 OK</status></propstat></response>
 <response><href>/cal/x/a%20b.ics</href>
  <propstat><prop><getetag>"e1"</getetag><c:calendar-data><![CDATA[BEGIN:VCALENDAR
END:VCALENDAR]]></c:calendar-data></prop><status>HTTP/1.1 200 OK</status></propstat>
  <propstat><prop><getcontenttype/></prop><status>HTTP/1.1 404 Not Found</status></propstat>
 </response>
 <response><href>/cal/x/gone.ics</href><status>HTTP/1.1 404 Not Found</status></response>
 <sync-token>urn:x:1</sync-token>
</multistatus>"#;
        let ms = parse_multistatus(body).expect("parses");
        let cal = Url::parse("http://h:1/cal/x/").expect("url");
        assert_eq!(ms.responses.len(), 3);
        assert_eq!(ms.sync_token.as_deref(), Some("urn:x:1"));
        assert_eq!(member_names(&ms, &cal), vec!["a b.ics".to_owned()]);
        assert_eq!(ms.responses[1].prop_text(DAV, "getetag"), Some("\"e1\""));
        assert!(ms.responses[1]
            .prop_text(CALDAV, "calendar-data")
            .is_some_and(|d| d.starts_with("BEGIN:VCALENDAR")));
        assert_eq!(ms.responses[1].prop_text(DAV, "getcontenttype"), None);
        assert_eq!(
            ms.responses[0].prop_children(DAV, "resourcetype"),
            vec!["collection".to_owned(), "calendar".to_owned()]
        );
        assert_eq!(ms.responses[2].status, Some(404));
        assert!(parse_multistatus(b"<error xmlns='DAV:'/>").is_err());
    }

    #[test]
    fn generated_objects_are_folded_and_deterministic() {
        let a = generate(3, 400);
        let b = generate(3, 400);
        for (x, y) in a.iter().zip(&b) {
            let text = x.ics(0);
            assert_eq!(text, y.ics(0));
            assert!(text.ends_with("END:VCALENDAR\r\n"));
            assert!(text.split("\r\n").all(|l| l.len() <= 75), "{text}");
            assert!(!text.replace("\r\n", "").contains('\n'));
        }
        let mix = Mix::of(&a);
        assert!((310..=370).contains(&mix.single), "{}", mix.single);
        assert!((20..=65).contains(&mix.recurring), "{}", mix.recurring);
        assert!((5..=40).contains(&mix.all_day), "{}", mix.all_day);
        assert!(mix.with_exdate > 0 && mix.with_override > 0 && mix.with_attendees > 0);
    }
}
