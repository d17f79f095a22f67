//! `almanac`: the server and its administration commands. Thin: parsing arguments and
//! printing; the work is in the library.

use almanac::config::Config;
use almanac::state::AppState;
use almanac::{app, store, users};
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

fn main() -> Result<()> {
    let cli = Cli::parse();
    let config = Config::load(cli.config.as_deref())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(cli.command, config))
}

async fn open(config: &Config) -> Result<store::DynStore> {
    store::open(&config.database_url)
        .await
        .with_context(|| format!("opening database {}", store::redact(&config.database_url)))
}

async fn run(command: Command, config: Config) -> Result<()> {
    match command {
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
