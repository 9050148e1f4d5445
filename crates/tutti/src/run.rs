//! `tutti run`: a workflow from the terminal. The program's files are read
//! from beside it, the server starts in this process (its store a SQLite
//! file in `--out` unless `--database-url` names another), the run goes
//! through the same API and runner as any other, and `write_table` files
//! land in `--out`. With `--simulate N`, synthetic workers answer every
//! human step; without it, the job pages are served at `--bind` and real
//! people answer. Started again after an interruption, it resumes the
//! unfinished run of the same program.
//!
//! `tutti simulate`: synthetic workers against any running server.

use anyhow::{Context as _, bail};
use clap::Args;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tutti_domain::role::Role;
use tutti_domain::workflow::{self, Format};
use tutti_server::simulate::{Behaviour, SimWorker, WorkerReport};
use tutti_server::{Application, Settings};
use tutti_store::{NewUser, Store};

/// `tutti run`.
#[derive(Args)]
pub struct RunArgs {
    /// The program (`.cy`) or spec (`.json`).
    program: PathBuf,
    /// Where output files (and, by default, the run's database) go.
    #[arg(long, default_value = "out")]
    out: PathBuf,
    /// Let this many simulated workers answer every human step.
    #[arg(long)]
    simulate: Option<u32>,
    /// Simulated workers' probability of answering a `gold_label` row
    /// right.
    #[arg(long, default_value_t = 0.9)]
    accuracy: f64,
    /// Simulated workers' mean milliseconds per answer.
    #[arg(long, default_value_t = 0)]
    answer_ms: u64,
    /// Seed of the simulated workers' choices.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Where to serve the job pages (without --simulate, people answer
    /// there).
    #[arg(long)]
    bind: Option<String>,
    /// Worker accounts to make for people (without --simulate).
    #[arg(long, default_value_t = 3)]
    workers: u32,
    /// A parameter for `${name}` in queries, as name=value (repeatable).
    #[arg(long = "param", value_parser = parse_param)]
    params: Vec<(String, String)>,
    /// An outside database steps may read and write, as NAME=URL
    /// (repeatable; also TUTTI_CONNECTION_<NAME>=URL).
    #[arg(long = "connection", value_parser = parse_param)]
    connections: Vec<(String, String)>,
    /// Mechanical Turk, for `3a_amt` steps.
    #[command(flatten)]
    mturk: crate::MturkArgs,
    /// Let the program read files outside its own folder (absolute paths
    /// and `..`); without it such a program is refused, since running
    /// someone else's program must not send your files anywhere.
    #[arg(long)]
    allow_outside_files: bool,
    /// Let the program's model calls and webhooks reach internal addresses
    /// (loopback, private, link-local), such as a model service on this
    /// machine.
    #[arg(long)]
    allow_private_urls: bool,
    /// A host the program's calls may reach even though it is internal
    /// (repeatable).
    #[arg(long = "allow-host", value_delimiter = ',')]
    allow_hosts: Vec<String>,
}

/// Why the program may not read `name` unless outside files are allowed:
/// an absolute path, or one that climbs out of the program's folder.
pub fn outside_file(name: &str) -> Option<&'static str> {
    let path = Path::new(name);
    if path.is_absolute() || name.starts_with('/') || name.starts_with('\\') || name.contains(':') {
        Some("is an absolute path")
    } else if path
        .components()
        .any(|c| matches!(c, std::path::Component::ParentDir))
        || name.split(['/', '\\']).any(|part| part == "..")
    {
        Some("climbs out of the program's folder with ..")
    } else {
        None
    }
}

fn parse_param(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_owned(), v.to_owned()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("{s:?} is not name=value"))
}

/// `tutti simulate`.
#[derive(Args)]
pub struct SimulateArgs {
    /// The server's address.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// A requester's (or admin's) API token.
    #[arg(long, env = "TUTTI_TOKEN")]
    token: String,
    /// The run whose human steps the workers answer; they stop when it
    /// ends.
    #[arg(long)]
    run: i64,
    /// How many workers.
    #[arg(long, default_value_t = 3)]
    workers: u32,
    /// Probability of answering a `gold_label` row right.
    #[arg(long, default_value_t = 0.9)]
    accuracy: f64,
    /// Mean milliseconds per answer.
    #[arg(long, default_value_t = 0)]
    answer_ms: u64,
    /// Answers per burst (0: no gaps).
    #[arg(long, default_value_t = 0)]
    burst: u32,
    /// Milliseconds between bursts.
    #[arg(long, default_value_t = 0)]
    gap_ms: u64,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

struct Api {
    base: String,
    token: String,
    client: reqwest::Client,
}

impl Api {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req
            .send()
            .await
            .with_context(|| format!("calling {path}"))?;
        let status = r.status();
        let text = r.text().await?;
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if !status.is_success() {
            let msg = v["error"]["message"]
                .as_str()
                .map_or(v.to_string(), str::to_owned);
            let field = v["error"]["field"]
                .as_str()
                .map(|f| format!(" ({f})"))
                .unwrap_or_default();
            bail!("{msg}{field}");
        }
        Ok(v)
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.call(reqwest::Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    async fn bytes(&self, path: &str) -> anyhow::Result<Vec<u8>> {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("downloading {path}: {}", r.status());
        }
        Ok(r.bytes().await?.to_vec())
    }
}

/// A user by name, made if missing, with a fresh token.
async fn account(
    store: &dyn Store,
    name: &str,
    role: Role,
) -> anyhow::Result<(tutti_domain::ids::UserId, String)> {
    let user = match store.get_user_by_name(name).await? {
        Some(u) => u,
        None => {
            store
                .create_user(
                    &NewUser {
                        name: name.to_owned(),
                        display_name: name.to_owned(),
                        role,
                    },
                    tutti_store::now(),
                )
                .await?
        }
    };
    let token = tutti_server::auth::new_token();
    store
        .create_token(
            user.id,
            "tutti run",
            &tutti_server::auth::token_hash(&token),
            tutti_store::now(),
        )
        .await?;
    Ok((user.id, token))
}

/// Runs `tutti run`.
pub async fn run(args: RunArgs, database_url: Option<String>) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.program)
        .with_context(|| format!("reading {}", args.program.display()))?;
    let name = args
        .program
        .file_name()
        .map_or("workflow".into(), |n| n.to_string_lossy().into_owned());
    let format = Format::of_file(&name);
    let wf = match workflow::parse(format, &text) {
        Ok(w) => w,
        Err(e) => bail!("{}: {e}", args.program.display()),
    };
    let dir = args
        .program
        .parent()
        .map_or(PathBuf::from("."), Path::to_path_buf);
    let mut files = BTreeMap::new();
    for f in wf.input_files() {
        if let Some(why) = outside_file(f).filter(|_| !args.allow_outside_files) {
            bail!(
                "the program reads {f}, which {why}; files must be in the program's folder \
                 (pass --allow-outside-files if you trust this program)"
            );
        }
        let path = dir.join(f);
        let content = std::fs::read_to_string(&path)
            .with_context(|| format!("the program reads {f}, expected at {}", path.display()))?;
        files.insert(f.to_owned(), content);
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let url =
        database_url.unwrap_or_else(|| format!("sqlite://{}", args.out.join("tutti.db").display()));
    let store = tutti_store::connect(&url)
        .await
        .with_context(|| format!("opening {}", tutti_store::redact_url(&url)))?;
    let (owner, token) = account(store.as_ref(), "tutti-run", Role::Admin).await?;
    let ws = match store
        .list_workspaces(Some(owner), None, 1000)
        .await?
        .into_iter()
        .find(|w| w.name == "runs")
    {
        Some(w) => w,
        None => {
            store
                .create_workspace("runs", owner, tutti_store::now())
                .await?
        }
    };
    let bind = args.bind.clone().unwrap_or_else(|| {
        if args.simulate.is_some() {
            "127.0.0.1:0".into()
        } else {
            "127.0.0.1:8080".into()
        }
    });
    let settings = Settings {
        max_upload_bytes: 1 << 30,
        monitor_interval: Some(Duration::from_secs(5)),
        runs_dir: args.out.join("runs"),
        run_workflows: true,
        databases: crate::connections(&args.connections)?,
        public_url: None,
        labeling: None,
        mturk: args.mturk.settings()?,
        outbound: tutti_engine::outbound::Outbound {
            allow_private: args.allow_private_urls,
            allowed_hosts: args.allow_hosts.clone(),
        },

        header_timeout: tutti_server::serve::HEADER_TIMEOUT,
    };
    let app = Application::build(store.clone(), settings, &bind).await?;
    let addr = app.local_addr();
    let base = app.state().base_url.clone();
    let (stop_server, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    let api = Api {
        base: base.clone(),
        token,
        client: reqwest::Client::new(),
    };
    let params: serde_json::Map<String, Value> = args
        .params
        .iter()
        .map(|(k, v)| {
            let value = serde_json::from_str::<Value>(v)
                .ok()
                .filter(|v| v.is_number())
                .unwrap_or_else(|| Value::from(v.clone()));
            (k.clone(), value)
        })
        .collect();
    // Resume the unfinished run of this program, if there is one.
    let previous = store
        .list_runs(ws.id, None, 1000)
        .await?
        .into_iter()
        .find(|r| r.program == text && r.name == name && !r.status.is_final());
    let run_id = match previous {
        Some(r) => {
            eprintln!("resuming run {} of {name}", r.id);
            r.id.0
        }
        None => {
            let r = api
                .post(
                    &format!("/api/v1/workspaces/{}/runs", ws.id),
                    json!({"name": name, "format": format.as_str(), "program": text,
                           "files": files, "params": params}),
                )
                .await?;
            r["id"].as_i64().context("the new run's id")?
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    let sim = match args.simulate {
        Some(n) => {
            let behaviour = Behaviour {
                accuracy: args.accuracy,
                answer_ms: args.answer_ms,
                burst: 0,
                gap_ms: 0,
                seed: args.seed,
            };
            behaviour
                .check()
                .map_err(|e| anyhow::anyhow!("--{}: {}", e.field, e.message))?;
            let mut workers = Vec::new();
            for i in 1..=n {
                let wname = format!("sim-{i}");
                let (id, token) = account(store.as_ref(), &wname, Role::Worker).await?;
                store.set_member(ws.id, id, Role::Worker).await?;
                workers.push(SimWorker { name: wname, token });
            }
            let (b, s) = (base.clone(), stop.clone());
            Some(tokio::spawn(async move {
                tutti_server::simulate::work(&b, workers, behaviour, s).await
            }))
        }
        None => {
            eprintln!("workers answer at http://{addr}/ ; sign in with one of these tokens:");
            for i in 1..=args.workers {
                let wname = format!("worker-{i}");
                let (id, token) = account(store.as_ref(), &wname, Role::Worker).await?;
                store.set_member(ws.id, id, Role::Worker).await?;
                eprintln!("  {wname}: {token}");
            }
            None
        }
    };
    let interrupted = tokio::spawn(async {
        let _ = tokio::signal::ctrl_c().await;
    });
    let mut progress = Progress::new();
    let final_view = loop {
        let view = api
            .get(&format!("/api/v1/runs/{run_id}?tables=false"))
            .await?;
        let mut lines = Vec::new();
        for n in view["nodes"].as_array().cloned().unwrap_or_default() {
            let mut counts = None;
            if let Some(job) = n["job_id"].as_i64()
                && let Ok(j) = api.get(&format!("/api/v1/jobs/{job}")).await
            {
                counts = Some((
                    j["progress"]["done"].as_i64().unwrap_or(0),
                    j["progress"]["tasks"].as_i64().unwrap_or(0),
                ));
            }
            lines.push(node_line(&n, counts));
        }
        progress.draw(
            &format!(
                "run {run_id} {name}: {}",
                view["status"].as_str().unwrap_or("?")
            ),
            &lines,
        );
        let status = view["status"].as_str().unwrap_or("");
        if matches!(status, "completed" | "failed" | "cancelled") {
            break api.get(&format!("/api/v1/runs/{run_id}")).await?;
        }
        if interrupted.is_finished() {
            stop.store(true, Ordering::SeqCst);
            let _ = stop_server.send(());
            let _ = server.await;
            eprintln!(
                "\ninterrupted; run `tutti run` again with the same --out to resume run {run_id}"
            );
            return Ok(());
        }
        // Looking costs the server more the bigger the run: look less often.
        let steps = view["nodes"].as_array().map_or(0, Vec::len) as u64;
        tokio::time::sleep(Duration::from_millis(250 + steps / 4)).await;
    };
    stop.store(true, Ordering::SeqCst);
    let reports = match sim {
        Some(h) => h.await.unwrap_or_default(),
        None => Vec::new(),
    };
    for f in final_view["outputs"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        let Some(fname) = f["name"].as_str() else {
            continue;
        };
        let bytes = api
            .bytes(&format!("/api/v1/runs/{run_id}/outputs/{fname}"))
            .await?;
        let path = args.out.join(fname);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    if !reports.is_empty() {
        print_reports(&reports);
    }
    let _ = stop_server.send(());
    let _ = server.await;
    match final_view["status"].as_str() {
        Some("completed") => Ok(()),
        _ => bail!(
            "run {run_id} {}: {}",
            final_view["status"].as_str().unwrap_or("?"),
            final_view["error"].as_str().unwrap_or("")
        ),
    }
}

fn print_reports(reports: &[WorkerReport]) {
    println!("worker,answers,with_gold,correct,precision");
    for r in reports {
        println!(
            "{},{},{},{},{}",
            r.name,
            r.answers,
            r.with_gold,
            r.correct,
            r.precision.map_or(String::new(), |p| format!("{p:.4}"))
        );
    }
}

fn bar(done: i64, total: i64) -> String {
    let width = 20;
    let filled = if total > 0 {
        (done.clamp(0, total) * width / total) as usize
    } else {
        width as usize
    };
    format!(
        "[{}{}]",
        "#".repeat(filled),
        ".".repeat(width as usize - filled)
    )
}

fn node_line(n: &Value, counts: Option<(i64, i64)>) -> String {
    let status = n["status"].as_str().unwrap_or("?");
    let what = format!(
        "{:>3} {:<12} {:<20}",
        n["index"].as_i64().unwrap_or(0) + 1,
        n["op"].as_str().unwrap_or("?"),
        n["label"].as_str().unwrap_or("")
    );
    let detail = match (status, counts) {
        (_, Some((done, total))) => format!("{} {done}/{total} tasks", bar(done, total)),
        ("completed", _) => format!("{} {} rows", bar(1, 1), n["rows_out"]),
        ("failed", _) => n["error"].as_str().unwrap_or("").to_owned(),
        _ => bar(0, 1),
    };
    format!("{what} {status:<9} {detail}")
}

/// Redraws the step lines in place on a terminal; elsewhere prints a line
/// when something changed.
struct Progress {
    tty: bool,
    drawn: usize,
    last: Vec<String>,
}

impl Progress {
    fn new() -> Self {
        Self {
            tty: std::io::stderr().is_terminal(),
            drawn: 0,
            last: Vec::new(),
        }
    }

    fn draw(&mut self, title: &str, lines: &[String]) {
        let mut all = vec![title.to_owned()];
        all.extend(lines.iter().cloned());
        if all == self.last {
            return;
        }
        let mut err = std::io::stderr().lock();
        if self.tty {
            if self.drawn > 0 {
                let _ = write!(err, "\x1b[{}A", self.drawn);
            }
            for l in &all {
                let _ = writeln!(err, "\x1b[2K{l}");
            }
            self.drawn = all.len();
        } else {
            for (i, l) in all.iter().enumerate() {
                if self.last.get(i) != Some(l) {
                    let _ = writeln!(err, "{l}");
                }
            }
        }
        self.last = all;
    }
}

/// Runs `tutti simulate`.
pub async fn simulate(args: SimulateArgs) -> anyhow::Result<()> {
    let api = Api {
        base: args.url.trim_end_matches('/').to_owned(),
        token: args.token.clone(),
        client: reqwest::Client::new(),
    };
    let started = api
        .post(
            &format!("/api/v1/runs/{}/simulation", args.run),
            json!({"workers": args.workers, "accuracy": args.accuracy, "answer_ms": args.answer_ms,
                   "burst": args.burst, "gap_ms": args.gap_ms, "seed": args.seed}),
        )
        .await?;
    eprintln!(
        "{} simulated workers answer run {}",
        started["workers"].as_array().map_or(0, Vec::len),
        args.run
    );
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let sim = api
            .get(&format!("/api/v1/runs/{}/simulation", args.run))
            .await?;
        if sim["state"] == "finished" {
            let reports: Vec<WorkerReport> = sim["report"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|r| WorkerReport {
                    name: r["name"].as_str().unwrap_or("").to_owned(),
                    answers: r["answers"].as_u64().unwrap_or(0),
                    with_gold: r["with_gold"].as_u64().unwrap_or(0),
                    correct: r["correct"].as_u64().unwrap_or(0),
                    precision: r["precision"].as_f64(),
                })
                .collect();
            print_reports(&reports);
            let run = api.get(&format!("/api/v1/runs/{}", args.run)).await?;
            println!(
                "run {}: {}",
                args.run,
                run["status"].as_str().unwrap_or("?")
            );
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_name_equals_value() {
        assert_eq!(
            parse_param("from=2024-01-01"),
            Ok(("from".into(), "2024-01-01".into()))
        );
        assert_eq!(parse_param("q=a=b"), Ok(("q".into(), "a=b".into())));
        assert!(parse_param("nothing").is_err());
        assert!(parse_param("=x").is_err());
    }

    #[test]
    fn files_outside_the_programs_folder_are_named_as_such() {
        for outside in [
            "/etc/os-release",
            "../secret/secret.txt",
            "a/../../b.csv",
            "..\\x.csv",
            "C:\\x.csv",
        ] {
            assert!(outside_file(outside).is_some(), "{outside}");
        }
        for inside in ["t.csv", "data/t.csv", "instructions.html", "a..b.csv"] {
            assert_eq!(outside_file(inside), None, "{inside}");
        }
    }

    #[test]
    fn a_step_line_shows_its_progress() {
        let n = json!({"index": 2, "op": "human_label", "label": "B, C", "status": "waiting"});
        let line = node_line(&n, Some((5, 20)));
        assert!(line.contains("[#####...............] 5/20 tasks"), "{line}");
        assert!(line.starts_with("  3 human_label"), "{line}");
    }
}
