//! Durable runs: a workflow run whose server is killed with `kill -9` at
//! random moments, and started again each time, finishes with exactly the
//! tables and files of a run that was never interrupted: no lost rows, no
//! duplicates. On SQLite always, and on PostgreSQL too when
//! `TUTTI_TEST_POSTGRES_URL` is set. Also `tutti run` from the terminal.

mod common;

use common::*;

use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn temp_dir(what: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!(
        "tutti-{what}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&p).unwrap();
    p
}

struct Server {
    child: Child,
}

impl Server {
    fn kill_dash_nine(mut self) {
        // `Child::kill` is SIGKILL on Unix: no shutdown code runs.
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start(db: &str, runs: &Path, port: u16) -> Server {
    let server = Server {
        child: tutti(db)
            .args([
                "serve",
                "--bind",
                &format!("127.0.0.1:{port}"),
                // The example model service listens on this machine.
                "--allow-private-urls",
                "--runs-dir",
            ])
            .arg(runs)
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    };
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        if let Ok(r) = reqwest::get(format!("{base}/healthz")).await
            && r.status().is_success()
        {
            return server;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("server never became ready");
}

const PROGRAM: &str = r#"T = read_table("big.csv");
S = sample_random(T, n=40000, seed=9);
U = exec_sql(S, query="SELECT _id, a, b, a * 2 + b AS c FROM S WHERE a % 3 <> 0");
G = exec_sql(U, query="SELECT a % 40 AS _id, count(*) AS n, sum(c) AS s FROM U GROUP BY a % 40 ORDER BY 1");
H = sample_random(G, n=8, seed=1);
(ANS, LAB) = 3a_kn(H, "i.html", "l.html", k=1, n=1, question="Is ${_id} even?", answers=["even", "odd"]);
J = exec_sql(G, LAB, query="SELECT G._id, G.n, G.s, LAB.label FROM G LEFT JOIN LAB ON G._id = LAB._id ORDER BY G._id");
write_table(U, file="u.csv");
write_table(J, file="j.csv");
write_table(ANS, file="answers.csv");
"#;

fn big_csv() -> String {
    let mut s = String::from("a,b,word\n");
    for i in 0..120_000u64 {
        s.push_str(&format!(
            "{},{},w{}\n",
            (i * 7919) % 100_003,
            i % 97,
            i % 13
        ));
    }
    s
}

struct Setup {
    db: String,
    runs: PathBuf,
    port: u16,
    requester: String,
    worker: String,
    ws: i64,
}

async fn setup(db: String) -> Setup {
    let requester = create_user(&db, "req", "requester");
    let worker = create_user(&db, "wkr", "worker");
    let runs = temp_dir("runs");
    let port = free_port();
    let server = start(&db, &runs, port).await;
    let base = format!("http://127.0.0.1:{port}");
    let (_, ws) = call(
        "POST",
        &format!("{base}/api/v1/workspaces"),
        &requester,
        Some(json!({"name": "W"})),
    )
    .await;
    let ws = ws["id"].as_i64().unwrap();
    let (_, me) = call("GET", &format!("{base}/api/v1/users/me"), &worker, None).await;
    let (s, _) = call(
        "PUT",
        &format!("{base}/api/v1/workspaces/{ws}/members/{}", me["id"]),
        &requester,
        Some(json!({"role": "worker"})),
    )
    .await;
    assert_eq!(s, 200);
    drop(server);
    Setup {
        db,
        runs,
        port,
        requester,
        worker,
        ws,
    }
}

impl Setup {
    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn create_run(&self) -> i64 {
        let (s, r) = call(
            "POST",
            &format!("{}/api/v1/workspaces/{}/runs", self.base(), self.ws),
            &self.requester,
            Some(json!({"program": PROGRAM, "files": {"big.csv": big_csv(), "i.html": "Say if it is even.", "l.html": "${_id}"}})),
        )
        .await;
        assert_eq!(s, 201, "{r}");
        r["id"].as_i64().unwrap()
    }

    /// Answers up to `most` tasks of the run's human step, the same answer
    /// for the same row every time.
    async fn answer(&self, run: i64, most: usize) -> usize {
        let (_, view) = call(
            "GET",
            &format!("{}/api/v1/runs/{run}", self.base()),
            &self.requester,
            None,
        )
        .await;
        let Some(job) = view["nodes"][5]["job_id"].as_i64() else {
            return 0;
        };
        let mut done = 0;
        while done < most {
            let (s, t) = call(
                "POST",
                &format!("{}/api/v1/jobs/{job}/next", self.base()),
                &self.worker,
                None,
            )
            .await;
            if s != 200 {
                break;
            }
            let g = t["assignment"]["data"]["_id"].as_i64().unwrap();
            let id = t["assignment"]["id"].as_i64().unwrap();
            let answer = if g % 2 == 0 { "even" } else { "odd" };
            let (s, r) = call(
                "POST",
                &format!("{}/api/v1/assignments/{id}/submit", self.base()),
                &self.worker,
                Some(json!({"answer": answer})),
            )
            .await;
            assert_eq!(s, 200, "{r}");
            done += 1;
        }
        done
    }

    async fn status(&self, run: i64) -> Value {
        let (s, v) = call(
            "GET",
            &format!("{}/api/v1/runs/{run}", self.base()),
            &self.requester,
            None,
        )
        .await;
        assert_eq!(s, 200, "{v}");
        v
    }

    /// Every table (all rows) and file of a finished run.
    async fn contents(&self, run: i64) -> (Vec<(String, Vec<Value>)>, Vec<(String, String)>) {
        let view = self.status(run).await;
        let mut tables = Vec::new();
        for t in view["tables"].as_array().unwrap() {
            let name = t["name"].as_str().unwrap().to_owned();
            let mut rows = Vec::new();
            loop {
                let (s, page) = call(
                    "GET",
                    &format!(
                        "{}/api/v1/runs/{run}/tables/{name}?limit=1000&offset={}",
                        self.base(),
                        rows.len()
                    ),
                    &self.requester,
                    None,
                )
                .await;
                assert_eq!(s, 200);
                let got = page["rows"].as_array().unwrap().clone();
                if got.is_empty() {
                    break;
                }
                rows.extend(got);
            }
            assert_eq!(rows.len() as i64, t["rows"].as_i64().unwrap(), "{name}");
            tables.push((name, rows));
        }
        let mut files = Vec::new();
        for f in view["outputs"].as_array().unwrap() {
            let name = f["name"].as_str().unwrap().to_owned();
            let body = reqwest::Client::new()
                .get(format!("{}/api/v1/runs/{run}/outputs/{name}", self.base()))
                .bearer_auth(&self.requester)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            files.push((name, body));
        }
        (tables, files)
    }

    /// Serves until the run completes, answering its human step.
    async fn finish(&self, run: i64) -> Server {
        let server = start(&self.db, &self.runs, self.port).await;
        let started = Instant::now();
        loop {
            self.answer(run, usize::MAX).await;
            let v = self.status(run).await;
            match v["status"].as_str().unwrap() {
                "completed" => return server,
                "failed" | "cancelled" => panic!("{v:#}"),
                _ => {}
            }
            assert!(started.elapsed() < Duration::from_secs(120), "{v:#}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test]
async fn a_run_killed_at_random_moments_ends_with_exactly_the_outputs_of_an_uninterrupted_one() {
    let mut rng = StdRng::seed_from_u64(
        std::env::var("TUTTI_KILL_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(20261123),
    );
    let urls = tutti_store::testing::fresh_urls().await.unwrap();
    let again = tutti_store::testing::fresh_urls().await.unwrap();
    for (reference_db, killed_db) in urls.into_iter().zip(again) {
        // The reference: never interrupted.
        let reference = setup(reference_db).await;
        let server = start(&reference.db, &reference.runs, reference.port).await;
        let run = reference.create_run().await;
        drop(server);
        let server = reference.finish(run).await;
        let want = reference.contents(run).await;
        drop(server);
        assert_eq!(want.1.len(), 3);
        assert!(
            want.0
                .iter()
                .any(|(n, rows)| n == "U" && rows.len() > 20_000)
        );

        // The same run, killed with -9 again and again.
        let killed = setup(killed_db).await;
        let server = start(&killed.db, &killed.runs, killed.port).await;
        let run = killed.create_run().await;
        let mut server = Some(server);
        let mut kills = 0;
        let mut seen = std::collections::BTreeSet::new();
        while kills < 10 {
            let wait = rng.random_range(5..1200);
            tokio::time::sleep(Duration::from_millis(wait)).await;
            // Between kills, a person answers a task or two.
            killed.answer(run, 1).await;
            let v = killed.status(run).await;
            seen.insert(
                v["nodes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|n| n["status"] == "completed")
                    .count(),
            );
            server.take().unwrap().kill_dash_nine();
            kills += 1;
            server = Some(start(&killed.db, &killed.runs, killed.port).await);
        }
        drop(server);
        let server = killed.finish(run).await;
        let got = killed.contents(run).await;
        drop(server);
        eprintln!("completed steps at each kill: {seen:?}");
        assert!(seen.len() > 1, "kills landed at different steps: {seen:?}");
        assert_eq!(
            got.0
                .iter()
                .map(|(n, r)| (n.as_str(), r.len()))
                .collect::<Vec<_>>(),
            want.0
                .iter()
                .map(|(n, r)| (n.as_str(), r.len()))
                .collect::<Vec<_>>()
        );
        assert!(got.0 == want.0, "every table, row for row, is the same");
        assert!(got.1 == want.1, "every file, byte for byte, is the same");
    }
}

#[test]
fn tutti_run_simulates_workers_writes_the_files_and_reports_precision() {
    let dir = temp_dir("cli-run");
    let example =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/entity-matching/match.cy");
    let out = dir.join("out");
    let r = Command::new(env!("CARGO_BIN_EXE_tutti"))
        .env_remove("TUTTI_DATABASE_URL")
        .env("TUTTI_LOG", "warn")
        .arg("run")
        .arg(&example)
        .args(["--simulate", "4", "--accuracy", "1", "--seed", "3", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&r.stdout);
    assert!(
        r.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&r.stderr)
    );
    assert!(out.join("tutti.db").exists(), "the store is in --out");
    let matches = std::fs::read_to_string(out.join("matches.csv")).unwrap();
    // Perfect workers find exactly the true matches: store_b rows with an
    // a_match.
    let truth = std::fs::read_to_string(example.with_file_name("store_b.csv")).unwrap();
    let true_matches = truth.lines().skip(1).filter(|l| !l.ends_with(',')).count();
    assert_eq!(matches.lines().count() - 1, true_matches, "{matches}");
    assert!(
        stdout.contains("worker,answers,with_gold,correct,precision"),
        "{stdout}"
    );
    for line in stdout.lines().filter(|l| l.starts_with("sim-")) {
        assert!(line.ends_with(",1.0000"), "{line}");
    }
    // Started again, a finished run is not resumed: a new one runs.
    let again = Command::new(env!("CARGO_BIN_EXE_tutti"))
        .env_remove("TUTTI_DATABASE_URL")
        .env("TUTTI_LOG", "warn")
        .arg("run")
        .arg(&example)
        .args(["--simulate", "2", "--accuracy", "1", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(again.status.success());
    assert!(!String::from_utf8_lossy(&again.stderr).contains("resuming"));
}

#[test]
fn tutti_run_names_the_line_of_a_bad_program_and_a_missing_file() {
    let dir = temp_dir("cli-bad");
    std::fs::write(
        dir.join("bad.cy"),
        "T = read_table(\"x.csv\");\nU = exec_sql(T query=\"SELECT 1\");\n",
    )
    .unwrap();
    let r = tutti("sqlite://unused.db")
        .env_remove("TUTTI_DATABASE_URL")
        .arg("run")
        .arg(dir.join("bad.cy"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success());
    assert!(err.contains("line 2"), "{err}");
    std::fs::write(dir.join("ok.cy"), "T = read_table(\"missing.csv\");\n").unwrap();
    let r = tutti("sqlite://unused.db")
        .env_remove("TUTTI_DATABASE_URL")
        .arg("run")
        .arg(dir.join("ok.cy"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success());
    assert!(err.contains("missing.csv"), "{err}");
}

/// The example model service (Python), on a free port; `None` when there is
/// no python3 here.
struct ModelService {
    child: Child,
    url: String,
}

impl Drop for ModelService {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ModelService {
    async fn start(delay_ms: u32) -> Option<Self> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../examples/model-pipeline/model_service.py");
        let port = free_port();
        let child = Command::new("python3")
            .arg(script)
            .args([
                "--port",
                &port.to_string(),
                "--delay-ms",
                &delay_ms.to_string(),
            ])
            .stdout(Stdio::null())
            .spawn()
            .ok()?;
        let service = ModelService {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        for _ in 0..200 {
            if reqwest::get(format!("{}/calls", service.url)).await.is_ok() {
                return Some(service);
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the model service never answered");
    }

    async fn calls(&self) -> (u64, u64) {
        let v = self.stats().await;
        (
            v["worked"].as_u64().unwrap(),
            v["repeated"].as_u64().unwrap(),
        )
    }

    async fn stats(&self) -> Value {
        reqwest::get(format!("{}/calls", self.url))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn the_yaml_example_pipeline_calls_the_model_once_per_batch_and_asks_people_the_rest() {
    let Some(model) = ModelService::start(0).await else {
        eprintln!("skipped: python3 is not installed");
        return;
    };
    let dir = temp_dir("cli-yaml");
    let example =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/model-pipeline/pipeline.yaml");
    let out = dir.join("out");
    let r = Command::new(env!("CARGO_BIN_EXE_tutti"))
        .env_remove("TUTTI_DATABASE_URL")
        .env("TUTTI_LOG", "warn")
        .arg("run")
        .arg(&example)
        .arg("--param")
        .arg(format!("model_url={}", model.url))
        .arg("--allow-private-urls")
        .args(["--simulate", "3", "--accuracy", "1", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let labels = std::fs::read_to_string(out.join("labels.csv")).unwrap();
    let reviews = std::fs::read_to_string(example.with_file_name("reviews.csv")).unwrap();
    let gold: Vec<String> = reviews
        .lines()
        .skip(1)
        .map(|l| l.rsplit(',').next().unwrap().to_owned())
        .collect();
    let rows: Vec<&str> = labels.lines().skip(1).collect();
    assert_eq!(rows.len(), gold.len(), "every review has one label");
    let mut by_people = 0;
    for (row, want) in rows.iter().zip(&gold) {
        let fields: Vec<&str> = row.rsplitn(3, ',').collect();
        let (decided_by, sentiment) = (fields[0], fields[1]);
        if decided_by == "people" {
            by_people += 1;
            assert_eq!(
                sentiment, want,
                "perfect workers agree with the truth: {row}"
            );
        }
    }
    assert!(
        by_people > 0 && by_people < rows.len(),
        "people checked only the unsure: {by_people}"
    );
    // 120 rows in batches of 50: three batches, each worked once.
    assert_eq!(model.calls().await, (3, 0));
}

const MODEL_SPEC: &str = r#"{"nodes": [
  {"op": "read_table", "file": "reviews.csv", "outputs": ["T"]},
  {"op": "model_call", "inputs": ["T"], "outputs": ["M"], "url": "${model_url}/predict",
   "columns": ["_id", "text"], "fields": ["sentiment", "confidence"], "batch_size": 20},
  {"op": "write_table", "inputs": ["M"], "file": "scored.csv"}
]}"#;

fn reviews(n: usize) -> String {
    let words = [
        "great", "bad", "slow", "love", "broken", "fine", "fast", "awful",
    ];
    let mut s = String::from("text\n");
    for i in 0..n {
        s.push_str(&format!(
            "{} and {} {i}\n",
            words[i % 8],
            words[(i / 8) % 8]
        ));
    }
    s
}

#[tokio::test]
async fn a_model_step_killed_at_random_moments_never_calls_an_acknowledged_batch_again() {
    let Some(model) = ModelService::start(15).await else {
        eprintln!("skipped: python3 is not installed");
        return;
    };
    let mut rng = StdRng::seed_from_u64(7);
    let batches = 60u64;
    for db in tutti_store::testing::fresh_urls().await.unwrap() {
        let before = model.calls().await;
        let s = setup(db).await;
        let server = start(&s.db, &s.runs, s.port).await;
        let (status, r) = call(
            "POST",
            &format!("{}/api/v1/workspaces/{}/runs", s.base(), s.ws),
            &s.requester,
            Some(
                json!({"format": "json", "program": MODEL_SPEC, "params": {"model_url": model.url},
                        "files": {"reviews.csv": reviews(batches as usize * 20)}}),
            ),
        )
        .await;
        assert_eq!(status, 201, "{r}");
        let run = r["id"].as_i64().unwrap();
        let mut server = Some(server);
        let mut kills = 0u64;
        // At each kill: how many calls the service had received, and which
        // batches the dead server had committed (its run file, read while
        // no process has it open).
        let mut acknowledged: Vec<(usize, Vec<i64>)> = Vec::new();
        while kills < 6 {
            tokio::time::sleep(Duration::from_millis(rng.random_range(50..400))).await;
            server.take().unwrap().kill_dash_nine();
            kills += 1;
            let received = model.stats().await["log"].as_array().unwrap().len();
            acknowledged.push((received, committed_batches(&s.runs, run).await));
            server = Some(start(&s.db, &s.runs, s.port).await);
        }
        drop(server);
        let server = s.finish(run).await;
        let (tables, files) = s.contents(run).await;
        drop(server);
        let after = model.calls().await;
        let (worked, repeated) = (after.0 - before.0, after.1 - before.1);
        assert_eq!(worked, batches, "every batch worked exactly once");
        // The promise itself: no batch committed before a kill was sent
        // again after it.
        let log: Vec<String> = model.stats().await["log"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap().to_owned())
            .collect();
        for (received, batches) in &acknowledged {
            for key in &log[*received..] {
                if !key.starts_with(&format!("run-{run}-")) {
                    continue;
                }
                let b: i64 = key.rsplit('-').next().unwrap().parse().unwrap();
                assert!(
                    !batches.contains(&b),
                    "batch {b} was committed before a kill and sent again after it"
                );
            }
        }
        assert!(
            acknowledged.iter().any(|(_, b)| !b.is_empty()),
            "some kills came after committed batches"
        );
        assert!(
            repeated <= kills + 2,
            "only a batch in flight at a kill is sent again: {repeated} repeats, {kills} kills"
        );
        let m = tables.iter().find(|(n, _)| n == "M").unwrap();
        assert_eq!(m.1.len() as u64, batches * 20, "no row lost or doubled");
        let ids: Vec<i64> = m.1.iter().map(|r| r["_id"].as_i64().unwrap()).collect();
        assert!(
            ids.windows(2).all(|w| w[1] == w[0] + 1),
            "rows in order, once each"
        );
        assert_eq!(files[0].1.lines().count() as u64, batches * 20 + 1);
        eprintln!("model step: {worked} batches worked, {repeated} sent again after {kills} kills");
    }
}

/// The batches of the model step (step 1) a run's file holds as committed.
async fn committed_batches(runs: &Path, run: i64) -> Vec<i64> {
    use sqlx::Connection as _;
    let path = runs.join(format!("run-{run}.sqlite"));
    if !path.exists() {
        return Vec::new();
    }
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let has: Option<i64> =
        sqlx::query_scalar("SELECT 1 FROM sqlite_master WHERE name = '_tutti_batches'")
            .fetch_optional(&mut conn)
            .await
            .unwrap();
    let out = if has.is_some() {
        sqlx::query_scalar("SELECT batch FROM _tutti_batches WHERE node = 1 ORDER BY batch")
            .fetch_all(&mut conn)
            .await
            .unwrap()
    } else {
        Vec::new()
    };
    conn.close().await.unwrap();
    out
}
