//! Workflow runs through the API, against the real server on port 0 and
//! its background runner: on SQLite always, and on PostgreSQL too when
//! `TUTTI_TEST_POSTGRES_URL` is set.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

const PEOPLE: &str = "name,kind\nAda Lovelace,person\nParis,city\nAlan Turing,person\nOslo,city\nGrace Hopper,person\nNile,river\n";

const INSTRUCTIONS: &str = "<short-instructions>Say Yes for people.</short-instructions>\
    <long-instructions><p>A person is a human being.</p></long-instructions>";

const LAYOUT: &str = "<design-layout><h2>${name}</h2></design-layout>";

const PROGRAM: &str = r#"/* Persons: ask in-house workers, keep the yeses. */
T = read_table("people.csv");
S = sample_random(T, n=5, seed=3);
(B, C) = 3a_kn(S, "instructions.html", "layout.html", k=2, n=3,
               question="Is ${name} a person?", answers=["Yes","No"], annotation_time_limit=3600);
D = exec_sql(S, C, query="SELECT S.* FROM S JOIN C ON S._id = C._id WHERE C.label = 'Yes' ORDER BY S._id");
write_table(D, file="persons.csv");
"#;

fn files() -> Value {
    json!({"people.csv": PEOPLE, "instructions.html": INSTRUCTIONS, "layout.html": LAYOUT})
}

async fn start(app: &TestApp, ws: i64, token: &str, body: Value) -> i64 {
    let (s, r) = app
        .post(&format!("/api/v1/workspaces/{ws}/runs"), token, body)
        .await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    assert_eq!(r["status"], "queued");
    r["id"].as_i64().unwrap()
}

/// Polls a run until its status is one of `want`.
async fn wait_for(app: &TestApp, run: i64, token: &str, want: &[&str]) -> Value {
    for _ in 0..400 {
        let (s, r) = app.get(&format!("/api/v1/runs/{run}"), token).await;
        assert_eq!(s, StatusCode::OK, "{r}");
        if want.contains(&r["status"].as_str().unwrap_or("")) {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, r) = app.get(&format!("/api/v1/runs/{run}"), token).await;
    panic!("run {run} never reached {want:?}: {r:#}");
}

/// Workers answer every task of a job until it is finished: Yes for a
/// person, No otherwise.
async fn answer_all(app: &TestApp, job: i64, workers: &[String]) {
    loop {
        let mut any = false;
        for w in workers {
            let (s, a) = app.next(job, w).await;
            if s != StatusCode::OK || a["assignment"].is_null() {
                continue;
            }
            any = true;
            let a = &a["assignment"];
            let yes = a["data"]["kind"] == "person";
            let id = a["id"].as_i64().unwrap();
            let (s, r) = app.submit(id, w, if yes { "Yes" } else { "No" }).await;
            assert_eq!(s, StatusCode::OK, "{r}");
        }
        if !any {
            return;
        }
    }
}

#[tokio::test]
async fn a_cymphony_program_runs_through_people_to_its_output_file() {
    for app in apps().await {
        let (ws, req, workers) = app.team("cy", 3).await;
        let run = start(
            &app,
            ws,
            &req,
            json!({"name": "persons", "program": PROGRAM, "files": files()}),
        )
        .await;
        let r = wait_for(&app, run, &req, &["waiting"]).await;
        let nodes = r["nodes"].as_array().unwrap();
        let statuses: Vec<&str> = nodes
            .iter()
            .map(|n| n["status"].as_str().unwrap())
            .collect();
        assert_eq!(
            statuses,
            ["completed", "completed", "waiting", "idle", "idle"],
            "{r:#}"
        );
        assert_eq!(
            (nodes[1]["rows_in"].as_i64(), nodes[1]["rows_out"].as_i64()),
            (Some(6), Some(5))
        );
        let job = nodes[2]["job_id"]
            .as_i64()
            .expect("the human step has a job");
        // The job carries the instructions and layout from the files.
        let (s, j) = app.get(&format!("/api/v1/jobs/{job}"), &req).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(j["short_instructions"], "Say Yes for people.");
        assert_eq!(j["layout"], "<h2>${name}</h2>");
        assert_eq!(j["progress"]["tasks"], 5);
        answer_all(&app, job, &workers).await;
        let r = wait_for(&app, run, &req, &["completed"]).await;
        assert!(r["finished_at"].is_string(), "{r:#}");
        assert_eq!(r["tables"].as_array().unwrap().len(), 5, "T, S, B, C and D");
        let (_, light) = app
            .get(&format!("/api/v1/runs/{run}?tables=false"), &req)
            .await;
        assert_eq!(
            (
                light["tables"].clone(),
                light["nodes"].as_array().unwrap().len()
            ),
            (json!([]), 5)
        );
        // The sample, by the same seed, is what the engine's sample draws.
        let (s, sample) = app
            .get(&format!("/api/v1/runs/{run}/tables/S?limit=10"), &req)
            .await;
        assert_eq!(s, StatusCode::OK, "{sample}");
        assert_eq!(sample["total"], 5);
        let persons_in_sample: Vec<Value> = sample["rows"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["kind"] == "person")
            .map(|r| json!([r["_id"], r["name"], r["kind"]]))
            .collect();
        // Per-worker answers and labels, Cymphony's two outputs.
        let (_, b) = app
            .get(&format!("/api/v1/runs/{run}/tables/B?limit=100"), &req)
            .await;
        assert_eq!(b["columns"], json!(["_id", "worker_id", "annotation"]));
        assert!(
            b["total"].as_i64().unwrap() >= 10,
            "k=2 needs at least two answers per row: {b}"
        );
        let (_, c) = app.get(&format!("/api/v1/runs/{run}/tables/C"), &req).await;
        assert_eq!(c["columns"], json!(["_id", "label"]));
        assert_eq!(c["total"], 5);
        let (s, csv) = app
            .text(&format!("/api/v1/runs/{run}/outputs/persons.csv"), &req)
            .await;
        assert_eq!(s, StatusCode::OK);
        let mut want = String::from("_id,name,kind\n");
        for r in &persons_in_sample {
            want.push_str(&format!(
                "{},{},{}\n",
                r[0],
                r[1].as_str().unwrap(),
                r[2].as_str().unwrap()
            ));
        }
        assert_eq!(csv, want);
        assert!(!persons_in_sample.is_empty());
        let (_, list) = app
            .get(&format!("/api/v1/workspaces/{ws}/runs"), &req)
            .await;
        assert_eq!(list["items"][0]["id"], run);
        // Workers answer; they do not read runs (their tables hold the
        // answers, gold and outside data).
        let (s, _) = app.get(&format!("/api/v1/runs/{run}"), &workers[0]).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, _) = app
            .get(&format!("/api/v1/runs/{run}/tables/C"), &workers[0])
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, _) = app
            .get(&format!("/api/v1/workspaces/{ws}/runs"), &workers[0])
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        // Outsiders see nothing.
        let (_, other, _) = app.team("cy-other", 0).await;
        let (s, _) = app.get(&format!("/api/v1/runs/{run}"), &other).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn bad_programs_are_refused_before_any_run_starts_with_where_and_why() {
    for app in apps().await {
        let (ws, req, _) = app.team("bad", 0).await;
        let path = format!("/api/v1/workspaces/{ws}/runs");
        let cases = [
            (
                json!({"program": "T = read_table(\"people.csv\")\nU = ;", "files": files()}),
                "program",
                "line 2",
            ),
            (
                json!({"program": "T = read_table(\"people.csv\");\nU = exec_sql(X, query=\"SELECT 1\");", "files": files()}),
                "program",
                "X is not defined",
            ),
            (
                json!({"program": "T = read_table(\"missing.csv\");"}),
                "files.missing.csv",
                "send it in files",
            ),
            (
                json!({"program": "T = read_table(\"people.csv\");\nU = exec_sql(T, query=\"SELECT * FROM sqlite_master\");", "files": files()}),
                "program",
                "sqlite_master",
            ),
            (
                json!({"program": "T = read_table(\"people.csv\");\nU = exec_sql(T, query=\"DELETE FROM T\");", "files": files()}),
                "program",
                "line 2",
            ),
            (
                json!({"program": "T = frobnicate(\"people.csv\");", "files": files()}),
                "program",
                "unknown operator",
            ),
            (
                json!({"program": "T = read_table(\"people.csv\");", "files": files(), "format": "xml"}),
                "format",
                "json or yaml",
            ),
            (
                json!({"program": "T = read_table(\"people.csv\");", "files": files(), "webhook": {"url": "ftp://x", "secret": "0123456789abcdef"}}),
                "webhook.url",
                "http",
            ),
            (
                json!({"program": "T = read_table(\"people.csv\");", "files": files(), "after_run": 999999}),
                "after_run",
                "not a run",
            ),
        ];
        for (body, field, words) in cases {
            let (s, e) = app.post(&path, &req, body.clone()).await;
            assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {e}");
            assert_eq!(e["error"]["field"], field, "{body}: {e}");
            let message = e["error"]["message"].as_str().unwrap();
            assert!(message.contains(words), "{body}: {message}");
        }
        let (s, e) = app.post(&path, &req, json!({"programme": "x"})).await;
        assert!(s.is_client_error(), "{e}");
        let (_, list) = app.get(&path, &req).await;
        assert_eq!(list["items"], json!([]), "no run was stored");
    }
}

#[tokio::test]
async fn a_failing_step_fails_its_run_with_the_cause_and_leaves_other_runs_alone() {
    for app in apps().await {
        let (ws, req, _) = app.team("fail", 0).await;
        // The query reads U, which is a table of the run but not an input
        // of the step: the sandbox refuses it.
        let sneaky = "T = read_table(\"people.csv\");\nU = exec_sql(T, query=\"SELECT name FROM T\");\n\
                      V = exec_sql(T, query=\"SELECT * FROM U\");\nwrite_table(V, file=\"v.csv\");";
        let bad = start(&app, ws, &req, json!({"program": sneaky, "files": files()})).await;
        let good_program = "T = read_table(\"people.csv\");\nU = exec_sql(T, query=\"SELECT name FROM T WHERE kind = 'city'\");\nwrite_table(U, file=\"cities.csv\");";
        let good = start(
            &app,
            ws,
            &req,
            json!({"program": good_program, "files": files()}),
        )
        .await;
        let r = wait_for(&app, bad, &req, &["failed"]).await;
        let step = &r["nodes"][2];
        assert_eq!(step["status"], "failed");
        let error = step["error"].as_str().unwrap();
        assert!(
            error.contains("reads U, which is not an input of this step"),
            "{error}"
        );
        assert!(
            r["error"].as_str().unwrap().starts_with("step 3 (sql)"),
            "{r}"
        );
        assert_eq!(
            r["nodes"][1]["status"], "completed",
            "what was done is kept"
        );
        let g = wait_for(&app, good, &req, &["completed"]).await;
        assert_eq!(g["outputs"], json!([{"name": "cities.csv", "bytes": 16}]));
        // A retry runs the step again; here it fails again the same way.
        let (s, e) = app
            .post(
                &format!("/api/v1/runs/{bad}/nodes/1/retry"),
                &req,
                json!({}),
            )
            .await;
        assert_eq!((s, error_code(&e)), (StatusCode::CONFLICT, "not_failed"));
        let (s, e) = app
            .post(
                &format!("/api/v1/runs/{bad}/nodes/9/retry"),
                &req,
                json!({}),
            )
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{e}");
        let (s, r) = app
            .post(
                &format!("/api/v1/runs/{bad}/nodes/2/retry"),
                &req,
                json!({}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{r}");
        assert_eq!(r["status"], "running");
        let r = wait_for(&app, bad, &req, &["failed"]).await;
        assert_eq!(r["nodes"][2]["status"], "failed");
    }
}

#[tokio::test]
async fn a_cancelled_run_stops_closes_its_jobs_and_cannot_be_cancelled_twice() {
    for app in apps().await {
        let (ws, req, workers) = app.team("cancel", 1).await;
        let run = start(
            &app,
            ws,
            &req,
            json!({"program": PROGRAM, "files": files()}),
        )
        .await;
        wait_for(&app, run, &req, &["waiting"]).await;
        let (s, r) = app
            .post(&format!("/api/v1/runs/{run}/cancel"), &req, json!({}))
            .await;
        assert_eq!(s, StatusCode::OK, "{r}");
        assert_eq!(r["status"], "cancelled");
        tokio::time::sleep(Duration::from_millis(700)).await;
        let (_, r) = app.get(&format!("/api/v1/runs/{run}"), &req).await;
        assert_eq!(
            r["status"], "cancelled",
            "the runner does not bring it back"
        );
        let (s, e) = app
            .post(&format!("/api/v1/runs/{run}/cancel"), &req, json!({}))
            .await;
        assert_eq!((s, error_code(&e)), (StatusCode::CONFLICT, "run_finished"));
        // The human step's job wants no more answers.
        let job = r["nodes"][2]["job_id"].as_i64().unwrap();
        let (_, j) = app.get(&format!("/api/v1/jobs/{job}"), &req).await;
        assert_eq!(j["progress"]["open"], 0, "{j}");
        let (s, _) = app.next(job, &workers[0]).await;
        assert_eq!(s, StatusCode::GONE);
    }
}

#[tokio::test]
async fn a_human_step_over_no_rows_completes_at_once_and_a_run_can_follow_another() {
    for app in apps().await {
        let (ws, req, _) = app.team("empty", 0).await;
        let program = "T = read_table(\"people.csv\");\nE = exec_sql(T, query=\"SELECT * FROM T WHERE 0\");\n\
            (B, C) = 3a_kn(E, \"instructions.html\", \"layout.html\", k=1, n=1, question=\"?\", answers=[\"a\",\"b\"]);\n\
            write_table(C, file=\"labels.csv\");";
        let first = start(
            &app,
            ws,
            &req,
            json!({"program": program, "files": files()}),
        )
        .await;
        let second = start(
            &app,
            ws,
            &req,
            json!({"program": "T = read_table(\"people.csv\");\nwrite_table(T, file=\"t.csv\");",
                   "files": files(), "after_run": first}),
        )
        .await;
        let r = wait_for(&app, first, &req, &["completed"]).await;
        assert!(r["nodes"][2]["job_id"].is_null(), "no job for no rows");
        let (_, csv) = app
            .text(&format!("/api/v1/runs/{first}/outputs/labels.csv"), &req)
            .await;
        assert_eq!(csv, "_id,label\n");
        let r2 = wait_for(&app, second, &req, &["completed"]).await;
        assert!(
            r2["started_at"].as_str().unwrap() >= r["finished_at"].as_str().unwrap(),
            "{r2} started before {r} finished"
        );
    }
}

#[tokio::test]
async fn a_finished_run_is_announced_with_a_signed_webhook() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    for app in apps().await {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(4);
        let server = tokio::spawn(async move {
            let mut first = true;
            loop {
                let (mut sock, _) = listener.accept().await.unwrap();
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let n = sock.read(&mut chunk).await.unwrap();
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len: usize = text
                            .lines()
                            .find_map(|l| {
                                l.to_lowercase()
                                    .strip_prefix("content-length: ")
                                    .map(|v| v.trim().parse().unwrap())
                            })
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + len {
                            break;
                        }
                    }
                    if n == 0 {
                        break;
                    }
                }
                // The first delivery is refused, to see it retried.
                let status = if first {
                    "503 Service Unavailable"
                } else {
                    "204 No Content"
                };
                first = false;
                sock.write_all(
                    format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                        .as_bytes(),
                )
                .await
                .unwrap();
                tx.send(String::from_utf8_lossy(&buf).to_string())
                    .await
                    .unwrap();
            }
        });
        let (ws, req, _) = app.team("hook", 0).await;
        let secret = "a-secret-of-some-length";
        let run = start(
            &app,
            ws,
            &req,
            json!({"program": "T = read_table(\"people.csv\");", "files": files(),
                   "webhook": {"url": format!("http://{addr}/hook"), "secret": secret}}),
        )
        .await;
        let refused = tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .unwrap()
            .unwrap();
        let delivered = tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(refused.contains("\"attempt\":1"), "{refused}");
        let (head, body) = delivered.split_once("\r\n\r\n").unwrap();
        let sig = head
            .lines()
            .find_map(|l| {
                l.to_lowercase()
                    .strip_prefix("x-tutti-signature: sha256=")
                    .map(str::to_owned)
            })
            .expect("signed");
        assert_eq!(
            sig,
            tutti_engine::hmac::sign(secret.as_bytes(), body.as_bytes())
        );
        let v: Value = serde_json::from_str(body).unwrap();
        assert_eq!(
            (
                v["event"].as_str(),
                v["run"]["id"].as_i64(),
                v["attempt"].as_i64()
            ),
            (Some("run.completed"), Some(run), Some(2))
        );
        for _ in 0..100 {
            let (_, r) = app.get(&format!("/api/v1/runs/{run}"), &req).await;
            if r["webhook_state"] == "delivered" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (_, r) = app.get(&format!("/api/v1/runs/{run}"), &req).await;
        assert_eq!(
            (r["webhook_state"].as_str(), r["webhook_attempts"].as_i64()),
            (Some("delivered"), Some(2))
        );
        assert!(
            r.get("webhook_secret").is_none(),
            "the secret is never shown"
        );
        server.abort();
    }
}

#[tokio::test]
async fn simulated_workers_finish_a_run_and_report_their_precision() {
    for app in apps().await {
        let (ws, req, _) = app.team("sim", 0).await;
        let mut csv = String::from("name,gold_label\n");
        for i in 0..20 {
            csv.push_str(&format!(
                "item {i},{}\n",
                if i % 3 == 0 { "Yes" } else { "No" }
            ));
        }
        let program = "T = read_table(\"items.csv\");\n\
            (B, C) = 3a_kn(T, \"instructions.html\", \"layout.html\", k=2, n=3, question=\"${name}?\", answers=[\"Yes\",\"No\"]);\n\
            R = exec_sql(T, C, query=\"SELECT count(*) AS right FROM T JOIN C ON T._id = C._id WHERE T.gold_label = C.label\");\n\
            write_table(R, file=\"right.csv\");";
        let run = start(
            &app,
            ws,
            &req,
            json!({"program": program, "files": {"items.csv": csv, "instructions.html": INSTRUCTIONS, "layout.html": LAYOUT}}),
        )
        .await;
        let path = format!("/api/v1/runs/{run}/simulation");
        let (s, e) = app
            .post(&path, &req, json!({"workers": 0, "accuracy": 1.0}))
            .await;
        assert_eq!(
            (s, e["error"]["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("workers"))
        );
        let (s, e) = app
            .post(&path, &req, json!({"workers": 3, "accuracy": 1.5}))
            .await;
        assert_eq!(
            (s, e["error"]["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("accuracy"))
        );
        let (s, sim) = app
            .post(&path, &req, json!({"workers": 3, "accuracy": 1.0, "answer_ms": 2, "burst": 5, "gap_ms": 20, "seed": 4}))
            .await;
        assert_eq!(s, StatusCode::ACCEPTED, "{sim}");
        assert_eq!(sim["workers"].as_array().unwrap().len(), 3);
        wait_for(&app, run, &req, &["completed"]).await;
        let (_, csv) = app
            .text(&format!("/api/v1/runs/{run}/outputs/right.csv"), &req)
            .await;
        assert_eq!(csv, "right\n20\n", "perfect workers label every row right");
        let mut report = Value::Null;
        for _ in 0..100 {
            let (s, r) = app.get(&path, &req).await;
            assert_eq!(s, StatusCode::OK, "{r}");
            if r["state"] == "finished" {
                report = r;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let workers = report["report"].as_array().expect("a finished report");
        let total: u64 = workers.iter().map(|w| w["answers"].as_u64().unwrap()).sum();
        assert!(total >= 40, "k=2 of 20 rows needs 40 answers: {report}");
        for w in workers {
            if w["with_gold"].as_u64().unwrap() > 0 {
                assert_eq!(w["precision"], 1.0, "{w}");
            }
        }
    }
}

/// A small model service: labels a row `pos` when its text says "good",
/// counts calls per idempotency key, and refuses each key's first call with
/// a 503 to be tried again.
async fn model_service() -> (
    String,
    std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, u32>>>,
) {
    use axum::Json;
    use axum::http::{HeaderMap, StatusCode as S};
    let calls: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, u32>>> =
        Default::default();
    let seen = calls.clone();
    let app = axum::Router::new()
        .route(
            "/predict",
            axum::routing::post(move |headers: HeaderMap, Json(body): Json<Value>| {
                let seen = seen.clone();
                async move {
                    let key = headers["idempotency-key"].to_str().unwrap().to_owned();
                    assert_eq!(body["idempotency_key"], key.as_str());
                    let n = {
                        let mut m = seen.lock().unwrap();
                        let n = m.entry(key).or_insert(0);
                        *n += 1;
                        *n
                    };
                    if n == 1 {
                        return (S::SERVICE_UNAVAILABLE, Json(json!({"error": "warming up"})));
                    }
                    let results: Vec<Value> = body["rows"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|r| {
                            let text = r["text"].as_str().unwrap_or("");
                            json!({"label": if text.contains("good") { "pos" } else { "neg" },
                                   "length": text.len(), "ignored": true})
                        })
                        .collect();
                    (S::OK, Json(json!({"results": results})))
                }
            }),
        )
        .route(
            "/refuse",
            axum::routing::post(|| async { (S::BAD_REQUEST, "rows need a text column") }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), calls)
}

#[tokio::test]
async fn a_model_step_sends_batches_with_keys_retries_and_keeps_the_named_fields() {
    for app in apps().await {
        let (ws, req, _) = app.team("model", 0).await;
        let (url, calls) = model_service().await;
        let mut csv = String::from("text,source\n");
        for i in 0..25 {
            csv.push_str(&format!(
                "{} review {i},web\n",
                if i % 4 == 0 { "good" } else { "bad" }
            ));
        }
        let spec = json!({"nodes": [
            {"op": "read_table", "file": "reviews.csv", "outputs": ["T"]},
            {"op": "model_call", "inputs": ["T"], "outputs": ["P"], "url": format!("{url}/predict"),
             "fields": ["label", "length"], "columns": ["_id", "text"], "batch_size": 10, "retries": 2},
            {"op": "sql", "inputs": ["P"], "outputs": ["S"],
             "query": "SELECT label, count(*) AS n FROM P GROUP BY label ORDER BY label"},
            {"op": "write_table", "inputs": ["S"], "file": "summary.csv"}
        ]});
        let run = start(
            &app,
            ws,
            &req,
            json!({"format": "json", "program": spec.to_string(), "files": {"reviews.csv": csv}}),
        )
        .await;
        let r = wait_for(&app, run, &req, &["completed", "failed"]).await;
        assert_eq!(r["status"], "completed", "{r:#}");
        let (_, p) = app
            .get(&format!("/api/v1/runs/{run}/tables/P?limit=3"), &req)
            .await;
        assert_eq!(
            p["columns"],
            json!(["_id", "text", "source", "label", "length"])
        );
        assert_eq!(p["total"], 25);
        assert_eq!(
            p["rows"][0],
            json!({"_id": 1, "text": "good review 0", "source": "web", "label": "pos", "length": 13})
        );
        let (_, csv) = app
            .text(&format!("/api/v1/runs/{run}/outputs/summary.csv"), &req)
            .await;
        assert_eq!(csv, "label,n\nneg,18\npos,7\n");
        let calls = calls.lock().unwrap().clone();
        assert_eq!(calls.len(), 3, "25 rows in batches of 10: {calls:?}");
        assert!(
            calls.values().all(|&n| n == 2),
            "each refused once, then answered: {calls:?}"
        );
        assert!(
            calls
                .keys()
                .any(|k| k.starts_with(&format!("run-{run}-")) && k.ends_with("-step-1-batch-2")),
            "{calls:?}"
        );

        // A service that refuses the batch fails the step with its answer.
        let spec = json!({"nodes": [
            {"op": "read_table", "file": "reviews.csv", "outputs": ["T"]},
            {"op": "model_call", "inputs": ["T"], "outputs": ["P"], "url": format!("{url}/refuse"), "fields": ["label"]}
        ]});
        let run = start(
            &app,
            ws,
            &req,
            json!({"format": "json", "program": spec.to_string(), "files": {"reviews.csv": "text\nx\n"}}),
        )
        .await;
        let r = wait_for(&app, run, &req, &["failed"]).await;
        let error = r["nodes"][1]["error"].as_str().unwrap();
        // The status only: what the service said is logged, not shown.
        assert!(error.contains("answered 400"), "{error}");
        assert!(!error.contains("rows need a text column"), "{error}");
        // A bad spec is refused before it runs.
        let bad = json!({"nodes": [
            {"op": "read_table", "file": "reviews.csv", "outputs": ["T"]},
            {"op": "model_call", "inputs": ["T"], "outputs": ["P"], "url": "ftp://x", "fields": ["label"]}
        ]});
        let (s, e) = app
            .post(&format!("/api/v1/workspaces/{ws}/runs"), &req,
                  json!({"format": "json", "program": bad.to_string(), "files": {"reviews.csv": "text\nx\n"}}))
            .await;
        assert_eq!(
            (s, e["error"]["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("program"))
        );
        assert!(
            e["error"]["message"]
                .as_str()
                .unwrap()
                .contains("nodes[1].url"),
            "{e}"
        );
    }
}

#[tokio::test]
async fn a_run_reads_another_runs_table_by_reference_within_its_workspace_only() {
    for app in apps().await {
        let (ws, req, _) = app.team("chain", 0).await;
        let first = start(
            &app,
            ws,
            &req,
            json!({"program": "T = read_table(\"people.csv\");\nP = exec_sql(T, query=\"SELECT _id, name FROM T WHERE kind = 'person'\");",
                   "files": files()}),
        )
        .await;
        // Started at once, but after the first: an active-learning loop's
        // next round.
        let spec = json!({"nodes": [
            {"op": "read_run", "run": first, "table": "P", "outputs": ["people"]},
            {"op": "sql", "inputs": ["people"], "outputs": ["N"], "query": "SELECT count(*) AS n FROM people"},
            {"op": "write_table", "inputs": ["N"], "file": "n.csv"}
        ]});
        let second = start(
            &app,
            ws,
            &req,
            json!({"format": "json", "program": spec.to_string(), "after_run": first}),
        )
        .await;
        wait_for(&app, second, &req, &["completed"]).await;
        let (_, csv) = app
            .text(&format!("/api/v1/runs/{second}/outputs/n.csv"), &req)
            .await;
        assert_eq!(csv, "n\n3\n");
        // Another workspace cannot name it.
        let (other_ws, other, _) = app.team("chain-other", 0).await;
        let (s, e) = app
            .post(
                &format!("/api/v1/workspaces/{other_ws}/runs"),
                &other,
                json!({"format": "json", "program": spec.to_string()}),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
        assert!(
            e["error"]["message"]
                .as_str()
                .unwrap()
                .contains("not a run of this workspace"),
            "{e}"
        );
        // A table the run does not have fails the step, saying so.
        let missing =
            json!({"nodes": [{"op": "read_run", "run": first, "table": "Nope", "outputs": ["x"]}]});
        let third = start(
            &app,
            ws,
            &req,
            json!({"format": "json", "program": missing.to_string()}),
        )
        .await;
        let r = wait_for(&app, third, &req, &["failed"]).await;
        assert!(
            r["error"].as_str().unwrap().contains("has no table Nope"),
            "{r}"
        );
    }
}

/// Makes `posts` in an outside database with five rows over five days.
async fn posts_table(url: &str, table: &str) {
    use sqlx::{Connection as _, Executor as _};
    let rows = [
        (1, "Ada", "2024-01-01 10:00:00", 3.5),
        (2, "Bob", "2024-01-02 11:00:00", 1.0),
        (3, "Cy", "2024-01-03 12:00:00", 2.25),
        (4, "Di", "2024-01-04 13:00:00", 4.0),
        (5, "Ed", "2024-01-05 14:00:00", 0.5),
    ];
    if url.starts_with("postgres") {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        c.execute(sqlx::AssertSqlSafe(format!(
            "CREATE TABLE {table} (id BIGINT, author TEXT, created_at TIMESTAMPTZ, score NUMERIC(6,2))"
        )))
        .await
        .unwrap();
        for (id, a, t, s) in rows {
            c.execute(sqlx::AssertSqlSafe(format!(
                "INSERT INTO {table} VALUES ({id}, '{a}', '{t}+00', {s})"
            )))
            .await
            .unwrap();
        }
    } else if url.starts_with("mysql") {
        let mut c = sqlx::MySqlConnection::connect(url).await.unwrap();
        c.execute(sqlx::AssertSqlSafe(format!(
            "CREATE TABLE {table} (id BIGINT, author TEXT, created_at DATETIME, score DECIMAL(6,2))"
        )))
        .await
        .unwrap();
        for (id, a, t, s) in rows {
            c.execute(sqlx::AssertSqlSafe(format!(
                "INSERT INTO {table} VALUES ({id}, '{a}', '{t}', {s})"
            )))
            .await
            .unwrap();
        }
    } else {
        use sqlx::ConnectOptions as _;
        use std::str::FromStr as _;
        let mut c = sqlx::sqlite::SqliteConnectOptions::from_str(url)
            .unwrap()
            .create_if_missing(true)
            .connect()
            .await
            .unwrap();
        c.execute(sqlx::AssertSqlSafe(format!(
            "CREATE TABLE {table} (id INTEGER, author TEXT, created_at TEXT, score REAL)"
        )))
        .await
        .unwrap();
        for (id, a, t, s) in rows {
            c.execute(sqlx::AssertSqlSafe(format!(
                "INSERT INTO {table} VALUES ({id}, '{a}', '{t}', {s})"
            )))
            .await
            .unwrap();
        }
    }
}

/// Drops tables made in an outside database by a test.
async fn drop_tables(url: &str, tables: &[&str]) {
    use sqlx::{Connection as _, Executor as _};
    for t in tables {
        let sql = sqlx::AssertSqlSafe(format!("DROP TABLE IF EXISTS {t}"));
        if url.starts_with("postgres") {
            let mut c = sqlx::PgConnection::connect(url).await.unwrap();
            c.execute(sql).await.unwrap();
        } else if url.starts_with("mysql") {
            let mut c = sqlx::MySqlConnection::connect(url).await.unwrap();
            c.execute(sql).await.unwrap();
        }
    }
}

/// Rows of `table` in an outside database, as `id:author:score` text.
async fn target_rows(url: &str, table: &str) -> Vec<String> {
    use sqlx::{Connection as _, Row as _};
    let sql = format!(
        "SELECT CAST(id AS CHAR(20)) || ':' || author || ':' || CAST(total AS CHAR(20)) FROM {table} ORDER BY id"
    );
    if url.starts_with("postgres") {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        let sql = format!(
            "SELECT id::text || ':' || author || ':' || total::text FROM {table} ORDER BY id"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&mut c)
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    } else if url.starts_with("mysql") {
        let mut c = sqlx::MySqlConnection::connect(url).await.unwrap();
        let sql = format!("SELECT CONCAT(id, ':', author, ':', total) FROM {table} ORDER BY id");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&mut c)
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    } else {
        let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
        let sql = sql
            .replace("CAST(id AS CHAR(20))", "id")
            .replace("CAST(total AS CHAR(20))", "total");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&mut c)
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    }
}

#[tokio::test]
async fn outside_databases_are_read_by_date_range_with_bound_parameters_and_written_once() {
    for app in apps().await {
        let (ws, req, _) = app.team("ext", 0).await;
        for (name, url) in &app.databases {
            let stamp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
                % 1_000_000_000;
            let (source, target) = (format!("posts_{stamp}"), format!("totals_{stamp}"));
            posts_table(url, &source).await;
            let (a, b) = if url.starts_with("postgres") {
                ("$1::timestamptz", "$2::timestamptz")
            } else {
                ("?", "?")
            };
            let spec = json!({"nodes": [
                {"op": "read_database", "database": name, "outputs": ["P"],
                 "query": format!("SELECT id, author, created_at, score FROM {source} WHERE created_at >= {a} AND created_at < {b} ORDER BY id"),
                 "params": ["${from}", "${to}"]},
                {"op": "sql", "inputs": ["P"], "outputs": ["T"], "query": "SELECT id, author, score * 2 AS total FROM P"},
                {"op": "write_database", "inputs": ["T"], "database": name, "table": target},
                {"op": "write_table", "inputs": ["P"], "file": "p.csv"}
            ]});
            let run = start(
                &app,
                ws,
                &req,
                json!({"format": "json", "program": spec.to_string(),
                       "params": {"from": "2024-01-02", "to": "2024-01-05"}}),
            )
            .await;
            let r = wait_for(&app, run, &req, &["completed", "failed"]).await;
            assert_eq!(r["status"], "completed", "{name}: {r:#}");
            assert_eq!(r["nodes"][0]["rows_out"], 3, "{name}: three days in range");
            let (_, p) = app.get(&format!("/api/v1/runs/{run}/tables/P"), &req).await;
            assert_eq!(
                p["columns"],
                json!(["id", "author", "created_at", "score"]),
                "{name}"
            );
            let authors: Vec<&str> = p["rows"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["author"].as_str().unwrap())
                .collect();
            assert_eq!(authors, ["Bob", "Cy", "Di"], "{name}");
            assert!(
                p["rows"][0]["created_at"]
                    .as_str()
                    .unwrap()
                    .starts_with("2024-01-02"),
                "{name}: {p}"
            );
            let got = target_rows(url, &target).await;
            let got: Vec<String> = got
                .iter()
                .map(|s| s.trim_end_matches('0').trim_end_matches('.').to_owned())
                .collect();
            assert_eq!(got, ["2:Bob:2", "3:Cy:4.5", "4:Di:8"], "{name}");
            drop_tables(url, &[&source, &target]).await;
        }
        // A name the server does not know is refused before the run.
        let spec = json!({"nodes": [{"op": "read_database", "database": "nope", "query": "SELECT 1", "outputs": ["X"]}]});
        let (s, e) = app
            .post(
                &format!("/api/v1/workspaces/{ws}/runs"),
                &req,
                json!({"format": "json", "program": spec.to_string()}),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
        assert!(
            e["error"]["message"]
                .as_str()
                .unwrap()
                .contains("no database named nope"),
            "{e}"
        );
        // Rows the run's file cannot hold (two columns of one name) fail the
        // step, once, with the reason.
        let spec = json!({"nodes": [{"op": "read_database", "database": "local", "query": "SELECT 1 AS a, 2 AS A", "outputs": ["X"]}]});
        let run = start(
            &app,
            ws,
            &req,
            json!({"format": "json", "program": spec.to_string()}),
        )
        .await;
        let r = wait_for(&app, run, &req, &["failed"]).await;
        assert!(
            r["error"].as_str().unwrap().contains("could not be stored"),
            "{r}"
        );
        // A query the database refuses fails the step with its message.
        let spec = json!({"nodes": [{"op": "read_database", "database": "local", "query": "SELECT * FROM no_such_table", "outputs": ["X"]}]});
        let run = start(
            &app,
            ws,
            &req,
            json!({"format": "json", "program": spec.to_string()}),
        )
        .await;
        let r = wait_for(&app, run, &req, &["failed"]).await;
        assert!(
            r["error"]
                .as_str()
                .unwrap()
                .contains("no such table: no_such_table"),
            "{r}"
        );
    }
}

#[tokio::test]
async fn a_webhook_step_posts_the_rows_in_signed_batches_with_keys() {
    use axum::http::HeaderMap;
    for app in apps().await {
        let got: std::sync::Arc<std::sync::Mutex<Vec<(String, String, String)>>> =
            Default::default();
        let seen = got.clone();
        let hook = axum::Router::new().route(
            "/rows",
            axum::routing::post(move |headers: HeaderMap, body: String| {
                let seen = seen.clone();
                async move {
                    let h = |n: &str| {
                        headers
                            .get(n)
                            .map(|v| v.to_str().unwrap().to_owned())
                            .unwrap_or_default()
                    };
                    seen.lock()
                        .unwrap()
                        .push((h("idempotency-key"), h("x-tutti-signature"), body));
                    "ok"
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, hook).await.unwrap() });
        let (ws, req, _) = app.team("hookstep", 0).await;
        let spec = json!({"nodes": [
            {"op": "read_table", "file": "people.csv", "outputs": ["T"]},
            {"op": "webhook", "inputs": ["T"], "url": format!("http://{addr}/rows"), "batch_size": 4}
        ]});
        let secret = "sixteen-chars-or-more";
        let run = start(
            &app,
            ws,
            &req,
            json!({"format": "json", "program": spec.to_string(), "files": {"people.csv": PEOPLE},
                   "webhook": {"url": format!("http://{addr}/done"), "secret": secret}}),
        )
        .await;
        let r = wait_for(&app, run, &req, &["completed", "failed"]).await;
        assert_eq!(r["status"], "completed", "{r:#}");
        assert_eq!(r["nodes"][1]["rows_out"], 6);
        let got = got.lock().unwrap().clone();
        assert_eq!(got.len(), 2, "six rows in batches of four");
        let mut names = Vec::new();
        for (key, sig, body) in &got {
            assert!(
                key.ends_with(&format!("-step-1-batch-{}", names.len() / 4)),
                "{key}"
            );
            assert_eq!(
                sig,
                &format!(
                    "sha256={}",
                    tutti_engine::hmac::sign(secret.as_bytes(), body.as_bytes())
                )
            );
            let v: Value = serde_json::from_str(body).unwrap();
            assert_eq!(v["table"], "T");
            for row in v["rows"].as_array().unwrap() {
                names.push(row["name"].as_str().unwrap().to_owned());
            }
        }
        assert_eq!(names.len(), 6);
        assert_eq!(names[0], "Ada Lovelace");
    }
}

#[tokio::test]
async fn graded_comparisons_keep_their_grades_and_weigh_the_scores_by_them() {
    for app in apps().await {
        let (ws, req, workers) = app.team("graded", 2).await;
        // Each pair once: A beats B by a little, B beats C by a lot, and C
        // beats A by a little. By sides alone each item won once; graded,
        // B's large win puts it first and C's large loss last.
        let pairs = "a_id,b_id,a_text,b_text\nA,B,one,two\nB,C,two,three\nC,A,three,one\n";
        let grade = |l: &str| match l {
            "A" => "-1",
            "B" => "-9",
            _ => "-1",
        };
        let spec = json!({"nodes": [
            {"op": "read_table", "file": "pairs.csv", "outputs": ["P"]},
            {"op": "human_compare", "inputs": ["P"], "outputs": ["J", "S"], "criterion": "Which is better?",
             "left": "a_text", "right": "b_text", "left_id": "a_id", "right_id": "b_id", "k": 1, "n": 1,
             "scale": 10}
        ]});
        let run = start(
            &app,
            ws,
            &req,
            json!({"format": "json", "program": spec.to_string(), "files": {"pairs.csv": pairs}}),
        )
        .await;
        let r = wait_for(&app, run, &req, &["waiting"]).await;
        let job = r["nodes"][1]["job_id"].as_i64().unwrap();
        let (_, j) = app.get(&format!("/api/v1/jobs/{job}"), &req).await;
        assert_eq!(j["answers"], json!(["left", "right", "tie"]), "0 is a tie");
        let w = &workers[0];
        loop {
            let (s, t) = app.next(job, w).await;
            if s != StatusCode::OK {
                break;
            }
            assert_eq!(t["compare"]["scale"], 10);
            let id = t["assignment"]["id"].as_i64().unwrap();
            // Out of scale first: refused, naming the answer.
            let (s, e) = app.submit(id, w, "-11").await;
            assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
            assert_eq!(e["error"]["field"], "answer");
            let l = t["assignment"]["data"]["a_id"].as_str().unwrap().to_owned();
            let (s, _) = app.submit(id, w, grade(&l)).await;
            assert_eq!(s, StatusCode::OK);
        }
        let r = wait_for(&app, run, &req, &["completed", "failed"]).await;
        assert_eq!(r["status"], "completed", "{r:#}");
        let (_, judged) = app.get(&format!("/api/v1/runs/{run}/tables/J"), &req).await;
        let mut grades: Vec<(String, String, i64)> = judged["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["left_id"].as_str().unwrap().to_owned(),
                    r["winner"].as_str().unwrap().to_owned(),
                    r["grade"].as_i64().unwrap(),
                )
            })
            .collect();
        grades.sort();
        assert_eq!(
            grades,
            [
                ("A".into(), "left".into(), -1),
                ("B".into(), "left".into(), -9),
                ("C".into(), "left".into(), -1)
            ]
        );
        let (_, scores) = app.get(&format!("/api/v1/runs/{run}/tables/S"), &req).await;
        let order: Vec<&str> = scores["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["item"].as_str().unwrap())
            .collect();
        assert_eq!(order, ["B", "A", "C"], "{scores}");
        let (_, csv) = app
            .text(&format!("/api/v1/jobs/{job}/export?what=answers"), &req)
            .await;
        let mut lines = csv.lines();
        assert_eq!(
            lines.next(),
            Some("_id,worker_id,annotation,worker_name,side,submitted_at,late,grade")
        );
        let mut graded: Vec<&str> = lines.map(|l| l.rsplit(',').next().unwrap()).collect();
        graded.sort();
        assert_eq!(graded, ["-1", "-1", "-9"], "{csv}");
        let (_, jsonl) = app
            .text(
                &format!("/api/v1/jobs/{job}/export?what=answers&format=jsonl"),
                &req,
            )
            .await;
        for line in jsonl.lines() {
            let a: Value = serde_json::from_str(line).unwrap();
            assert!(a["grade"].is_i64() && a["annotation"] == "left", "{a}");
        }
    }
}

#[tokio::test]
async fn people_compare_pairs_into_scores_and_answers_are_reaggregated_by_a_step() {
    for app in apps().await {
        let (ws, req, workers) = app.team("pairs", 3).await;
        // Items A > B > C > D; every pair once.
        let items = ["A", "B", "C", "D"];
        let mut pairs = String::from("a_id,b_id,a_text,b_text\n");
        for x in 0..4 {
            for y in x + 1..4 {
                // Alternate sides so "left" is not always right.
                let (l, r) = if (x + y) % 2 == 0 { (x, y) } else { (y, x) };
                pairs.push_str(&format!(
                    "{},{},answer {},answer {}\n",
                    items[l], items[r], items[l], items[r]
                ));
            }
        }
        let spec = json!({"nodes": [
            {"op": "read_table", "file": "pairs.csv", "outputs": ["P"]},
            {"op": "human_compare", "inputs": ["P"], "outputs": ["J", "S"], "criterion": "Which answer is more helpful?",
             "left": "a_text", "right": "b_text", "left_id": "a_id", "right_id": "b_id", "k": 2, "n": 3},
            {"op": "read_table", "file": "people.csv", "outputs": ["T"]},
            {"op": "human_label", "inputs": ["T"], "outputs": ["ANS", "LAB"], "question": "Is ${name} a person?",
             "answers": ["Yes", "No"], "k": 2, "n": 3},
            {"op": "aggregate", "inputs": ["ANS"], "outputs": ["DS"], "method": "ds"},
            {"op": "write_table", "inputs": ["S"], "file": "scores.csv"}
        ]});
        let run = start(
            &app,
            ws,
            &req,
            json!({"format": "json", "program": spec.to_string(), "files": {"pairs.csv": pairs, "people.csv": PEOPLE}}),
        )
        .await;
        let r = wait_for(&app, run, &req, &["waiting"]).await;
        let compare_job = r["nodes"][1]["job_id"].as_i64().expect("a comparison job");
        let (_, j) = app.get(&format!("/api/v1/jobs/{compare_job}"), &req).await;
        assert_eq!(j["answers"], json!(["left", "right"]));
        assert_eq!(
            j["compare"],
            json!({"left": "a_text", "right": "b_text", "tie": false}),
            "a pairwise job: {j}"
        );
        // Workers pick the better item; then label the people.
        loop {
            let mut any = false;
            for w in &workers {
                let (s, t) = app.next(compare_job, w).await;
                if s != StatusCode::OK {
                    continue;
                }
                any = true;
                let d = &t["assignment"]["data"];
                let (l, rr) = (d["a_id"].as_str().unwrap(), d["b_id"].as_str().unwrap());
                let side_by_side = t["layout_html"].as_str().unwrap();
                assert!(
                    side_by_side.contains(&format!("answer {l}"))
                        && side_by_side.contains("class=\"pair\""),
                    "{side_by_side}"
                );
                let id = t["assignment"]["id"].as_i64().unwrap();
                let (s, _) = app
                    .submit(id, w, if l < rr { "left" } else { "right" })
                    .await;
                assert_eq!(s, StatusCode::OK);
            }
            if !any {
                break;
            }
        }
        let label_job = wait_for(&app, run, &req, &["waiting"]).await["nodes"][3]["job_id"]
            .as_i64()
            .unwrap();
        answer_all(&app, label_job, &workers).await;
        let r = wait_for(&app, run, &req, &["completed", "failed"]).await;
        assert_eq!(r["status"], "completed", "{r:#}");
        let (_, scores) = app.get(&format!("/api/v1/runs/{run}/tables/S"), &req).await;
        let order: Vec<&str> = scores["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["item"].as_str().unwrap())
            .collect();
        assert_eq!(order, ["A", "B", "C", "D"], "{scores}");
        assert_eq!(
            scores["rows"][0]["wins"], 6,
            "A won both judgments of its three pairs"
        );
        let (_, judged) = app.get(&format!("/api/v1/runs/{run}/tables/J"), &req).await;
        assert_eq!(
            judged["columns"],
            json!(["_id", "worker_id", "left_id", "right_id", "winner", "grade"])
        );
        assert_eq!(
            judged["total"], 12,
            "six pairs, two agreeing judgments each"
        );
        let (_, ds) = app
            .get(&format!("/api/v1/runs/{run}/tables/DS"), &req)
            .await;
        assert_eq!(ds["columns"], json!(["_id", "label", "confidence"]));
        let (_, lab) = app
            .get(&format!("/api/v1/runs/{run}/tables/LAB"), &req)
            .await;
        let by_agreement: Vec<&Value> = lab["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| &r["label"])
            .collect();
        let by_ds: Vec<&Value> = ds["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| &r["label"])
            .collect();
        assert_eq!(
            by_ds, by_agreement,
            "unanimous workers: Dawid-Skene agrees with k-of-n"
        );
        // A bad method is refused before the run.
        let bad = json!({"nodes": [
            {"op": "read_table", "file": "people.csv", "outputs": ["T"]},
            {"op": "aggregate", "inputs": ["T"], "outputs": ["X"], "method": "best"}
        ]});
        let (s, e) = app
            .post(&format!("/api/v1/workspaces/{ws}/runs"), &req,
                  json!({"format": "json", "program": bad.to_string(), "files": {"people.csv": PEOPLE}}))
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            e["error"]["message"]
                .as_str()
                .unwrap()
                .contains("unknown method"),
            "{e}"
        );
    }
}

#[tokio::test]
async fn a_model_step_in_callback_mode_waits_for_answers_posted_back_to_signed_urls() {
    use axum::Json;
    for app in apps().await {
        let (ws, req, _) = app.team("callback", 0).await;
        let sent: std::sync::Arc<std::sync::Mutex<Vec<Value>>> = Default::default();
        let seen = sent.clone();
        let service = axum::Router::new().route(
            "/score",
            axum::routing::post(move |Json(body): Json<Value>| {
                let seen = seen.clone();
                async move {
                    seen.lock().unwrap().push(body);
                    (axum::http::StatusCode::ACCEPTED, "queued")
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, service).await.unwrap() });
        let mut csv = String::from("text\n");
        for i in 0..7 {
            csv.push_str(&format!("row {i}\n"));
        }
        let spec = json!({"nodes": [
            {"op": "read_table", "file": "t.csv", "outputs": ["T"]},
            {"op": "model_call", "inputs": ["T"], "outputs": ["M"], "url": format!("http://{addr}/score"),
             "fields": ["length"], "batch_size": 3, "mode": "callback"},
            {"op": "write_table", "inputs": ["M"], "file": "m.csv"}
        ]});
        let run = start(
            &app,
            ws,
            &req,
            json!({"format": "json", "program": spec.to_string(), "files": {"t.csv": csv}}),
        )
        .await;
        let r = wait_for(&app, run, &req, &["waiting"]).await;
        assert_eq!(r["nodes"][1]["status"], "waiting");
        let batches = sent.lock().unwrap().clone();
        assert_eq!(
            batches.len(),
            3,
            "seven rows in batches of three, each sent once"
        );
        let client = reqwest::Client::new();
        let post = |url: String, body: Value| {
            let client = client.clone();
            async move {
                let r = client.post(url).json(&body).send().await.unwrap();
                (r.status(), r.json::<Value>().await.unwrap_or(Value::Null))
            }
        };
        // A forged token is refused; so is an answer of the wrong length.
        let url0 = batches[0]["callback_url"].as_str().unwrap().to_owned();
        let forged = format!("{}0", url0);
        let (s, _) = post(forged, json!({"results": []})).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, e) = post(url0.clone(), json!({"results": [{"length": 1}]})).await;
        assert_eq!(
            (s, e["error"]["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("results")),
            "{e}"
        );
        // The service answers every batch (the first twice).
        for b in &batches {
            let rows = b["rows"].as_array().unwrap();
            let results: Vec<Value> = rows
                .iter()
                .map(|r| json!({"length": r["text"].as_str().unwrap().len()}))
                .collect();
            let (s, v) = post(
                b["callback_url"].as_str().unwrap().to_owned(),
                json!({"results": results}),
            )
            .await;
            assert_eq!((s, &v["taken"]), (StatusCode::OK, &json!(true)), "{v}");
        }
        let first: Vec<Value> = batches[0]["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|_| json!({"length": 0}))
            .collect();
        let (s, v) = post(url0, json!({"results": first})).await;
        assert_eq!(
            (s, &v["taken"]),
            (StatusCode::OK, &json!(false)),
            "a second answer changes nothing"
        );
        let r = wait_for(&app, run, &req, &["completed", "failed"]).await;
        assert_eq!(r["status"], "completed", "{r:#}");
        let (_, csv) = app
            .text(&format!("/api/v1/runs/{run}/outputs/m.csv"), &req)
            .await;
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 8);
        assert_eq!(lines[0], "_id,text,length");
        assert_eq!(lines[1], "1,row 0,5");
        assert_eq!(sent.lock().unwrap().len(), 3, "no batch was sent again");
    }
}

#[tokio::test]
async fn a_knlm_step_lets_stewards_decide_and_an_amt_step_without_a_connector_fails_clearly() {
    for app in apps().await {
        let (ws, req, _) = app.team("knlm-run", 0).await;
        let (sid, steward) = app.user("knlm-run-steward", "steward").await;
        app.call(
            "PUT",
            &format!("/api/v1/workspaces/{ws}/members/{sid}"),
            Some(&req),
            Some(json!({"role": "steward"})),
        )
        .await;
        let program = "T = read_table(\"people.csv\");\nS = sample_random(T, n=2, seed=1);\n\
            (B, C) = 3a_knlm(S, \"instructions.html\", \"layout.html\", k=2, n=3, l=1, m=1,\n\
                question=\"Is ${name} a person?\", answers=[\"Yes\",\"No\"]);";
        let run = start(
            &app,
            ws,
            &req,
            json!({"program": program, "files": files()}),
        )
        .await;
        let job = wait_for(&app, run, &req, &["waiting"]).await["nodes"][2]["job_id"]
            .as_i64()
            .unwrap();
        // One steward answer decides each task (l = 1 of m = 1).
        loop {
            let (s, t) = app.next(job, &steward).await;
            if s != StatusCode::OK {
                break;
            }
            assert_eq!(t["assignment"]["side"], "steward");
            let (s, _) = app
                .submit(t["assignment"]["id"].as_i64().unwrap(), &steward, "Yes")
                .await;
            assert_eq!(s, StatusCode::OK);
        }
        wait_for(&app, run, &req, &["completed"]).await;
        let (_, c) = app.get(&format!("/api/v1/runs/{run}/tables/C"), &req).await;
        assert_eq!(c["total"], 2);
        assert!(
            c["rows"]
                .as_array()
                .unwrap()
                .iter()
                .all(|r| r["label"] == "Yes"),
            "{c}"
        );
        let (_, b) = app.get(&format!("/api/v1/runs/{run}/tables/B"), &req).await;
        assert!(
            b["rows"]
                .as_array()
                .unwrap()
                .iter()
                .all(|r| r["worker_id"] == sid),
            "{b}"
        );

        let amt = "T = read_table(\"people.csv\");\n\
            (B, C) = 3a_amt(T, \"instructions.html\", \"layout.html\", k=2, n=3, question=\"?\", answers=[\"a\",\"b\"]);";
        let run = start(&app, ws, &req, json!({"program": amt, "files": files()})).await;
        let r = wait_for(&app, run, &req, &["failed"]).await;
        let e = r["nodes"][1]["error"].as_str().unwrap();
        assert!(e.contains("no Mechanical Turk connector"), "{e}");
        assert!(r["nodes"][1]["job_id"].is_null(), "no job was made");
    }
}

#[tokio::test]
async fn a_keyword_label_step_labels_a_table_into_results_and_production_rows() {
    for app in apps().await {
        let (ws, req, _) = app.team("kw", 0).await;
        let posts = "id,source,author_name,content,create_time\n\
                     1,S1,Mary Smith,hi,2020-01-01 00:00:00\n\
                     2,S1,Mary Smith,John,2020-01-02 00:00:00\n\
                     3,S2,John Doe,x,2020-01-03 00:00:00\n\
                     4,S2,Nobody,x,2020-01-04 00:00:00\n\
                     5,S3,林超哥,x,2020-01-05 00:00:00\n";
        let patterns = "label,pattern\n/female,mary\n/male,john\n/male,林超\n";
        let spec = "nodes:\n\
                    - {op: read_table, file: posts.csv, outputs: [P]}\n\
                    - {op: keyword_label, inputs: [P], outputs: [L, Prod], patterns: panels.csv, column: author_name}\n\
                    - {op: rule_label, inputs: [P], outputs: [C], patterns: panels.csv, column: content, whole_word: true}\n\
                    - {op: write_table, inputs: [L], file: labels.csv}\n";
        let run = start(
            &app,
            ws,
            &req,
            json!({"format": "yaml", "program": spec, "files": {"posts.csv": posts, "panels.csv": patterns}}),
        )
        .await;
        let r = wait_for(&app, run, &req, &["completed", "failed"]).await;
        assert_eq!(r["status"], "completed", "{r:#}");
        let (_, l) = app.get(&format!("/api/v1/runs/{run}/tables/L"), &req).await;
        let got: Vec<(String, String)> = l["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["id"].as_str().unwrap().to_owned(),
                    r["label"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("1", "/female"),
                ("2", "/female"),
                ("3", "/male"),
                ("5", "/male")
            ]
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
        );
        let (_, p) = app
            .get(&format!("/api/v1/runs/{run}/tables/Prod"), &req)
            .await;
        assert_eq!(p["total"], 3, "{p}");
        let (_, c) = app.get(&format!("/api/v1/runs/{run}/tables/C"), &req).await;
        assert_eq!(c["total"], 1, "{c}");
        assert_eq!(c["rows"][0]["match_content"], "John");
        let (s, csv) = app
            .text(&format!("/api/v1/runs/{run}/outputs/labels.csv"), &req)
            .await;
        assert_eq!(s, StatusCode::OK);
        assert!(
            csv.starts_with("id,source,author,label,pattern,match_content,create_time"),
            "{csv}"
        );

        // A pattern file that does not parse fails the step with its line.
        let run = start(
            &app,
            ws,
            &req,
            json!({"format": "yaml", "program": spec, "files": {"posts.csv": posts, "panels.csv": "label,pattern\n/a,\n"}}),
        )
        .await;
        let r = wait_for(&app, run, &req, &["completed", "failed"]).await;
        assert_eq!(r["status"], "failed");
        assert!(r.to_string().contains("line 2"), "{r:#}");
    }
}

#[tokio::test]
async fn model_calls_and_webhooks_do_not_reach_internal_addresses_and_never_show_what_a_refusal_said()
 {
    // A stand-in internal service that answers with a secret, and one that
    // redirects to it.
    let service = axum::Router::new()
        .route(
            "/internal/admin",
            axum::routing::post(|| async {
                (
                    StatusCode::FORBIDDEN,
                    "INTERNAL-ONLY aws_secret_access_key=EXAMPLE-SECRET-123",
                )
            }),
        )
        .route(
            "/redir",
            axum::routing::post(|| async {
                axum::response::Redirect::temporary("/internal/admin")
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, service).await.unwrap() });
    let program = |url: String| {
        json!({"nodes": [
            {"op": "read_table", "file": "t.csv", "outputs": ["T"]},
            {"op": "model_call", "inputs": ["T"], "outputs": ["M"], "url": url, "fields": ["y"], "retries": 0},
            {"op": "write_table", "inputs": ["M"], "file": "m.csv"}
        ]})
        .to_string()
    };
    for url in tutti_store::testing::fresh_urls().await.unwrap() {
        let store = tutti_store::connect(&url).await.unwrap();
        // The server as an operator runs it: internal addresses closed.
        let settings = tutti_server::Settings {
            runs_dir: common::test_dir("runs-closed"),
            monitor_interval: None,
            ..tutti_server::Settings::default()
        };
        let app = spawn_on_settings(store, Some(settings)).await;
        let (ws, req, _) = app.team("ssrf", 0).await;
        for target in [
            format!("http://{addr}/internal/admin"),
            format!("http://localhost:{}/internal/admin", addr.port()),
        ] {
            let run = start(
                &app,
                ws,
                &req,
                json!({"format": "json", "program": program(target.clone()), "files": {"t.csv": "x\n1\n"}}),
            )
            .await;
            let r = wait_for(&app, run, &req, &["failed"]).await;
            let error = r["error"].as_str().unwrap_or_default();
            assert!(error.contains("internal address"), "{target}: {r}");
            assert!(!r.to_string().contains("EXAMPLE-SECRET"), "{r}");
        }
        // A run's own webhook is refused when it is made.
        let (s, e) = app
            .post(
                &format!("/api/v1/workspaces/{ws}/runs"),
                &req,
                json!({"format": "json", "program": program("https://models.example.org/x".into()),
                       "files": {"t.csv": "x\n1\n"},
                       "webhook": {"url": format!("http://{addr}/hook"), "secret": "a secret of sixteen+"}}),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
        assert_eq!(e["error"]["field"], "webhook.url");
    }
    // Where the operator allows internal addresses, a refusal's body is
    // still not shown, and a redirect is not followed.
    for app in apps().await {
        let (ws, req, _) = app.team("ssrf-open", 0).await;
        for (path, says) in [("/internal/admin", "answered 403"), ("/redir", "redirect")] {
            let run = start(
                &app,
                ws,
                &req,
                json!({"format": "json", "program": program(format!("http://{addr}{path}")), "files": {"t.csv": "x\n1\n"}}),
            )
            .await;
            let r = wait_for(&app, run, &req, &["failed"]).await;
            assert!(
                r["error"].as_str().unwrap_or_default().contains(says),
                "{path}: {r}"
            );
            assert!(!r.to_string().contains("EXAMPLE-SECRET"), "{r}");
            assert!(!r.to_string().contains("INTERNAL-ONLY"), "{r}");
        }
    }
}

#[tokio::test]
async fn a_table_of_huge_values_is_shown_cut_short_in_a_bounded_page() {
    for app in apps().await {
        let (ws, req, _) = app.team("bomb", 0).await;
        let spec = json!({"nodes": [
            {"op": "read_table", "file": "t.csv", "outputs": ["T"]},
            {"op": "sql", "inputs": ["T"], "outputs": ["R"], "query":
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n LIMIT 4) \
                 SELECT i, zeroblob(10000000) AS z, printf('%.*c', 3000000, 'x') AS s FROM n"},
            {"op": "write_table", "inputs": ["T"], "file": "t2.csv"}
        ]});
        let run = start(
            &app,
            ws,
            &req,
            json!({"format": "json", "program": spec.to_string(), "files": {"t.csv": "a\n1\n"}}),
        )
        .await;
        let r = wait_for(&app, run, &req, &["completed"]).await;
        assert_eq!(r["status"], "completed", "{r}");
        let resp = app
            .client
            .get(format!(
                "{}/api/v1/runs/{run}/tables/R?limit=1000",
                app.base
            ))
            .bearer_auth(&req)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let body = resp.bytes().await.unwrap();
        assert!(body.len() < 2 << 20, "a page of {} bytes", body.len());
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["total"], 4);
        let rows = v["rows"].as_array().unwrap();
        assert_eq!(rows.len(), 4);
        let shown = tutti_engine::rundata::SHOWN_CELL_BYTES;
        assert_eq!(rows[0]["s"].as_str().unwrap().len(), shown);
        assert_eq!(
            rows[0]["z"].as_str().unwrap().len(),
            2 * shown,
            "a cut blob, as hex"
        );
        assert_eq!(rows[3]["i"], 4);
    }
}
