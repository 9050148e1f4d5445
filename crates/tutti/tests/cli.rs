//! The `tutti` binary end to end: the demo, user and token commands, the
//! monitor alone, and the durability promise (an answer the API accepted
//! survives `kill -9` of the server).

mod common;

use common::*;

use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Serving {
    child: Child,
    base: String,
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn wait_ready(base: &str) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        if let Ok(r) = reqwest::get(format!("{base}/healthz")).await
            && r.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("server at {base} never became ready");
}

async fn serve(db: &str, port: u16) -> Serving {
    let child = tutti(db)
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&base).await;
    Serving { child, base }
}

async fn databases() -> Vec<String> {
    tutti_store::testing::fresh_urls().await.unwrap()
}

/// A workspace of the requester with `workers` as members and a job of
/// `items` rows under k-of-n; returns the job id.
async fn job_with_items(
    base: &str,
    requester: &str,
    workers: &[String],
    (k, n): (u32, u32),
    items: usize,
) -> i64 {
    let (_, ws) = call(
        "POST",
        &format!("{base}/api/v1/workspaces"),
        requester,
        Some(json!({"name": "W"})),
    )
    .await;
    let ws = ws["id"].as_i64().unwrap();
    for token in workers {
        let (_, me) = call("GET", &format!("{base}/api/v1/users/me"), token, None).await;
        let id = me["id"].as_i64().unwrap();
        let (s, _) = call(
            "PUT",
            &format!("{base}/api/v1/workspaces/{ws}/members/{id}"),
            requester,
            Some(json!({"role": "worker"})),
        )
        .await;
        assert_eq!(s, 200);
    }
    let (_, job) = call(
        "POST",
        &format!("{base}/api/v1/workspaces/{ws}/jobs"),
        requester,
        Some(json!({"name": "J", "question": "${n}?", "answers": ["A", "B"], "policy": {"k": k, "n": n}})),
    )
    .await;
    let job = job["id"].as_i64().unwrap();
    let csv: String = std::iter::once("n".to_owned())
        .chain((0..items).map(|i| i.to_string()))
        .collect::<Vec<_>>()
        .join("\n");
    let r = reqwest::Client::new()
        .post(format!("{base}/api/v1/jobs/{job}/items"))
        .bearer_auth(requester)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    job
}

#[tokio::test]
async fn an_answer_the_api_accepted_survives_kill_dash_nine() {
    for db in databases().await {
        let requester = create_user(&db, "boss", "requester");
        let worker = create_user(&db, "hand", "worker");
        let port = free_port();
        let mut server = serve(&db, port).await;
        let base = server.base.clone();
        let job =
            job_with_items(&base, &requester, std::slice::from_ref(&worker), (1, 1), 50).await;
        let mut accepted = 0;
        for _ in 0..20 {
            let (s, a) = call(
                "POST",
                &format!("{base}/api/v1/jobs/{job}/next"),
                &worker,
                None,
            )
            .await;
            assert_eq!(s, 200);
            let id = a["assignment"]["id"].as_i64().unwrap();
            let (s, _) = call(
                "POST",
                &format!("{base}/api/v1/assignments/{id}/submit"),
                &worker,
                Some(json!({"answer": "A"})),
            )
            .await;
            assert_eq!(s, 200);
            accepted += 1;
        }
        // SIGKILL: no shutdown, no flush.
        server.child.kill().unwrap();
        server.child.wait().unwrap();
        let server = serve(&db, free_port()).await;
        let (s, j) = call(
            "GET",
            &format!("{}/api/v1/jobs/{job}", server.base),
            &requester,
            None,
        )
        .await;
        assert_eq!(s, 200);
        assert_eq!(j["progress"]["answers"], accepted, "{db}");
        assert_eq!(j["progress"]["labeled"], accepted);
        let out = tutti(&db).args(["monitor", "--once"]).output().unwrap();
        assert!(out.status.success());
        assert!(String::from_utf8_lossy(&out.stdout).contains("reopened"));
        // The command line re-aggregates the job and reports its worker.
        let job_arg = job.to_string();
        let out = tutti(&db)
            .args(["job", "aggregate", &job_arg, "--method", "mv"])
            .output()
            .unwrap();
        let summary: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
        assert_eq!(summary["method"], "mv");
        assert_eq!(summary["labeled"], accepted, "{summary}");
        assert_eq!(summary["changed"], 0, "{summary}");
        let out = tutti(&db)
            .args(["job", "workers", &job_arg])
            .output()
            .unwrap();
        let csv = String::from_utf8(out.stdout).unwrap();
        let row = csv.lines().nth(1).unwrap_or_default();
        assert!(row.contains(",hand,20,0,"), "{csv}");
        let out = tutti(&db)
            .args(["job", "aggregate", &job_arg, "--method", "best"])
            .output()
            .unwrap();
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("unknown method"));
    }
}

#[tokio::test]
async fn the_demo_serves_a_ready_job_and_prints_working_tokens() {
    let db = tutti_store::testing::fresh_sqlite_url();
    let port = free_port();
    let mut child = tutti(&db)
        .args([
            "demo",
            "--bind",
            &format!("127.0.0.1:{port}"),
            "--items",
            "250",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let lines: Vec<String> = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .take_while(|l| !l.starts_with("Stop with"))
            .collect()
    })
    .await
    .unwrap();
    let token = |who: &str| {
        lines
            .iter()
            .find_map(|l| l.trim().strip_prefix(who).map(|t| t.trim().to_owned()))
            .unwrap_or_else(|| panic!("no {who} token in {lines:?}"))
    };
    let base = format!("http://127.0.0.1:{port}");
    let (s, j) = call(
        "GET",
        &format!("{base}/api/v1/jobs/1"),
        &token("requester"),
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(j["progress"]["tasks"], 250);
    let (s, a) = call(
        "POST",
        &format!("{base}/api/v1/jobs/1/next"),
        &token("worker-1"),
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert!(a["question"].as_str().unwrap().starts_with("Is "));
    let (s, me) = call(
        "GET",
        &format!("{base}/api/v1/users/me"),
        &token("admin"),
        None,
    )
    .await;
    assert_eq!((s, me["role"].as_str()), (200, Some("admin")));
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_database_url_of_unknown_kind_is_refused() {
    let out = tutti("mysql://x@y/z")
        .args(["monitor", "--once"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unsupported database URL"));
}

#[tokio::test]
async fn two_serve_processes_on_one_postgres_database_never_over_lease_a_task() {
    let Some(db) = tutti_store::testing::fresh_postgres_url().await.unwrap() else {
        eprintln!("skipped: set TUTTI_TEST_POSTGRES_URL to run the two-process test");
        return;
    };
    let requester = create_user(&db, "boss", "requester");
    let workers: Vec<String> = (0..8)
        .map(|i| create_user(&db, &format!("w{i}"), "worker"))
        .collect();
    let a = serve(&db, free_port()).await;
    let b = serve(&db, free_port()).await;
    let job = job_with_items(&a.base, &requester, &workers, (2, 3), 40).await;
    let mut handles = Vec::new();
    for (w, token) in workers.into_iter().enumerate() {
        let base = if w % 2 == 0 {
            a.base.clone()
        } else {
            b.base.clone()
        };
        handles.push(tokio::spawn(async move {
            for _ in 0..2000 {
                let (s, v) = call(
                    "POST",
                    &format!("{base}/api/v1/jobs/{job}/next"),
                    &token,
                    None,
                )
                .await;
                match s {
                    200 => {
                        let id = v["assignment"]["id"].as_i64().unwrap();
                        let answer =
                            if (v["assignment"]["_id"].as_i64().unwrap() + w as i64) % 3 == 0 {
                                "B"
                            } else {
                                "A"
                            };
                        let (s, _) = call(
                            "POST",
                            &format!("{base}/api/v1/assignments/{id}/submit"),
                            &token,
                            Some(json!({"answer": answer})),
                        )
                        .await;
                        assert_eq!(s, 200);
                    }
                    204 => tokio::time::sleep(Duration::from_millis(5)).await,
                    410 => return,
                    other => panic!("{other}: {v}"),
                }
            }
            panic!("worker never finished");
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let (_, r) = call(
        "GET",
        &format!("{}/api/v1/jobs/{job}/results?limit=100", b.base),
        &requester,
        None,
    )
    .await;
    let items = r["items"].as_array().unwrap();
    assert_eq!(items.len(), 40);
    for item in items {
        let votes: Vec<i64> = item["votes"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_i64().unwrap())
            .collect();
        assert!(
            votes.iter().sum::<i64>() <= 3 && votes.iter().all(|v| *v <= 2),
            "task {} over-leased: {}",
            item["_id"],
            item["votes"]
        );
    }
}

/// Runs `tutti aggregate ARGS FILE` on `csv` written to a temporary file.
fn aggregate(name: &str, args: &[&str], csv: &str) -> std::process::Output {
    let dir = std::env::temp_dir().join(format!("tutti-agg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, csv).unwrap();
    Command::new(env!("CARGO_BIN_EXE_tutti"))
        .arg("aggregate")
        .args(args)
        .arg(&path)
        .output()
        .unwrap()
}

/// Standard output of a run that must succeed.
fn succeeded(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Standard error of a run that must fail.
fn failed(out: std::process::Output) -> String {
    assert!(!out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn aggregate_writes_one_label_per_question() {
    let answers = "question,worker,answer\nq1,a,yes\nq1,b,yes\nq1,c,no\nq2,a,no\nq2,b,no\n";
    for method in ["mv", "kofn", "ds", "onecoin", "glad", "wawa", "zbs", "mace"] {
        let text = succeeded(aggregate("answers.csv", &["--method", method], answers));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "question,label,confidence");
        assert!(lines[1].starts_with("q1,yes,"), "{method}: {text}");
        assert!(lines[2].starts_with("q2,no,"), "{method}: {text}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_tutti"))
        .arg("aggregate")
        .arg(std::env::temp_dir().join("tutti-no-such-answers.csv"))
        .output()
        .unwrap();
    failed(out);
}

#[test]
fn aggregate_refuses_unknown_methods_answers_outside_the_classes_and_wmv_without_weights() {
    let answers = "question,worker,answer\nq1,a,yes\nq1,b,yes\nq2,a,no\nq2,b,maybe\n";
    let err = failed(aggregate("m.csv", &["--method", "em"], answers));
    assert!(
        err.contains("unknown method") && err.contains("glad"),
        "{err}"
    );
    let err = failed(aggregate("c.csv", &["--classes", "yes,no"], answers));
    assert!(err.contains("line 5") && err.contains("maybe"), "{err}");
    let err = failed(aggregate("w.csv", &["--method", "wmv"], answers));
    assert!(err.contains("--weights"), "{err}");
    // k-of-n leaves a question without k agreeing answers undecided.
    let text = succeeded(aggregate(
        "k.csv",
        &["--method", "kofn", "--k", "2"],
        answers,
    ));
    assert!(
        text.contains("q1,yes,1.000000") && text.contains("q2,,\n"),
        "{text}"
    );
}

/// The items of an `item,score` output, best first.
fn ranked(text: &str) -> Vec<&str> {
    text.lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect()
}

#[test]
fn aggregate_pairwise_writes_scores_best_first() {
    let pairs = "left,right,winner\na,b,left\na,b,left\nb,c,left\nc,a,tie\nb,a,left\n";
    for method in ["bt", "noisy-bt"] {
        let text = succeeded(aggregate("pairs.csv", &["--pairwise", method], pairs));
        assert_eq!(ranked(&text), ["a", "b", "c"], "{method}");
    }
    let err = failed(aggregate(
        "bad-pairs.csv",
        &["--pairwise", "bt"],
        "left,right,winner\na,b,maybe\n",
    ));
    assert!(err.contains("line 2"));
}

#[test]
fn aggregate_pairwise_counts_a_grade_as_its_share_of_a_win() {
    // By side alone a and b each win once; by grade, a wins by far more.
    let pairs = "left,right,winner,grade\na,b,left,-9\na,b,right,1\nb,c,left,\n";
    let text = succeeded(aggregate("graded.csv", &["--pairwise", "bt"], pairs));
    assert_eq!(ranked(&text), ["a", "b", "c"], "{text}");
    let flipped = "left,right,grade\na,b,9\na,b,-1\n";
    let text = succeeded(aggregate("flipped.csv", &["--pairwise", "bt"], flipped));
    assert!(text.lines().nth(1).unwrap().starts_with("b,"), "{text}");
    for (bad, why) in [
        ("left,right,grade\na,b,11\n", "from -10 to 10"),
        ("left,right,grade\na,b,2.5\n", "whole number"),
        ("left,right,grade\na,b,lots\n", "not a number"),
        ("left,right,grade\na,b,\n", "neither a grade nor a winner"),
    ] {
        let err = failed(aggregate("bad-grade.csv", &["--pairwise", "bt"], bad));
        assert!(
            err.contains(why) && err.contains("line 2"),
            "{bad:?}: {err}"
        );
    }
    // A wider scale takes wider grades.
    let wide = "left,right,grade\na,b,-50\n";
    succeeded(aggregate(
        "wide.csv",
        &["--pairwise", "bt", "--scale", "50"],
        wide,
    ));
    let err = failed(aggregate(
        "zero.csv",
        &["--pairwise", "bt", "--scale", "0"],
        wide,
    ));
    assert!(err.contains("scale"), "{err}");
}

#[test]
fn aggregate_reports_agreement_beyond_chance_on_standard_error() {
    let out = aggregate(
        "agreement.csv",
        &["--method", "mv"],
        "question,worker,answer\nq1,a,yes\nq1,b,yes\nq1,c,no\nq2,a,no\nq2,b,no\n",
    );
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    succeeded(out);
    // Observed agreement 2/3, chance 0.52: kappa 0.3056. Disagreeing pairs
    // 0.4 of all, 0.6 expected: alpha 1/3.
    assert!(
        err.contains("Fleiss' kappa 0.3056, Krippendorff's alpha 0.3333"),
        "{err}"
    );
}

#[test]
fn answers_padded_with_spaces_are_the_same_answers() {
    let text = succeeded(aggregate(
        "padded.csv",
        &["--method", "mv"],
        "question,worker,answer\nq1,a,yes\nq1 , b, yes \nq1,c,no\n",
    ));
    assert_eq!(text, "question,label,confidence\nq1,yes,0.666667\n");
}

#[test]
fn aggregate_numeric_answers_by_mean_alone_or_by_a_named_method() {
    let numbers = "question,worker,answer\nq1,a,1\nq1,b,2\nq1,c,30\n";
    let text = succeeded(aggregate("numbers.csv", &["--numeric=median"], numbers));
    assert_eq!(text, "question,value\nq1,2\n");
    // `--numeric` alone, before the file: the mean.
    let text = succeeded(aggregate("numbers.csv", &["--numeric"], numbers));
    assert_eq!(text, "question,value\nq1,11\n");
    let err = failed(aggregate("numbers.csv", &["--numeric=mode"], numbers));
    assert!(err.contains("mode"), "{err}");
    let err = failed(aggregate(
        "words.csv",
        &["--numeric=catd"],
        "question,worker,answer\nq1,a,lots\n",
    ));
    assert!(err.contains("not a number"));
    let err = failed(aggregate(
        "nan.csv",
        &["--numeric"],
        "question,worker,answer\nq1,a,1\nq1,b,NaN\n",
    ));
    assert!(
        err.contains("line 3") && err.contains("not a finite number"),
        "{err}"
    );
}

#[test]
fn replay_prints_a_table_of_answers_used_and_accuracy() {
    let dir = std::env::temp_dir().join(format!("tutti-replay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut answers = String::from("question,worker,answer\n");
    let mut truth = String::from("question,truth\n");
    for q in 0..20 {
        let t = if q % 2 == 0 { "yes" } else { "no" };
        truth.push_str(&format!("q{q},{t}\n"));
        for w in 0..5 {
            let wrong = (q + w) % 7 == 0;
            let given = if wrong {
                if t == "yes" { "no" } else { "yes" }
            } else {
                t
            };
            answers.push_str(&format!("q{q},w{w},{given}\n"));
        }
    }
    std::fs::write(dir.join("answers.csv"), answers).unwrap();
    std::fs::write(dir.join("truth.csv"), truth).unwrap();
    let replay = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_tutti"))
            .arg("replay")
            .args(args)
            .arg("--truth")
            .arg(dir.join("truth.csv"))
            .arg(dir.join("answers.csv"))
            .output()
            .unwrap()
    };
    let out = replay(&["--confidence", "0.9,0.99"]);
    let text = succeeded(out);
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(rows.len(), 8, "{text}");
    assert!(
        rows[2].starts_with("| majority vote, all answers | 100 | 100.0% | 1.0000"),
        "{text}"
    );
    assert!(rows[4].contains("confidence 0.9,"), "{text}");
    assert!(
        rows[5].starts_with("| fixed overlap: first 3 answers"),
        "{text}"
    );
    let out = replay(&["--reopen", "--confidence", "0.99"]);
    let text = succeeded(out);
    assert!(
        text.lines()
            .nth(4)
            .is_some_and(|r| r.starts_with("| adaptive, reopening: min 2, max 5, confidence 0.99,")),
        "{text}"
    );
    // The rule as a live job runs it.
    let text = succeeded(replay(&["--live", "--confidence", "0.99"]));
    assert!(
        text.lines().nth(4).is_some_and(
            |r| r.starts_with("| adaptive, weighed when given: min 2, max 5, confidence 0.99,")
        ),
        "{text}"
    );
    // Other orders of the same answers: a second table of means and spreads.
    let out = replay(&["--confidence", "0.99", "--orders", "5"]);
    let text = succeeded(out);
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(rows.len(), 14, "{text}");
    assert_eq!(
        rows[7],
        "Over 5 random orders of each item's answers (seeds 1 to 5):"
    );
    // Four of five answers per item: 80 answers whatever the order.
    assert!(
        rows[11]
            .starts_with("| ds, all answers but one random answer of each item | 80 | 80.0% | "),
        "{text}"
    );
    assert!(
        rows[12].starts_with("| adaptive: min 2, max 5, confidence 0.99,"),
        "{text}"
    );
    assert!(rows[13].starts_with("| fixed overlap: "), "{text}");
    let cells: Vec<f64> = rows[12]
        .split('|')
        .filter_map(|c| c.trim().trim_end_matches('%').parse().ok())
        .collect();
    // used, share, mean accuracy, sd, share of orders reaching all answers
    assert_eq!(cells.len(), 5, "{text}");
    assert!(cells[0] >= 40.0 && cells[0] <= 100.0, "{text}");
    assert!((0.0..=1.0).contains(&cells[2]) && cells[3] >= 0.0, "{text}");
    assert!((0.0..=100.0).contains(&cells[4]), "{text}");
    let out = replay(&["--confidence", "1.5"]);
    assert!(failed(out).contains("--confidence"));
    let out = replay(&["--orders", "100000"]);
    assert!(failed(out).contains("--orders"));
}

#[test]
fn workflow_check_lists_the_steps_or_names_the_line_of_the_first_error() {
    let dir = std::env::temp_dir().join(format!("tutti-wf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("persons.cy");
    std::fs::write(
        &good,
        "T = read_table(\"people.csv\");\n\
         (B, C) = 3a_kn(T, \"i.html\", \"l.html\", k=2, n=3, question=\"Is ${name} a person?\", answers=[\"Yes\", \"No\"]);\n\
         write_table(C, file=\"labels.csv\");\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tutti"))
        .args(["workflow", "check"])
        .arg(&good)
        .output()
        .unwrap();
    let text = succeeded(out);
    assert!(text.contains("B, C = human_label(T)"), "{text}");
    assert!(
        text.contains("files it needs: people.csv, i.html, l.html"),
        "{text}"
    );
    let bad = dir.join("bad.cy");
    std::fs::write(
        &bad,
        "T = read_table(\"people.csv\");\nU = sample_random(T, n=many);\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tutti"))
        .args(["workflow", "check"])
        .arg(&bad)
        .output()
        .unwrap();
    let err = failed(out);
    assert!(
        err.contains("line 2, column 24") && err.contains("whole number"),
        "{err}"
    );
    let spec = dir.join("spec.json");
    std::fs::write(&spec, "{\"nodes\": [{\"op\": \"read_table\", \"file\": \"a.csv\", \"outputs\": [\"T\"]}, {\"op\": \"write_table\", \"inputs\": [\"X\"], \"file\": \"o.csv\"}]}").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tutti"))
        .args(["workflow", "check"])
        .arg(&spec)
        .output()
        .unwrap();
    let err = failed(out);
    assert!(
        err.contains("nodes[1].inputs[0]") && err.contains("X is not defined"),
        "{err}"
    );
}
