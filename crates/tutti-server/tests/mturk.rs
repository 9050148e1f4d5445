//! `3a_amt` steps answered through the Mechanical Turk connector, against
//! the local server that speaks Mechanical Turk's requester protocol
//! (signatures checked): on SQLite always, and on PostgreSQL too when
//! `TUTTI_TEST_POSTGRES_URL` is set.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;
use tutti_engine::mturk::client::{Client, MturkError, NewHit};
use tutti_engine::mturk::connector::Connector;
use tutti_engine::mturk::sigv4::Credentials;
use tutti_server::Settings;
use tutti_server::mturk_local::LocalTurk;

const KEY: &str = "AKIDTUTTITEST";
const SECRET: &str = "test/secret+key";

fn creds() -> Credentials {
    Credentials {
        access_key_id: KEY.into(),
        secret_access_key: SECRET.into(),
    }
}

/// The local Mechanical Turk on port 0; its base URL.
async fn spawn_turk() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = LocalTurk::new(creds()).router();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    base
}

fn mturk_settings(turk: &str) -> tutti_engine::mturk::Settings {
    let mut m = tutti_engine::mturk::Settings::new(turk, KEY, SECRET, "0.05").unwrap();
    m.poll = Duration::from_millis(100);
    m
}

/// One Tutti server per backend, each with its own local Mechanical Turk
/// and a connector pointed at it that passes every `poll`.
async fn apps_with_turk(poll: Duration) -> Vec<(TestApp, String)> {
    let mut out = Vec::new();
    for url in tutti_store::testing::fresh_urls().await.unwrap() {
        let turk = spawn_turk().await;
        let mut m = mturk_settings(&turk);
        m.poll = poll;
        let settings = Settings {
            monitor_interval: None,
            runs_dir: test_dir("mturk-runs"),
            mturk: Some(m),
            ..Settings::default()
        };
        let store = tutti_store::connect(&url).await.unwrap();
        out.push((spawn_on_settings(store, Some(settings)).await, turk));
    }
    out
}

async fn turk_get(turk: &str, path: &str) -> Value {
    reqwest::get(format!("{turk}{path}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn turk_answer(turk: &str, hit: &str, worker: &str, answer: &str) -> (StatusCode, Value) {
    let r = reqwest::Client::new()
        .post(format!("{turk}/_local/hits/{hit}/answers"))
        .json(&json!({"worker_id": worker, "answer": answer}))
        .send()
        .await
        .unwrap();
    (r.status(), r.json().await.unwrap())
}

/// The local server's HITs once `n` are posted, keyed by the row's name.
async fn hits_by_name(turk: &str, n: usize) -> std::collections::BTreeMap<String, Value> {
    for _ in 0..200 {
        let hits = turk_get(turk, "/_local/hits").await["hits"]
            .as_array()
            .unwrap()
            .clone();
        if hits.len() >= n {
            assert_eq!(hits.len(), n, "one HIT per task: {hits:#?}");
            return hits
                .into_iter()
                .map(|h| {
                    let q = h["Question"].as_str().unwrap();
                    let name = ["Ada", "Paris", "Alan", "Oslo"]
                        .into_iter()
                        .find(|n| q.contains(&format!("<h2>{n}</h2>")))
                        .unwrap_or_else(|| panic!("a HIT of no known row: {q}"));
                    (name.to_owned(), h)
                })
                .collect();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the connector never posted {n} HITs");
}

async fn hit_now(turk: &str, id: &str) -> Value {
    turk_get(turk, "/_local/hits").await["hits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["HITId"] == id)
        .unwrap()
        .clone()
}

/// Waits until `cond` holds of the HIT.
async fn wait_hit(turk: &str, id: &str, what: &str, cond: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..200 {
        let h = hit_now(turk, id).await;
        if cond(&h) {
            return h;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the HIT {id} never {what}: {:#}", hit_now(turk, id).await);
}

async fn wait_run(app: &TestApp, run: i64, token: &str, want: &str) -> Value {
    for _ in 0..400 {
        let (s, r) = app.get(&format!("/api/v1/runs/{run}"), token).await;
        assert_eq!(s, StatusCode::OK, "{r}");
        if r["status"] == want {
            return r;
        }
        assert_ne!(r["status"], "failed", "{r:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("run {run} never reached {want}");
}

const PEOPLE: &str = "name,kind\nAda,person\nParis,city\nAlan,person\nOslo,city\n";
const PROGRAM: &str = "T = read_table(\"people.csv\");\n\
    (B, C) = 3a_amt(T, \"instructions.html\", \"layout.html\", k=2, n=3,\n\
                    question=\"Is ${name} a person?\", answers=[\"Yes\",\"No\"]);\n\
    write_table(C, file=\"labels.csv\");";

/// Starts [`PROGRAM`] over `people` (a CSV); the run's id.
async fn start_run(app: &TestApp, ws: i64, token: &str, people: &str) -> i64 {
    let files = json!({
        "people.csv": people,
        "instructions.html": "<short-instructions>Say <b>Yes</b> for people.</short-instructions>",
        "layout.html": "<design-layout><h2>${name}</h2></design-layout>",
    });
    let (s, run) = app
        .post(
            &format!("/api/v1/workspaces/{ws}/runs"),
            token,
            json!({"program": PROGRAM, "files": files}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{run}");
    run["id"].as_i64().unwrap()
}

#[tokio::test]
async fn an_amt_step_posts_hits_counts_crowd_answers_by_k_of_n_and_pays_for_them() {
    for (app, turk) in apps_with_turk(Duration::from_millis(100)).await {
        let (ws, req, workers) = app.team("amt", 1).await;
        let run = start_run(&app, ws, &req, PEOPLE).await;

        // One HIT per row, asking first for k = 2 answers, with the job's
        // instructions and the row in its page.
        let hits = hits_by_name(&turk, 4).await;
        for h in hits.values() {
            assert_eq!(h["MaxAssignments"], 2, "{h}");
            assert_eq!(h["Reward"], "0.05");
            assert_eq!(h["HITStatus"], "Assignable");
            let q = h["Question"].as_str().unwrap();
            assert!(q.contains("Say <b>Yes</b> for people."), "{q}");
            assert!(q.contains("name=\"answer\" value=\"Yes\""), "{q}");
        }
        let id = |name: &str| hits[name]["HITId"].as_str().unwrap().to_owned();

        // In-house workers are not offered the job.
        let (_, r) = app.get(&format!("/api/v1/runs/{run}"), &req).await;
        let job = r["nodes"][1]["job_id"]
            .as_i64()
            .expect("the step made a job");
        let (s, body) = app.next(job, &workers[0]).await;
        assert_eq!(s, StatusCode::CONFLICT, "{body}");
        assert_eq!(error_code(&body), "outside_crowd");

        // Two agreeing answers decide Ada, Paris and Alan.
        for (name, answer) in [("Ada", "Yes"), ("Paris", "No"), ("Alan", "Yes")] {
            for w in ["W1", "W2"] {
                let (s, r) = turk_answer(&turk, &id(name), w, answer).await;
                assert_eq!(s, StatusCode::OK, "{r}");
            }
        }
        // Oslo: a disagreement, and an answer outside the options.
        // The answer outside the options is rejected, so the HIT asks for
        // another; Yes against No is still undecided, so it asks for one
        // more (a third counted answer, n = 3), which decides No.
        for (worker, answer, then_asks_for) in [
            ("W1", "Yes", None),
            ("W2", "Perhaps", Some(3)),
            ("W3", "No", Some(4)),
            ("W4", "No", None),
        ] {
            let (s, r) = turk_answer(&turk, &id("Oslo"), worker, answer).await;
            assert_eq!(s, StatusCode::OK, "{r}");
            if let Some(max) = then_asks_for {
                wait_hit(&turk, &id("Oslo"), "asked for one more answer", |h| {
                    h["MaxAssignments"] == max
                })
                .await;
            }
        }

        let r = wait_run(&app, run, &req, "completed").await;
        assert_eq!(r["nodes"][1]["status"], "completed", "{r:#}");
        let (_, c) = app.get(&format!("/api/v1/runs/{run}/tables/C"), &req).await;
        let labels: Vec<(i64, String)> = c["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["_id"].as_i64().unwrap(),
                    r["label"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert_eq!(
            labels,
            vec![
                (1, "Yes".into()),
                (2, "No".into()),
                (3, "Yes".into()),
                (4, "No".into())
            ]
        );
        // Per-worker answers: 2 + 2 + 2 + 3 counted, the rejected one not.
        let (_, b) = app
            .get(&format!("/api/v1/runs/{run}/tables/B?limit=100"), &req)
            .await;
        assert_eq!(b["total"], 9, "{b}");
        assert!(
            !b["rows"].to_string().contains("Perhaps"),
            "a rejected answer was counted: {b}"
        );

        // Every counted answer was approved, the bad one rejected with a
        // reason, and every HIT taken off the list.
        for name in ["Ada", "Paris", "Alan", "Oslo"] {
            let h = wait_hit(&turk, &id(name), "was taken down", |h| {
                h["HITStatus"] == "Reviewable"
            })
            .await;
            assert_eq!(h["NumberOfAssignmentsAvailable"], 0, "{h}");
        }
        let client = Client::new(&turk, "us-east-1", creds()).unwrap();
        let oslo = client.assignments(&id("Oslo")).await.unwrap();
        let status: Vec<(&str, &str)> = oslo
            .iter()
            .map(|a| (a.worker_id.as_str(), a.assignment_status.as_str()))
            .collect();
        assert_eq!(
            status,
            vec![
                ("W1", "Approved"),
                ("W2", "Rejected"),
                ("W3", "Approved"),
                ("W4", "Approved")
            ]
        );
        for name in ["Ada", "Paris", "Alan"] {
            let all = client.assignments(&id(name)).await.unwrap();
            assert!(
                all.iter().all(|a| a.assignment_status == "Approved"),
                "{all:?}"
            );
        }
        // Exactly one CreateHIT per task, whatever the number of passes.
        let calls = turk_get(&turk, "/_local/calls").await;
        let creates = calls["calls"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| *c == "CreateHIT")
            .count();
        assert_eq!(creates, 4, "{calls}");
        // The crowd's workers show in the job's quality report by name.
        let (s, q) = app.get(&format!("/api/v1/jobs/{job}/workers"), &req).await;
        assert_eq!(s, StatusCode::OK, "{q}");
        assert!(q.to_string().contains("mturk:W3"), "{q}");
    }
}

#[tokio::test]
async fn a_connector_that_stopped_after_asking_for_a_hit_finds_that_hit_instead_of_paying_twice() {
    // The server's own connector passes once at start, then not for an
    // hour: the test drives the passes.
    for (app, turk) in apps_with_turk(Duration::from_secs(3600)).await {
        let (ws, req, _) = app.team("amt-crash", 0).await;
        let run = start_run(&app, ws, &req, "name,kind\nAda,person\n").await;
        let mut job = None;
        for _ in 0..200 {
            let (_, r) = app.get(&format!("/api/v1/runs/{run}"), &req).await;
            if let Some(j) = r["nodes"][1]["job_id"].as_i64() {
                job = Some(tutti_domain::ids::JobId(j));
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let job = job.expect("the step made a job");
        let connector = Connector::new(app.store.clone(), mturk_settings(&turk)).unwrap();
        assert_eq!(connector.sync().await.unwrap().posted, 1);
        let hits = hits_by_name(&turk, 1).await;
        let posted = hits["Ada"]["HITId"].as_str().unwrap().to_owned();

        // As if the connector had stopped right after CreateHIT: the token
        // is stored, the HIT's id is not.
        let mut hit = app.store.crowd_tasks(job).await.unwrap()[0]
            .hit
            .clone()
            .unwrap();
        assert_eq!(hit.hit_id.as_deref(), Some(posted.as_str()));
        hit.hit_id = None;
        app.store.put_crowd_hit(job, &hit).await.unwrap();

        connector.sync().await.unwrap();
        let again = app.store.crowd_tasks(job).await.unwrap()[0]
            .hit
            .clone()
            .unwrap();
        assert_eq!(again.hit_id.as_deref(), Some(posted.as_str()));
        assert_eq!(
            turk_get(&turk, "/_local/hits").await["hits"]
                .as_array()
                .unwrap()
                .len(),
            1,
            "a second HIT was paid for"
        );

        // An answer entered twice (a pass that stopped before approving
        // repeats it) counts once.
        turk_answer(&turk, &posted, "W1", "Yes").await;
        let first = connector.sync().await.unwrap();
        let second = connector.sync().await.unwrap();
        assert_eq!((first.answers, first.approved), (1, 1), "{first:?}");
        assert_eq!((second.answers, second.approved), (0, 0), "{second:?}");
        let answers = app.store.task_answers(job, 1, 1).await.unwrap();
        assert_eq!(answers.len(), 1, "{answers:?}");
    }
}

#[tokio::test]
async fn the_local_server_refuses_a_wrong_signature_an_unknown_key_and_a_bad_request() {
    let turk = spawn_turk().await;
    let good = Client::new(&turk, "us-east-1", creds()).unwrap();
    assert_eq!(good.balance().await.unwrap(), "10000.00");

    let wrong_secret = Client::new(
        &turk,
        "us-east-1",
        Credentials {
            access_key_id: KEY.into(),
            secret_access_key: "not the secret".into(),
        },
    )
    .unwrap();
    match wrong_secret.balance().await {
        Err(MturkError::Service { kind, status, .. }) => {
            assert_eq!((kind.as_str(), status), ("InvalidSignatureException", 400));
        }
        other => panic!("a wrong secret was not refused: {other:?}"),
    }
    let unknown = Client::new(
        &turk,
        "us-east-1",
        Credentials {
            access_key_id: "AKIDSOMEONEELSE".into(),
            secret_access_key: SECRET.into(),
        },
    )
    .unwrap();
    match unknown.balance().await {
        Err(MturkError::Service { kind, .. }) => assert_eq!(kind, "UnrecognizedClientException"),
        other => panic!("an unknown key was not refused: {other:?}"),
    }
    let bad = NewHit {
        title: "t".into(),
        description: "d".into(),
        keywords: String::new(),
        reward: "free".into(),
        max_assignments: 1,
        lifetime_secs: 60,
        assignment_secs: 60,
        auto_approval_secs: 60,
        question: "<HTMLQuestion/>".into(),
        annotation: String::new(),
        token: "x".into(),
        qualifications: Vec::new(),
    };
    match good.create_hit(&bad).await {
        Err(MturkError::Service { kind, message, .. }) => {
            assert_eq!(kind, "RequestError");
            assert!(message.contains("Reward"), "{message}");
        }
        other => panic!("a bad reward was accepted: {other:?}"),
    }
    // The same token twice: the first HIT comes back, no second is made.
    let ok = NewHit {
        reward: "0.10".into(),
        ..bad
    };
    let first = good.create_hit(&ok).await.unwrap();
    let second = good.create_hit(&ok).await.unwrap();
    assert_eq!(first, second);
    assert_eq!(
        turk_get(&turk, "/_local/hits").await["hits"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn boto3_drives_the_local_server_as_it_would_mechanical_turk() {
    let probe = std::process::Command::new("python3")
        .args(["-c", "import boto3"])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!("skipped: python3 with boto3 is not installed (pip install boto3)");
        return;
    }
    let turk = spawn_turk().await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mturk_boto3.py");
    let turk_for_py = turk.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .arg(script)
            .arg(&turk_for_py)
            .env("AWS_ACCESS_KEY_ID", KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET)
            .output()
            .unwrap()
    });
    // The script answers the HIT through the worker side while it waits.
    let hit = loop {
        let hits = turk_get(&turk, "/_local/hits").await;
        if let Some(h) = hits["hits"].as_array().unwrap().first() {
            break h["HITId"].as_str().unwrap().to_owned();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        turk_answer(&turk, &hit, "WPY", "Yes").await.0,
        StatusCode::OK
    );
    let out = out.await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "boto3 script failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("ok"), "{stdout}");
}
