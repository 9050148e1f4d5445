//! `tutti bench`: load benchmarks that anyone can rerun.
//!
//! Each benchmark makes a fresh database, fills it through the store, starts
//! the real server as a child process (`tutti serve`) and drives it over
//! HTTP from this process, so server and load generator share the machine
//! as they would on a laptop. Figures go to standard output; the results
//! recorded in BENCHMARKS.md came from these commands.
//!
//! - `tutti bench loop`: N concurrent workers doing next → submit on a job
//!   of many items; throughput and latency percentiles, then a check that no
//!   task got more answers than its policy needed.
//! - `tutti bench import`: one CSV upload of many rows; rows per second and
//!   the server's peak memory.
//! - `tutti bench pages`: the results browser and task page at 100,000
//!   tasks and 300,000 answers.
//! - `tutti bench answers|aggregate|comparisons|pairwise`: synthetic crowd
//!   data and fit timings of the aggregation methods (see
//!   `bench/aggregate.sh`, which runs Crowd-Kit and evalica beside them).

use anyhow::Context as _;
use clap::{Args, Subcommand};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tutti_domain::job::{JobConfig, JobSpec};
use tutti_domain::role::Role;
use tutti_store::{ImportMsg, ImportRow, Job, NewUser, Store};

/// Benchmarks.
#[derive(Subcommand)]
pub enum BenchCommand {
    /// Concurrent workers doing next → submit over HTTP.
    Loop(LoopArgs),
    /// A CSV import over HTTP.
    Import(ImportArgs),
    /// Write synthetic crowd answers with a known truth.
    Answers(crate::bench_aggregate::AnswersArgs),
    /// Time one aggregation method's fit on a CSV of answers.
    Aggregate(crate::bench_aggregate::FitArgs),
    /// Write synthetic pairwise comparisons.
    Comparisons(crate::bench_aggregate::ComparisonsArgs),
    /// Time a pairwise method's fit on a CSV of comparisons.
    Pairwise(crate::bench_aggregate::PairwiseFitArgs),
    /// Generate the bulk-labeling data set: a posts table and a pattern file.
    Posts(crate::bench_posts::PostsArgs),
    /// Server time of the results browser and the task page on a large job.
    Pages(crate::bench_pages::PagesArgs),
}

/// Where the benchmark keeps its data.
#[derive(Args, Clone)]
pub struct Target {
    /// Database for the benchmark (default: a fresh SQLite file in the
    /// temporary directory). A PostgreSQL URL must name an empty database.
    #[arg(long)]
    db: Option<String>,
}

/// `tutti bench loop`.
#[derive(Args)]
pub struct LoopArgs {
    #[command(flatten)]
    target: Target,
    /// Concurrent simulated workers.
    #[arg(long, default_value_t = 32)]
    workers: usize,
    /// Items in the job.
    #[arg(long, default_value_t = 100_000)]
    items: usize,
    /// Seconds to run (the run also ends when the job is finished).
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Answers that must agree.
    #[arg(long, default_value_t = 2)]
    k: u32,
    /// Most answers per task.
    #[arg(long, default_value_t = 3)]
    n: u32,
    /// Share of answers that disagree with the majority (0-1).
    #[arg(long, default_value_t = 0.1)]
    disagree: f64,
    /// Adaptive redundancy instead of k-of-n: this confidence, between
    /// k and n answers a task (each next answer sent where it tells most).
    #[arg(long)]
    adaptive: Option<f64>,
}

/// `tutti bench import`.
#[derive(Args)]
pub struct ImportArgs {
    #[command(flatten)]
    target: Target,
    /// Rows in the CSV.
    #[arg(long, default_value_t = 1_000_000)]
    rows: usize,
}

/// Runs a benchmark.
pub async fn run(cmd: BenchCommand, _default_db: &str) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Loop(args) => bench_loop(args).await,
        BenchCommand::Answers(args) => crate::bench_aggregate::answers(&args),
        BenchCommand::Aggregate(args) => crate::bench_aggregate::fit(&args),
        BenchCommand::Comparisons(args) => crate::bench_aggregate::comparisons(&args),
        BenchCommand::Pairwise(args) => crate::bench_aggregate::pairwise(&args),
        BenchCommand::Import(args) => bench_import(args).await,
        BenchCommand::Posts(args) => crate::bench_posts::posts(&args),
        BenchCommand::Pages(args) => crate::bench_pages::pages(args).await,
    }
}

pub(crate) fn fresh_db(target: &Target) -> String {
    target.db.clone().unwrap_or_else(|| {
        let path = std::env::temp_dir().join(format!(
            "tutti-bench-{}-{}.db",
            std::process::id(),
            tutti_store::now().0
        ));
        format!("sqlite://{}", path.display())
    })
}

/// Waits until a SQLite store's text index has caught up with its tasks
/// (PostgreSQL indexes rows as they are imported).
async fn wait_for_text_index(db: &str) -> anyhow::Result<()> {
    let Some(path) = db.strip_prefix("sqlite://") else {
        return Ok(());
    };
    let path = path.split('?').next().unwrap_or(path).to_owned();
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let conn = rusqlite::Connection::open_with_flags(
            &path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )?;
        let started = Instant::now();
        loop {
            let (through, last): (i64, i64) = conn.query_row(
                "SELECT (SELECT through_id FROM task_text_progress), \
                 (SELECT COALESCE(MAX(id), 0) FROM tasks)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            if through >= last {
                return Ok(());
            }
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(600),
                "the text index did not catch up with the import"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .await?
}

/// A `tutti serve` child process on a free port.
pub(crate) struct Server {
    child: std::process::Child,
    pub(crate) base: String,
}

impl Server {
    pub(crate) async fn start(db: &str) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = std::process::Command::new(std::env::current_exe()?)
            .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
            .env("TUTTI_DATABASE_URL", db)
            .env(
                "TUTTI_LOG",
                std::env::var("TUTTI_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::null())
            .spawn()
            .context("starting tutti serve")?;
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        let started = Instant::now();
        loop {
            if let Ok(r) = client.get(format!("{base}/healthz")).send().await
                && r.status().is_success()
            {
                break;
            }
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(30),
                "the server did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Self { child, base })
    }

    /// Peak resident memory of the server so far, in KiB (Linux).
    fn peak_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) async fn setup(
    store: &dyn Store,
    workers: usize,
    k: u32,
    n: u32,
    adaptive: Option<f64>,
) -> anyhow::Result<(Job, String, Vec<String>)> {
    let now = tutti_store::now();
    let requester = store
        .create_user(
            &NewUser {
                name: "bench-requester".into(),
                display_name: "Bench".into(),
                role: Role::Requester,
            },
            now,
        )
        .await?;
    let ws = store.create_workspace("Bench", requester.id, now).await?;
    let mut policy = serde_json::json!({"k": k, "n": n, "time_limit_secs": 600});
    if let Some(confidence) = adaptive {
        policy["adaptive"] = serde_json::json!({"confidence": confidence, "min": k, "max": n});
    }
    let spec: JobSpec = serde_json::from_value(serde_json::json!({
        "name": "Bench", "question": "Is ${name} a person?", "answers": ["Yes", "No"],
        "policy": policy
    }))?;
    let job = store
        .create_job(ws.id, &JobConfig::parse(spec)?, requester.id, now)
        .await?;
    let requester_token = crate::issue(store, &requester, "bench").await?;
    let mut tokens = Vec::with_capacity(workers);
    for i in 0..workers {
        let u = store
            .create_user(
                &NewUser {
                    name: format!("bench-worker-{i}"),
                    display_name: String::new(),
                    role: Role::Worker,
                },
                now,
            )
            .await?;
        store.set_member(ws.id, u.id, Role::Worker).await?;
        tokens.push(crate::issue(store, &u, "bench").await?);
    }
    Ok((job, requester_token, tokens))
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[i]) / 1000.0
}

pub(crate) fn describe(name: &str, mut micros: Vec<u32>) {
    micros.sort_unstable();
    println!(
        "  {name:<7} n={:<8} p50={:>7.2} ms  p95={:>7.2} ms  p99={:>7.2} ms  max={:>7.2} ms",
        micros.len(),
        percentile(&micros, 0.50),
        percentile(&micros, 0.95),
        percentile(&micros, 0.99),
        percentile(&micros, 1.0),
    );
}

#[derive(Default)]
struct WorkerStats {
    next: Vec<u32>,
    submit: Vec<u32>,
    cycles: u64,
    waits: u64,
    errors: u64,
}

async fn bench_loop(args: LoopArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.disagree),
        "--disagree must be in 0..1"
    );
    let db = fresh_db(&args.target);
    let store = tutti_store::connect(&db).await?;
    let (job, requester, tokens) =
        setup(store.as_ref(), args.workers, args.k, args.n, args.adaptive).await?;
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    let items = args.items;
    tokio::spawn(async move {
        for start in (0..items).step_by(10_000) {
            let batch = (start..(start + 10_000).min(items))
                .map(|i| {
                    ImportRow::plain(serde_json::json!({"name": format!("item {i}")}).to_string())
                })
                .collect();
            if tx.send(ImportMsg::Rows(batch)).await.is_err() {
                return;
            }
        }
        let _ = tx.send(ImportMsg::Done).await;
    });
    store.import_tasks(&job, rx).await?;
    // The loop is timed in steady state: a store indexes imported rows for
    // text search behind the import, and a server that just imported
    // 100,000 rows would be doing so too.
    wait_for_text_index(&db).await?;
    let server = Server::start(&db).await?;
    println!(
        "bench loop: {} workers, {} items, k={} n={}{}, {} s, database {}",
        args.workers,
        args.items,
        args.k,
        args.n,
        args.adaptive
            .map(|c| format!(", adaptive to confidence {c}"))
            .unwrap_or_default(),
        args.seconds,
        tutti_store::redact_url(&db)
    );
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.workers)
        .build()?;
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    let mut handles = Vec::new();
    for (w, token) in tokens.into_iter().enumerate() {
        let client = client.clone();
        let base = server.base.clone();
        let job = job.id;
        let disagree = args.disagree;
        handles.push(tokio::spawn(async move {
            let mut s = WorkerStats::default();
            let auth = format!("Bearer {token}");
            while Instant::now() < deadline {
                let t = Instant::now();
                let r = client
                    .post(format!("{base}/api/v1/jobs/{job}/next"))
                    .header("authorization", &auth)
                    .send()
                    .await;
                let Ok(r) = r else {
                    s.errors += 1;
                    continue;
                };
                let status = r.status().as_u16();
                let body = r.bytes().await.unwrap_or_default();
                s.next.push(t.elapsed().as_micros() as u32);
                match status {
                    200 => {}
                    204 => {
                        s.waits += 1;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                    410 => break,
                    _ => {
                        s.errors += 1;
                        continue;
                    }
                }
                let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                let id = v["assignment"]["id"].as_i64().unwrap_or(0);
                let seq = v["assignment"]["_id"].as_i64().unwrap_or(0);
                // A fixed pseudo-random draw per (task, worker) decides disagreement.
                let h = (seq as u64 ^ ((w as u64) << 32)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                let draw = (h >> 11) as f64 / (1u64 << 53) as f64;
                let answer = if draw < disagree { "No" } else { "Yes" };
                let t = Instant::now();
                let r = client
                    .post(format!("{base}/api/v1/assignments/{id}/submit"))
                    .header("authorization", &auth)
                    .json(&serde_json::json!({"answer": answer}))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        s.submit.push(t.elapsed().as_micros() as u32);
                        s.cycles += 1;
                    }
                    _ => s.errors += 1,
                }
            }
            s
        }));
    }
    let mut all = WorkerStats::default();
    for h in handles {
        let s = h.await?;
        all.next.extend(s.next);
        all.submit.extend(s.submit);
        all.cycles += s.cycles;
        all.waits += s.waits;
        all.errors += s.errors;
    }
    let elapsed = started.elapsed().as_secs_f64();
    // The export of every task's label, streamed, as a requester would.
    let export_started = Instant::now();
    let export = client
        .get(format!(
            "{}/api/v1/jobs/{}/export?format=csv&what=labels",
            server.base, job.id
        ))
        .header("authorization", format!("Bearer {requester}"))
        .send()
        .await?
        .bytes()
        .await?;
    let export_secs = export_started.elapsed().as_secs_f64();
    let peak = server.peak_kib();
    drop(server);
    println!(
        "  export of {} task labels: {:.2} s ({:.1} MiB CSV)",
        export
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            .saturating_sub(1),
        export_secs,
        export.len() as f64 / 1048576.0
    );
    println!(
        "  cycles={} in {:.1} s: {:.0} next+submit cycles/s ({} waits, {} errors)",
        all.cycles,
        elapsed,
        all.cycles as f64 / elapsed,
        all.waits,
        all.errors
    );
    describe("next", all.next);
    describe("submit", all.submit);
    if let Some(kib) = peak {
        println!("  server peak memory: {:.1} MiB", kib as f64 / 1024.0);
    }
    let over = check_leases(store.as_ref(), &job).await?;
    println!("  tasks over-leased (more answers than the policy needed): {over}");
    anyhow::ensure!(over == 0, "{over} tasks got more answers than needed");
    anyhow::ensure!(all.errors == 0, "{} requests failed", all.errors);
    Ok(())
}

/// Counts tasks that got an answer beyond need: more than n answers, or
/// more than k agreeing ones (under adaptive redundancy, whose agreeing
/// answers may go past k, more than its maximum).
async fn check_leases(store: &dyn Store, job: &Job) -> anyhow::Result<u64> {
    let (k, n) = match job.config.policy.adaptive {
        Some(a) => (a.max, a.max),
        None => (job.config.policy.workers.k, job.config.policy.workers.n),
    };
    let mut after = 0;
    let mut over = 0;
    loop {
        let page = store.results_page(job.id, after, 5000).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for r in &page {
            let leader = r.votes.leader().map_or(0, |(_, c)| c);
            if r.votes.total() > n || leader > k {
                over += 1;
            }
        }
    }
    Ok(over)
}

async fn bench_import(args: ImportArgs) -> anyhow::Result<()> {
    let db = fresh_db(&args.target);
    let store = tutti_store::connect(&db).await?;
    let (job, requester, _) = setup(store.as_ref(), 0, 2, 3, None).await?;
    let mut csv = String::with_capacity(args.rows * 80);
    csv.push_str("id,name,text,created\n");
    for i in 0..args.rows {
        use std::fmt::Write as _;
        let _ = writeln!(
            csv,
            "{i},author {},\"post number {i}, about item {}\",2024-01-{:02}",
            i % 9973,
            i % 101,
            i % 28 + 1
        );
    }
    let bytes = csv.len();
    let server = Server::start(&db).await?;
    let client = reqwest::Client::new();
    let started = Instant::now();
    let r = client
        .post(format!("{}/api/v1/jobs/{}/items", server.base, job.id))
        .header("authorization", format!("Bearer {requester}"))
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await?;
    let status = r.status();
    let body = r.text().await?;
    let elapsed = started.elapsed().as_secs_f64();
    anyhow::ensure!(status.as_u16() == 201, "import failed: {status} {body}");
    let peak = server.peak_kib();
    drop(server);
    println!(
        "bench import: {} rows ({:.1} MiB CSV) in {:.2} s: {:.0} rows/s; database {}",
        args.rows,
        bytes as f64 / 1048576.0,
        elapsed,
        args.rows as f64 / elapsed,
        tutti_store::redact_url(&db)
    );
    if let Some(kib) = peak {
        println!("  server peak memory: {:.1} MiB", kib as f64 / 1024.0);
    }
    let progress = store.job_progress(job.id).await?;
    anyhow::ensure!(
        progress.tasks as usize == args.rows,
        "stored {} tasks, expected {}",
        progress.tasks,
        args.rows
    );
    let _: Arc<dyn Store> = store;
    Ok(())
}
