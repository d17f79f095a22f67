//! `almanac`: the server and its administration commands. Thin: parsing arguments and
//! printing; the work is in the library.

use almanac::config::Config;
use almanac::state::AppState;
use almanac::{app, export, feeds, import, store, subscriptions, users};
use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use std::io::BufRead;
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "almanac", version, about = "A CalDAV/iCalendar server")]
struct Cli {
    /// TOML configuration file (see examples/config.toml); ALMANAC_* variables override it.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Manage users.
    #[command(subcommand)]
    User(UserCmd),
    /// Manage app passwords (one per device, revocable).
    #[command(subcommand, name = "app-password")]
    AppPassword(AppPasswordCmd),
    /// Secret links that publish a calendar as an .ics feed (webcal).
    #[command(subcommand)]
    Feed(FeedCmd),
    /// Import an .ics file into a calendar: one resource per UID, in one transaction.
    Import {
        user: String,
        calendar: String,
        file: PathBuf,
    },
    /// Write a calendar as one .ics file (to stdout, or --output).
    Export {
        user: String,
        calendar: String,
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Subscribe a new read-only calendar to an external .ics/webcal URL:
    /// `almanac subscribe USER NAME URL [--every 1h]`, or `subscribe list|refresh|remove`.
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Subscribe {
        #[command(subcommand)]
        cmd: Option<SubscribeCmd>,
        #[command(flatten)]
        add: SubscribeArgs,
    },
}

#[derive(clap::Args)]
struct SubscribeArgs {
    #[arg(required = true)]
    user: Option<String>,
    /// Name of the new calendar (its path segment).
    #[arg(required = true)]
    name: Option<String>,
    #[arg(required = true)]
    url: Option<String>,
    /// Refresh interval: 90s, 30m, 1h, 1d.
    #[arg(long, default_value = "1h")]
    every: String,
    /// Display name (default: the feed's X-WR-CALNAME, else NAME).
    #[arg(long)]
    displayname: Option<String>,
}

#[derive(Subcommand)]
enum SubscribeCmd {
    /// Subscriptions with their last success and last error.
    List { user: Option<String> },
    /// Fetch a subscription now.
    Refresh { user: String, name: String },
    /// Remove a subscription and its calendar.
    Remove { user: String, name: String },
}

#[derive(Subcommand)]
enum FeedCmd {
    /// Create a feed link of a calendar and print its URL (shown once).
    Create {
        user: String,
        calendar: String,
        /// full: events with details (private ones as "Busy"); busy: only busy times.
        #[arg(long, default_value = "full", value_parser = ["full", "busy"])]
        mode: String,
        /// Leave out events that ended more than N days ago.
        #[arg(long)]
        window_days: Option<i64>,
        /// Keep alarms (VALARM) in the feed.
        #[arg(long)]
        include_alarms: bool,
        /// Keep attendee and organizer e-mail addresses in the feed.
        #[arg(long)]
        include_emails: bool,
    },
    /// List a user's feed links.
    List { user: String },
    /// Revoke a feed link by its id (from `feed list`); it stops working at once.
    Revoke { user: String, id: i64 },
}

#[derive(Subcommand)]
enum UserCmd {
    /// Create a user with a home and a default calendar. Without --password-stdin a random
    /// password is generated and printed once.
    Add {
        name: String,
        #[arg(long)]
        email: Option<String>,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Change a user's password (drops their remembered logins at once).
    Passwd {
        name: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users.
    List,
    /// Delete a user and all their calendars.
    Delete { name: String },
}

#[derive(Subcommand)]
enum AppPasswordCmd {
    /// Create an app password; it is printed once and only its hash is kept.
    Add { name: String, label: String },
    /// List a user's app passwords.
    List { name: String },
    /// Revoke an app password; it stops working at once.
    Revoke { name: String, label: String },
}

fn read_password(from_stdin: bool) -> Result<(String, bool)> {
    if !from_stdin {
        return Ok((almanac::auth::generate_password(), true));
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from stdin")?;
    let pw = line.trim_end_matches(['\r', '\n']).to_owned();
    if pw.is_empty() {
        bail!("empty password on stdin");
    }
    Ok((pw, false))
}

/// mimalloc instead of glibc malloc: faster for the many small allocations of a request, and it
/// returns freed memory instead of holding it in per-thread arenas (peak RSS under load).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<()> {
    let cli = Cli::parse();
    let config = Config::load(cli.config.as_deref())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(cli.command, config))
}

async fn principal(st: &store::DynStore, name: &str) -> Result<store::Principal> {
    st.principal_by_name(name)
        .await?
        .with_context(|| format!("no user {name:?}"))
}

async fn calendar_of(
    st: &store::DynStore,
    user: &str,
    calendar: &str,
) -> Result<(store::Principal, store::Collection)> {
    let p = principal(st, user).await?;
    let c = st
        .calendar(p.id, calendar)
        .await?
        .with_context(|| format!("{user} has no calendar {calendar:?}"))?;
    Ok((p, c))
}

fn when(ts: Option<i64>) -> String {
    ts.map_or("never".into(), almanac::timefmt::rfc3339)
}

async fn feed_cmd(config: &Config, cmd: FeedCmd) -> Result<()> {
    let st = open(config).await?;
    match cmd {
        FeedCmd::Create {
            user,
            calendar,
            mode,
            window_days,
            include_alarms,
            include_emails,
        } => {
            let p = principal(&st, &user).await?;
            let settings = store::FeedSettings {
                mode: store::FeedMode::parse(&mode).context("mode is full or busy")?,
                window_days,
                include_alarms,
                include_emails,
            };
            let (feed, token) = feeds::create(st.as_ref(), &p, &calendar, &settings).await?;
            let (url, webcal) = feeds::links(&config.base_url(), &token);
            println!("{url}");
            println!("{webcal}");
            eprintln!(
                "feed {} of {user}/{calendar} ({mode}); the link is shown only now",
                feed.id
            );
        }
        FeedCmd::List { user } => {
            let p = principal(&st, &user).await?;
            println!("id\tcalendar\tmode\twindow\ttoken\tcreated\tlast used");
            for f in st.feeds(p.id).await? {
                println!(
                    "{}\t{}\t{}{}{}\t{}\t{}…\t{}\t{}",
                    f.id,
                    f.calendar,
                    f.settings.mode.as_str(),
                    if f.settings.include_alarms {
                        "+alarms"
                    } else {
                        ""
                    },
                    if f.settings.include_emails {
                        "+emails"
                    } else {
                        ""
                    },
                    f.settings
                        .window_days
                        .map_or("all".into(), |d| format!("{d}d")),
                    f.token_hint,
                    almanac::timefmt::rfc3339(f.created_at),
                    when(f.last_used_at),
                );
            }
        }
        FeedCmd::Revoke { user, id } => {
            let p = principal(&st, &user).await?;
            st.revoke_feed(p.id, id).await.map_err(|e| match e {
                store::StoreError::NotFound => anyhow::anyhow!("{user} has no feed {id}"),
                e => e.into(),
            })?;
            println!("revoked feed {id}");
        }
    }
    Ok(())
}

/// Fetches the subscription behind calendar `c` now and records the outcome; `None` when `c`
/// is not a subscription.
async fn refresh_now(
    st: &store::DynStore,
    config: &Config,
    c: &store::Collection,
) -> Result<Option<store::RefreshOutcome>> {
    let Some(sub) = st
        .subscriptions(Some(c.owner_id))
        .await?
        .into_iter()
        .find(|s| s.collection_id == c.id)
    else {
        return Ok(None);
    };
    let outcome = subscriptions::refresh(
        st,
        &config.subscriptions,
        config.limits.max_resource_size,
        config.limits.quota_bytes,
        &sub,
    )
    .await;
    st.record_refresh(c.id, store::now(), &outcome).await?;
    Ok(Some(outcome))
}

async fn subscribe_cmd(
    config: &Config,
    cmd: Option<SubscribeCmd>,
    add: SubscribeArgs,
) -> Result<()> {
    let st = open(config).await?;
    match cmd {
        None => {
            let (Some(user), Some(name), Some(url)) = (add.user, add.name, add.url) else {
                bail!("usage: almanac subscribe USER NAME URL [--every 1h]");
            };
            let every = subscriptions::parse_interval(&add.every).map_err(anyhow::Error::msg)?;
            subscriptions::fetch_url(&url).map_err(anyhow::Error::msg)?;
            almanac::dav::path::DavPath::parse(&almanac::dav::path::calendar_href(&user, &name))
                .ok()
                .filter(|p| matches!(p, almanac::dav::path::DavPath::Calendar(..)))
                .with_context(|| format!("{name:?} cannot be a calendar name"))?;
            let p = principal(&st, &user).await?;
            let new = store::NewCalendar {
                name: name.clone(),
                displayname: Some(add.displayname.unwrap_or_else(|| name.clone())),
                components: vec![
                    almanac::ical::ComponentKind::Event,
                    almanac::ical::ComponentKind::Todo,
                    almanac::ical::ComponentKind::Journal,
                ],
                ..Default::default()
            };
            let c = st
                .create_subscription(p.id, &new, &url, every)
                .await
                .map_err(|e| match e {
                    store::StoreError::AlreadyExists => {
                        anyhow::anyhow!("{user} already has a calendar {name:?}")
                    }
                    e => e.into(),
                })?;
            // The first fetch happens now, so a wrong URL shows at once.
            let outcome = refresh_now(&st, config, &c)
                .await?
                .context("subscription vanished")?;
            println!(
                "subscribed /calendars/{user}/{name}/ to {url}, refreshed every {}",
                add.every
            );
            match outcome {
                store::RefreshOutcome::Success { status, .. } => println!("first fetch: {status}"),
                store::RefreshOutcome::Error(e) => {
                    println!(
                        "first fetch failed: {e} (the server retries every {})",
                        add.every
                    )
                }
            }
        }
        Some(SubscribeCmd::List { user }) => {
            let owner = match user {
                Some(u) => Some(principal(&st, &u).await?.id),
                None => None,
            };
            println!("calendar\turl\tevery\tlast success\tlast status\tlast error");
            for s in st.subscriptions(owner).await? {
                let error = match (&s.last_error, s.last_error_at) {
                    (Some(e), Some(at)) if s.last_success_at.is_none_or(|ok| at >= ok) => {
                        format!("{} ({e})", almanac::timefmt::rfc3339(at))
                    }
                    (Some(e), Some(at)) => {
                        format!("{} ({e}), resolved since", almanac::timefmt::rfc3339(at))
                    }
                    _ => "none".into(),
                };
                println!(
                    "{}/{}\t{}\t{}s\t{}\t{}\t{}",
                    s.owner,
                    s.calendar,
                    s.url,
                    s.refresh_seconds,
                    when(s.last_success_at),
                    s.last_status.as_deref().unwrap_or("-"),
                    error
                );
            }
        }
        Some(SubscribeCmd::Refresh { user, name }) => {
            let (_, c) = calendar_of(&st, &user, &name).await?;
            let outcome = refresh_now(&st, config, &c)
                .await?
                .with_context(|| format!("{user}/{name} is not a subscription"))?;
            match outcome {
                store::RefreshOutcome::Success { status, .. } => println!("{status}"),
                store::RefreshOutcome::Error(e) => bail!("refresh failed: {e}"),
            }
        }
        Some(SubscribeCmd::Remove { user, name }) => {
            let (p, c) = calendar_of(&st, &user, &name).await?;
            if !c.read_only {
                bail!("{user}/{name} is not a subscription (delete calendars over CalDAV)");
            }
            st.delete_calendar(p.id, &name).await?;
            println!("removed subscription {user}/{name}");
        }
    }
    Ok(())
}

async fn open(config: &Config) -> Result<store::DynStore> {
    store::open(&config.database_url)
        .await
        .with_context(|| format!("opening database {}", store::redact(&config.database_url)))
}

async fn run(command: Command, config: Config) -> Result<()> {
    match command {
        Command::Feed(cmd) => feed_cmd(&config, cmd).await,
        Command::Subscribe { cmd, add } => subscribe_cmd(&config, cmd, add).await,
        Command::Import {
            user,
            calendar,
            file,
        } => {
            let st = open(&config).await?;
            let (_, c) = calendar_of(&st, &user, &calendar).await?;
            if c.read_only {
                bail!("{user}/{calendar} is a subscription; its events come from its URL");
            }
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let text = String::from_utf8(bytes)
                .map_err(|_| anyhow::anyhow!("{} is not UTF-8 text", file.display()))?;
            let report = import::import(
                st.as_ref(),
                &c,
                &text,
                config.limits.max_resource_size,
                config.limits.quota_bytes,
            )
            .await?;
            for s in &report.skipped {
                eprintln!("skipped {}: {}", s.what, s.reason);
            }
            println!(
                "imported {} resources into /calendars/{user}/{calendar}/, skipped {}",
                report.imported,
                report.skipped.len()
            );
            Ok(())
        }
        Command::Export {
            user,
            calendar,
            output,
        } => {
            use futures_util::StreamExt;
            use std::io::Write;
            let st = open(&config).await?;
            let (_, c) = calendar_of(&st, &user, &calendar).await?;
            let mut out: Box<dyn Write> = match &output {
                Some(p) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(p)
                        .with_context(|| format!("creating {}", p.display()))?,
                )),
                None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            };
            let mut s = std::pin::pin!(export::stream(
                st.clone(),
                &c,
                export::View::Export,
                store::now()
            ));
            while let Some(chunk) = s.next().await {
                out.write_all(&chunk?)?;
            }
            out.flush()?;
            Ok(())
        }
        Command::Serve => serve(config).await,
        Command::Migrate => {
            open(&config).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::User(cmd) => {
            let st = open(&config).await?;
            match cmd {
                UserCmd::Add {
                    name,
                    email,
                    password_stdin,
                } => {
                    let (pw, generated) = read_password(password_stdin)?;
                    users::add_user(st.as_ref(), &name, email.as_deref(), &pw).await?;
                    println!("created user {name} with calendar /calendars/{name}/default/");
                    if generated {
                        println!("password: {pw}");
                    }
                }
                UserCmd::Passwd {
                    name,
                    password_stdin,
                } => {
                    let (pw, generated) = read_password(password_stdin)?;
                    users::set_password(st.as_ref(), &name, &pw).await?;
                    println!("password of {name} changed");
                    if generated {
                        println!("password: {pw}");
                    }
                }
                UserCmd::List => {
                    for p in st.principals().await? {
                        println!("{}\t{}", p.name, p.email.as_deref().unwrap_or("-"));
                    }
                }
                UserCmd::Delete { name } => {
                    st.delete_principal(&name).await.map_err(|e| match e {
                        store::StoreError::NotFound => anyhow::anyhow!("no user {name:?}"),
                        e => e.into(),
                    })?;
                    println!("deleted user {name}");
                }
            }
            Ok(())
        }
        Command::AppPassword(cmd) => {
            let st = open(&config).await?;
            match cmd {
                AppPasswordCmd::Add { name, label } => {
                    let pw = users::add_app_password(st.as_ref(), &name, &label).await?;
                    println!("{pw}");
                }
                AppPasswordCmd::List { name } => {
                    let p = st
                        .principal_by_name(&name)
                        .await?
                        .with_context(|| format!("no user {name:?}"))?;
                    for a in st.app_passwords(p.id).await? {
                        let used = a
                            .last_used_at
                            .map_or("never".into(), almanac::timefmt::rfc3339);
                        println!(
                            "{}\tcreated {}\tlast used {used}",
                            a.label,
                            almanac::timefmt::rfc3339(a.created_at)
                        );
                    }
                }
                AppPasswordCmd::Revoke { name, label } => {
                    let p = st
                        .principal_by_name(&name)
                        .await?
                        .with_context(|| format!("no user {name:?}"))?;
                    st.revoke_app_password(p.id, &label)
                        .await
                        .map_err(|e| match e {
                            store::StoreError::NotFound => {
                                anyhow::anyhow!("{name} has no app password {label:?}")
                            }
                            e => e.into(),
                        })?;
                    println!("revoked {label}");
                }
            }
            Ok(())
        }
    }
}

async fn serve(config: Config) -> Result<()> {
    let filter =
        tracing_subscriber::EnvFilter::try_new(&config.log).context("invalid log filter")?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let st = open(&config).await?;
    let reindexed = almanac::reindex::reindex_stale(st.as_ref()).await?;
    if reindexed > 0 {
        tracing::info!(
            objects = reindexed,
            "recomputed the time index of objects from an older version"
        );
    }
    if let Some(pw) = users::ensure_admin(st.as_ref(), config.admin_password.as_deref()).await? {
        eprintln!("created user admin with password: {pw}");
        eprintln!("(shown once; change it with `almanac user passwd admin`)");
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    tracing::info!(
        address = %listener.local_addr()?,
        database = %store::redact(&config.database_url),
        backend = st.backend_name(),
        "almanac serving"
    );
    app::serve(listener, AppState::new(st, config), shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
