//! `tutti`: the one binary. `main` parses flags, wires the store and the
//! server, and maps errors to an exit code; the work is in the library crates.

mod aggregate;
mod bench;
mod bench_aggregate;
mod bench_pages;
mod bench_posts;
mod demo;
mod label;
mod run;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use std::sync::Arc;
use std::time::Duration;
use tutti_domain::ids::JobId;
use tutti_domain::policy::AggregationMethod;
use tutti_domain::role::Role;
use tutti_server::{Application, Settings};
use tutti_store::{NewUser, Store};

/// Tutti: human-in-the-loop data work.
#[derive(Parser)]
#[command(name = "tutti", version, about)]
struct Cli {
    /// Where Tutti keeps everything: sqlite://PATH (created if missing) or postgres://USER@HOST/DB.
    /// [default: sqlite://tutti.db; for `tutti run`, a database in --out]
    #[arg(long, env = "TUTTI_DATABASE_URL", global = true)]
    database_url: Option<String>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API, the worker page and the docs, with the lease monitor inside.
    Serve(ServeArgs),
    /// Fill the database with a demo workspace, users and a job, then serve it.
    Demo {
        #[command(flatten)]
        serve: ServeArgs,
        /// Items in the demo job.
        #[arg(long, default_value_t = 300)]
        items: usize,
    },
    /// Run only the lease monitor: reopen tasks whose leases ran out.
    Monitor {
        /// Seconds between sweeps.
        #[arg(long, default_value_t = 60)]
        interval: u64,
        /// Sweep once and exit.
        #[arg(long)]
        once: bool,
    },
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Re-aggregate a job or print its worker quality report.
    #[command(subcommand)]
    Job(JobCommand),
    /// Check a workflow (a .cy program or a JSON spec) and list its steps.
    #[command(subcommand)]
    Workflow(WorkflowCommand),
    /// Run a workflow (.cy program or .json spec) from the terminal, with a
    /// live progress line per step; files it names are found beside it.
    Run(run::RunArgs),
    /// Let simulated workers answer a workspace's jobs on a running server.
    Simulate(run::SimulateArgs),
    /// Aggregate crowd answers from a CSV file into labels (no database needed).
    Aggregate(aggregate::AggregateArgs),
    /// Replay recorded answers through adaptive redundancy and report
    /// accuracy against answers used.
    Replay(aggregate::ReplayArgs),
    /// Label one column of many rows with a pattern file (keywords and
    /// regexes), from a file or database table to a file or database.
    Label(label::LabelArgs),
    /// Serve a local stand-in for Mechanical Turk's requester API, to try
    /// `3a_amt` workflows without paying anyone (see docs/MTURK.md).
    MturkLocal {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:9000")]
        bind: String,
        /// The access key id requests must be signed with.
        #[arg(long, env = "AWS_ACCESS_KEY_ID", default_value = "AKIDLOCAL")]
        access_key_id: String,
        /// The secret requests must be signed with.
        #[arg(
            long,
            env = "AWS_SECRET_ACCESS_KEY",
            default_value = "local-secret",
            hide_env_values = true
        )]
        secret_access_key: String,
    },
    /// Load benchmarks (see BENCHMARKS.md).
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

#[derive(Args, Clone)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "TUTTI_BIND", default_value = "127.0.0.1:8080")]
    bind: String,
    /// Seconds between lease-monitor sweeps (0 turns the monitor off).
    #[arg(long, env = "TUTTI_MONITOR_INTERVAL", default_value_t = 5)]
    monitor_interval: u64,
    /// Largest accepted upload, in bytes.
    #[arg(long, env = "TUTTI_MAX_UPLOAD_BYTES", default_value_t = 1 << 30)]
    max_upload_bytes: u64,
    /// Let model calls and webhooks reach internal addresses (loopback,
    /// private, link-local): only where every requester is trusted.
    #[arg(long, env = "TUTTI_ALLOW_PRIVATE_URLS")]
    allow_private_urls: bool,
    /// A host model calls and webhooks may reach even though it is internal
    /// (repeatable).
    #[arg(long = "allow-host", env = "TUTTI_ALLOW_HOSTS", value_delimiter = ',')]
    allow_hosts: Vec<String>,
    /// Where workflow runs keep their tables (default: beside a SQLite
    /// database, or ./tutti-runs).
    #[arg(long, env = "TUTTI_RUNS_DIR")]
    runs_dir: Option<std::path::PathBuf>,
    /// Do not run workflows here (when several servers share a PostgreSQL
    /// store, exactly one should run them).
    #[arg(long, env = "TUTTI_NO_RUNNER")]
    no_runner: bool,
    /// An outside database workflows may read and write, as NAME=URL
    /// (repeatable; also TUTTI_CONNECTION_<NAME>=URL).
    #[arg(long = "connection", value_parser = parse_connection)]
    connections: Vec<(String, String)>,
    /// This server's address as model services reach it, for model steps
    /// answered by callback (default: the --bind address).
    #[arg(long, env = "TUTTI_PUBLIC_URL")]
    public_url: Option<String>,
    /// The database bulk labeling tasks read (SQLite file, postgres:// or
    /// mysql:// URL; `{schema}` is replaced by a task's target_schema).
    /// Default: a MySQL URL from INPUT_HOST, INPUT_PORT, INPUT_USER,
    /// INPUT_PASSWORD and INPUT_SCHEMA, as the Audience service read them.
    #[arg(long, env = "TUTTI_LABEL_INPUT")]
    label_input: Option<String>,
    /// The database labeling results go to (likewise; OUTPUT_* variables).
    #[arg(long, env = "TUTTI_LABEL_OUTPUT")]
    label_output: Option<String>,
    /// The folder of pattern files, one per model: keyword_model.csv.
    #[arg(long, env = "TUTTI_LABEL_PATTERNS", default_value = "patterns")]
    label_patterns: std::path::PathBuf,
    /// Serve the task API (/api/tasks/) without a token, as the Audience
    /// service did; only on a private network.
    #[arg(long, env = "TUTTI_TASKS_OPEN")]
    tasks_open: bool,
    /// Mechanical Turk, for `3a_amt` steps.
    #[command(flatten)]
    mturk: MturkArgs,
}

impl ServeArgs {
    /// Bulk labeling's settings, if an input and an output are configured.
    fn labeling(&self) -> Option<tutti_server::tasks::LabelingSettings> {
        use tutti_server::tasks::LabelingSettings;
        let input_env = LabelingSettings::url_from_env("INPUT");
        let output_env = LabelingSettings::url_from_env("OUTPUT");
        let input = self
            .label_input
            .clone()
            .or_else(|| input_env.as_ref().map(|(u, _)| u.clone()))?;
        let output = self
            .label_output
            .clone()
            .or_else(|| output_env.as_ref().map(|(u, _)| u.clone()))?;
        Some(LabelingSettings {
            input_url: input,
            output_url: output,
            input_schema: input_env.and_then(|(_, s)| s),
            output_schema: output_env.and_then(|(_, s)| s),
            patterns_dir: self.label_patterns.clone(),
            open: self.tasks_open,
        })
    }
}

/// Where `3a_amt` steps go.
#[derive(Args, Clone, Debug)]
pub(crate) struct MturkArgs {
    /// Post `3a_amt` steps to Mechanical Turk: `sandbox`, `production` or
    /// the URL of a server speaking its API (keys from AWS_ACCESS_KEY_ID and
    /// AWS_SECRET_ACCESS_KEY). Without it, `3a_amt` steps fail.
    #[arg(long = "mturk-endpoint", env = "TUTTI_MTURK_ENDPOINT")]
    endpoint: Option<String>,
    /// Reward per Mechanical Turk answer, in US dollars.
    #[arg(
        long = "mturk-reward",
        env = "TUTTI_MTURK_REWARD",
        default_value = "0.05"
    )]
    reward: String,
    /// Seconds between Mechanical Turk passes (post HITs, read answers).
    #[arg(
        long = "mturk-poll-secs",
        env = "TUTTI_MTURK_POLL_SECS",
        default_value_t = 30
    )]
    poll_secs: u64,
}

impl MturkArgs {
    /// Mechanical Turk's settings, if an endpoint is given.
    pub(crate) fn settings(&self) -> anyhow::Result<Option<tutti_engine::mturk::Settings>> {
        let Some(endpoint) = &self.endpoint else {
            return Ok(None);
        };
        let key = std::env::var("AWS_ACCESS_KEY_ID").unwrap_or_default();
        let secret = std::env::var("AWS_SECRET_ACCESS_KEY").unwrap_or_default();
        let mut m = tutti_engine::mturk::Settings::new(endpoint, &key, &secret, &self.reward)
            .map_err(|e| anyhow::anyhow!(e))?;
        if self.poll_secs == 0 {
            anyhow::bail!("--mturk-poll-secs must be at least 1");
        }
        m.poll = Duration::from_secs(self.poll_secs);
        Ok(Some(m))
    }
}

fn parse_connection(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_owned(), v.to_owned()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("{s:?} is not NAME=URL"))
}

/// The outside databases: TUTTI_CONNECTION_<NAME> variables (the name in
/// lower case), then --connection flags.
fn connections(
    flags: &[(String, String)],
) -> anyhow::Result<std::collections::BTreeMap<String, String>> {
    let mut out = std::collections::BTreeMap::new();
    for (k, v) in std::env::vars() {
        if let Some(name) = k.strip_prefix("TUTTI_CONNECTION_")
            && !name.is_empty()
        {
            out.insert(name.to_lowercase(), v);
        }
    }
    for (k, v) in flags {
        out.insert(k.clone(), v.clone());
    }
    for (name, url) in &out {
        if !(url.starts_with("postgres://")
            || url.starts_with("postgresql://")
            || url.starts_with("mysql://")
            || url.starts_with("mariadb://")
            || url.starts_with("sqlite:"))
        {
            anyhow::bail!(
                "connection {name}: {} is not a postgres://, mysql:// or sqlite:// URL",
                tutti_store::redact_url(url)
            );
        }
    }
    Ok(out)
}

impl ServeArgs {
    fn settings(&self, database_url: &str) -> anyhow::Result<Settings> {
        Ok(Settings {
            max_upload_bytes: self.max_upload_bytes,
            monitor_interval: (self.monitor_interval > 0)
                .then(|| Duration::from_secs(self.monitor_interval)),
            runs_dir: self
                .runs_dir
                .clone()
                .unwrap_or_else(|| default_runs_dir(database_url)),
            run_workflows: !self.no_runner,
            databases: connections(&self.connections)?,
            public_url: self.public_url.clone(),
            labeling: self.labeling(),
            mturk: self.mturk.settings()?,
            outbound: tutti_engine::outbound::Outbound {
                allow_private: self.allow_private_urls,
                allowed_hosts: self.allow_hosts.clone(),
            },
            header_timeout: tutti_server::serve::HEADER_TIMEOUT,
        })
    }
}

/// Run files beside a SQLite database (`tutti.db` keeps them in
/// `tutti.db.runs/`), else in `./tutti-runs`.
fn default_runs_dir(database_url: &str) -> std::path::PathBuf {
    let path = database_url
        .strip_prefix("sqlite://")
        .or_else(|| database_url.strip_prefix("sqlite:"))
        .map(|p| p.split('?').next().unwrap_or(p));
    match path {
        Some(p) if !p.is_empty() && !p.contains(":memory:") => {
            std::path::PathBuf::from(format!("{p}.runs"))
        }
        _ => std::path::PathBuf::from("tutti-runs"),
    }
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user and print a first API token for them.
    Create {
        /// Login name.
        name: String,
        /// Account role: admin, requester, steward or worker.
        #[arg(long, default_value = "worker")]
        role: Role,
        /// Name shown to people.
        #[arg(long)]
        display_name: Option<String>,
    },
    /// Set a user's web sign-in password, read from the first line of
    /// standard input (so it stays out of the shell history).
    Password {
        /// Login name.
        name: String,
    },
}

#[derive(Subcommand)]
enum JobCommand {
    /// Re-aggregate a job's answers with a method and store the labels
    /// beside the ones agreement decided; prints what changed as JSON.
    Aggregate {
        /// The job's id.
        job: i64,
        /// mv, kofn, wmv, ds, onecoin, glad, mace, wawa or zbs (default:
        /// the job's own method).
        #[arg(long)]
        method: Option<String>,
    },
    /// The job's worker quality report, as CSV on standard output.
    Workers {
        /// The job's id.
        job: i64,
    },
}

#[derive(Subcommand)]
enum WorkflowCommand {
    /// Parse and check a workflow without running it; prints its steps, or
    /// the first error with its line and column (or field).
    Check {
        /// The program (`.cy`) or spec (`.json`).
        file: std::path::PathBuf,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create an API token for a user and print it (shown only once).
    Create {
        /// The user's login name.
        #[arg(long)]
        user: String,
        /// What the token is for.
        #[arg(long, default_value = "cli")]
        name: String,
    },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TUTTI_LOG")
                .unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn open(url: &str) -> anyhow::Result<Arc<dyn Store>> {
    tutti_store::connect(url)
        .await
        .with_context(|| format!("opening {}", tutti_store::redact_url(url)))
}

/// The store when none is named.
const DEFAULT_DATABASE_URL: &str = "sqlite://tutti.db";

async fn run(cli: Cli) -> anyhow::Result<()> {
    let database_url = cli
        .database_url
        .clone()
        .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned());
    match cli.command {
        Command::Serve(args) => {
            let store = open(&database_url).await?;
            serve(store, &args.settings(&database_url)?, &args.bind, None).await
        }
        Command::Demo { serve: args, items } => {
            let store = open(&database_url).await?;
            let tokens = demo::populate(store.as_ref(), items).await?;
            serve(
                store,
                &args.settings(&database_url)?,
                &args.bind,
                Some(tokens),
            )
            .await
        }
        Command::Monitor { interval, once } => {
            let store = open(&database_url).await?;
            if once {
                let n = tutti_server::monitor::sweep(store.as_ref()).await?;
                println!("reopened {n} overdue leases");
                return Ok(());
            }
            tracing::info!(interval, "lease monitor running");
            tokio::select! {
                () = tutti_server::monitor::run(store, Duration::from_secs(interval.max(1))) => Ok(()),
                () = shutdown_signal() => Ok(()),
            }
        }
        Command::User(UserCommand::Create {
            name,
            role,
            display_name,
        }) => {
            let store = open(&database_url).await?;
            let name = tutti_server::api::users::parse_user_name(&name)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let user = store
                .create_user(
                    &NewUser {
                        display_name: display_name.unwrap_or_else(|| name.clone()),
                        name,
                        role,
                    },
                    tutti_store::now(),
                )
                .await?;
            let token = issue(store.as_ref(), &user, "cli").await?;
            println!("created user {} (id {}, {})", user.name, user.id, user.role);
            println!("token: {token}");
            Ok(())
        }
        Command::User(UserCommand::Password { name }) => {
            let store = open(&database_url).await?;
            let user = store
                .get_user_by_name(&name)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no user is named {name:?}"))?;
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            let password = line.trim_end_matches(['\r', '\n']).to_owned();
            tutti_server::auth::check_new_password("password", &password)
                .map_err(|e| anyhow::anyhow!("{}", e.message))?;
            let phc = tutti_server::auth::hash_password(password)
                .await
                .map_err(|e| anyhow::anyhow!("{}", e.message))?;
            store.set_password(user.id, Some(&phc)).await?;
            println!("{} can now sign in at /login with that password", user.name);
            Ok(())
        }
        Command::Token(TokenCommand::Create { user, name }) => {
            let store = open(&database_url).await?;
            let user = store
                .get_user_by_name(&user)
                .await?
                .with_context(|| format!("no user named {user:?}"))?;
            println!("{}", issue(store.as_ref(), &user, &name).await?);
            Ok(())
        }
        Command::Run(args) => run::run(args, cli.database_url).await,
        Command::Simulate(args) => run::simulate(args).await,
        Command::Bench(cmd) => bench::run(cmd, &database_url).await,
        Command::Job(cmd) => job_command(cmd, &database_url).await,
        Command::Workflow(WorkflowCommand::Check { file }) => check_workflow(&file),
        Command::Aggregate(args) => aggregate::run(&args),
        Command::Label(args) => {
            let rt = tokio::runtime::Handle::current();
            tokio::task::spawn_blocking(move || label::run(args, rt)).await?
        }
        Command::Replay(args) => aggregate::replay(&args),
        Command::MturkLocal {
            bind,
            access_key_id,
            secret_access_key,
        } => {
            let turk = tutti_server::mturk_local::LocalTurk::new(
                tutti_engine::mturk::sigv4::Credentials {
                    access_key_id: access_key_id.clone(),
                    secret_access_key,
                },
            );
            let listener = tokio::net::TcpListener::bind(&bind)
                .await
                .map_err(|e| anyhow::anyhow!("binding {bind}: {e}"))?;
            let addr = listener.local_addr()?;
            eprintln!(
                "local Mechanical Turk on http://{addr} (key {access_key_id}); \
                 point tutti serve at it with --mturk-endpoint http://{addr}"
            );
            axum::serve(listener, turk.router())
                .with_graceful_shutdown(async {
                    let _ = tokio::signal::ctrl_c().await;
                })
                .await?;
            Ok(())
        }
    }
}

fn check_workflow(file: &std::path::Path) -> anyhow::Result<()> {
    use tutti_domain::workflow;
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let parsed = match file.extension().and_then(|e| e.to_str()) {
        Some("json") => workflow::spec::parse(&text),
        _ => workflow::cy::parse(&text),
    };
    let w = parsed.map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    for n in &w.nodes {
        let outputs = if n.outputs.is_empty() {
            String::new()
        } else {
            format!("{} = ", n.outputs.join(", "))
        };
        println!("{outputs}{}({})", n.op.name(), n.inputs.join(", "));
    }
    let files = w.input_files();
    if !files.is_empty() {
        println!("files it needs: {}", files.join(", "));
    }
    Ok(())
}

async fn job_command(cmd: JobCommand, database_url: &str) -> anyhow::Result<()> {
    let store = open(database_url).await?;
    let id = match &cmd {
        JobCommand::Aggregate { job, .. } | JobCommand::Workers { job } => JobId(*job),
    };
    let job = store
        .get_job(id)
        .await?
        .with_context(|| format!("no job with id {}", id.0))?;
    match cmd {
        JobCommand::Aggregate { method, .. } => {
            let method = match method {
                Some(m) => AggregationMethod::parse(&m, "--method")
                    .map_err(|e| anyhow::anyhow!("{}: {}", e.field, e.message))?,
                None => job.config.policy.aggregation,
            };
            let summary = tutti_server::quality::reaggregate(store.as_ref(), &job, method).await?;
            println!("{}", serde_json::to_string_pretty(&summary)?);
        }
        JobCommand::Workers { .. } => {
            let rows = store.worker_quality(job.id).await?;
            use std::io::Write as _;
            std::io::stdout().write_all(&tutti_server::quality::workers_csv(&rows)?)?;
        }
    }
    Ok(())
}

/// Makes a token for `user` and returns its secret.
async fn issue(store: &dyn Store, user: &tutti_store::User, name: &str) -> anyhow::Result<String> {
    let token = tutti_server::auth::new_token();
    store
        .create_token(
            user.id,
            name,
            &tutti_server::auth::token_hash(&token),
            tutti_store::now(),
        )
        .await?;
    Ok(token)
}

async fn serve(
    store: Arc<dyn Store>,
    settings: &Settings,
    bind: &str,
    demo: Option<Vec<(String, String)>>,
) -> anyhow::Result<()> {
    let app = Application::build(store, settings.clone(), bind).await?;
    let addr = app.local_addr();
    tracing::info!(%addr, "tutti is serving");
    if let Some(tokens) = demo {
        demo::print_welcome(addr, &tokens);
    }
    app.run_until(shutdown_signal()).await
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
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}
