//! The API contract, against the real server on port 0: on SQLite always,
//! and on PostgreSQL too when `TUTTI_TEST_POSTGRES_URL` is set.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::sync::Arc;
#[tokio::test]
async fn the_health_check_answers_ok_and_unknown_pages_get_a_json_404() {
    for app in apps().await {
        let r = app
            .client
            .get(format!("{}/healthz", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let (s, v) = app.get("/api/v1/nothing-here", &app.admin).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        assert_eq!(error_code(&v), "not_found");
    }
}

#[tokio::test]
async fn calls_without_a_valid_token_get_401_with_a_json_reason() {
    for app in apps().await {
        let (s, v) = app.call("GET", "/api/v1/users/me", None, None).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        assert!(v["error"]["message"].as_str().unwrap().contains("Bearer"));
        let (s, _) = app.get("/api/v1/users/me", "tutti_not-a-token").await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn tokens_are_shown_once_listed_without_secrets_and_revoked_at_once() {
    for app in apps().await {
        let (id, token) = app.user("ada", "worker").await;
        let (s, me) = app.get("/api/v1/users/me", &token).await;
        assert_eq!((s, me["id"].as_i64()), (StatusCode::OK, Some(id)));
        let (_, list) = app.get("/api/v1/tokens", &token).await;
        let first = &list["items"][0];
        assert!(
            first.get("token").is_none() && first.get("hash").is_none(),
            "{first}"
        );
        let token_id = first["id"].as_i64().unwrap();
        let (s, _) = app
            .call(
                "DELETE",
                &format!("/api/v1/tokens/{token_id}"),
                Some(&token),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::NO_CONTENT);
        let (s, _) = app.get("/api/v1/users/me", &token).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn only_admins_manage_users_and_other_peoples_tokens() {
    for app in apps().await {
        let (_, worker) = app.user("w", "worker").await;
        let (s, v) = app
            .post("/api/v1/users", &worker, json!({"name": "x"}))
            .await;
        assert_eq!((s, error_code(&v)), (StatusCode::FORBIDDEN, "forbidden"));
        let (s, _) = app
            .post(
                "/api/v1/tokens",
                &worker,
                json!({"name": "x", "user_id": 1}),
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, _) = app
            .post("/api/v1/workspaces", &worker, json!({"name": "mine"}))
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, v) = app
            .post("/api/v1/users", &app.admin, json!({"name": "w"}))
            .await;
        assert_eq!(
            (s, v["error"]["field"].as_str()),
            (StatusCode::CONFLICT, Some("name"))
        );
        let (s, v) = app
            .post("/api/v1/users", &app.admin, json!({"name": "bad name"}))
            .await;
        assert_eq!(
            (s, v["error"]["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("name"))
        );
        // A disabled user's tokens stop working.
        let (id, t) = app.user("gone", "worker").await;
        let (s, _) = app
            .call(
                "PATCH",
                &format!("/api/v1/users/{id}"),
                Some(&app.admin),
                Some(json!({"disabled": true})),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(
            app.get("/api/v1/users/me", &t).await.0,
            StatusCode::UNAUTHORIZED
        );
    }
}

#[tokio::test]
async fn bad_job_specs_get_a_4xx_naming_the_field() {
    for app in apps().await {
        let (ws, req, _) = app.team("spec", 0).await;
        let path = format!("/api/v1/workspaces/{ws}/jobs");
        let base = json!({"name": "J", "question": "Q ${x}?", "answers": ["A", "B"], "policy": {"k": 2, "n": 3}});
        let cases: Vec<(Value, StatusCode, &str)> = vec![
            (
                json!({"policy": {"k": 4, "n": 3}}),
                StatusCode::UNPROCESSABLE_ENTITY,
                "policy.k",
            ),
            (
                json!({"policy": {"k": "two", "n": 3}}),
                StatusCode::UNPROCESSABLE_ENTITY,
                "policy.k",
            ),
            (
                json!({"colour": "red"}),
                StatusCode::UNPROCESSABLE_ENTITY,
                "colour",
            ),
            (
                json!({"answers": []}),
                StatusCode::UNPROCESSABLE_ENTITY,
                "answers",
            ),
            (
                json!({"answers": ["A", "A"]}),
                StatusCode::UNPROCESSABLE_ENTITY,
                "answers[1]",
            ),
            (
                json!({"policy": {"k": 1, "n": 1, "l": 1}}),
                StatusCode::UNPROCESSABLE_ENTITY,
                "policy.m",
            ),
            (
                json!({"question": "  "}),
                StatusCode::UNPROCESSABLE_ENTITY,
                "question",
            ),
        ];
        for (patch, status, field) in cases {
            let mut body = base.clone();
            for (k, v) in patch.as_object().unwrap() {
                body[k] = v.clone();
            }
            let (s, v) = app.post(&path, &req, body.clone()).await;
            assert_eq!(s, status, "{body} -> {v}");
            assert_eq!(v["error"]["field"].as_str(), Some(field), "{body} -> {v}");
        }
        let mut missing = base.clone();
        missing.as_object_mut().unwrap().remove("question");
        let (s, v) = app.post(&path, &req, missing).await;
        assert_eq!(
            (s, v["error"]["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("question"))
        );
        let r = app
            .client
            .post(format!("{}{path}", app.base))
            .bearer_auth(&req)
            .header("content-type", "application/json")
            .body("{\"name\": ")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert_eq!(error_code(&r.json().await.unwrap()), "bad_json");
    }
}

#[tokio::test]
async fn csv_jsonl_and_label_studio_imports_add_rows_in_order() {
    for app in apps().await {
        let (ws, req, _) = app.team("imp", 0).await;
        let job = app.job(ws, &req, json!({"k": 1, "n": 1})).await;
        let (s, v) = app
            .import_csv(
                job,
                &req,
                "name,city\nAda,London\n\"Grace, R.\",\"New\nYork\"\n",
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        assert_eq!(v["imported"], 2);
        assert_eq!(v["columns"], json!(["name", "city"]));
        let (s, v) = app
            .raw(
                &format!("/api/v1/jobs/{job}/items"),
                &req,
                "application/x-ndjson",
                "{\"name\": \"Alan\", \"age\": 41}\n\n",
            )
            .await;
        assert_eq!((s, &v["imported"]), (StatusCode::CREATED, &json!(1)));
        let (s, v) = app
            .raw(
                &format!("/api/v1/jobs/{job}/items"),
                &req,
                "application/json",
                "[{\"id\": 9, \"data\": {\"name\": \"Edsger\"}}]",
            )
            .await;
        assert_eq!((s, &v["imported"]), (StatusCode::CREATED, &json!(1)));
        let (_, page) = app
            .get(&format!("/api/v1/jobs/{job}/results?limit=10"), &req)
            .await;
        let names: Vec<&str> = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["data"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["Ada", "Grace, R.", "Alan", "Edsger"]);
        assert_eq!(page["items"][1]["data"]["city"], "New\nYork");
        assert_eq!(page["items"][2]["data"]["age"], 41);
        let ids: Vec<i64> = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["_id"].as_i64().unwrap())
            .collect();
        assert_eq!(ids, [1, 2, 3, 4]);
    }
}

#[tokio::test]
async fn a_bad_record_is_refused_with_its_line_and_nothing_is_imported() {
    for app in apps().await {
        let (ws, req, _) = app.team("bad", 0).await;
        let job = app.job(ws, &req, json!({"k": 1, "n": 1})).await;
        let (s, v) = app
            .import_csv(job, &req, "name,city\nAda,London\nGrace\nAlan,Paris\n")
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        assert_eq!(error_code(&v), "bad_record");
        assert_eq!(v["error"]["line"], 3);
        assert!(v["error"]["message"].as_str().unwrap().contains("line 3"));
        let (s, v) = app
            .raw(
                &format!("/api/v1/jobs/{job}/items"),
                &req,
                "application/x-ndjson",
                "{\"a\":1}\n{\"a\":2}\nnot json\n",
            )
            .await;
        assert_eq!(
            (s, &v["error"]["line"]),
            (StatusCode::BAD_REQUEST, &json!(3))
        );
        let (s, v) = app
            .raw(
                &format!("/api/v1/jobs/{job}/items"),
                &req,
                "text/csv",
                "name\n",
            )
            .await;
        assert_eq!(
            (s, error_code(&v)),
            (StatusCode::BAD_REQUEST, "empty_import")
        );
        let (s, v) = app
            .raw(&format!("/api/v1/jobs/{job}/items"), &req, "image/png", "x")
            .await;
        assert_eq!(
            (s, error_code(&v)),
            (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
        );
        assert_eq!(app.progress(job, &req).await["progress"]["tasks"], 0);
    }
}

#[tokio::test]
async fn an_upload_over_the_limit_is_refused_with_413_whether_declared_or_streamed() {
    for app in apps().await {
        let (ws, req, _) = app.team("big", 0).await;
        let job = app.job(ws, &req, json!({"k": 1, "n": 1})).await;
        // Declared: a 2 GB Content-Length is refused before any byte is read.
        let url = app.base.trim_start_matches("http://").to_owned();
        let mut stream = tokio::net::TcpStream::connect(&url).await.unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream
            .write_all(
                format!(
                    "POST /api/v1/jobs/{job}/items HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {req}\r\n\
                     Content-Type: text/csv\r\nContent-Length: 2147483648\r\n\r\nname\n"
                )
                .as_bytes(),
            )
            .await
            .unwrap();
        let mut buf = vec![0u8; 4096];
        let n = stream.read(&mut buf).await.unwrap();
        let head = String::from_utf8_lossy(&buf[..n]);
        assert!(head.starts_with("HTTP/1.1 413"), "{head}");
        assert!(head.contains("payload_too_large"), "{head}");
        // Streamed without a length: refused once the limit is passed.
        let chunks: Vec<Result<Vec<u8>, std::io::Error>> = std::iter::once(Ok(b"name\n".to_vec()))
            .chain((0..40).map(|_| Ok(vec![b'a'; 64 * 1024].into_iter().chain(*b"\n").collect())))
            .collect();
        let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
        let (s, v) = app
            .raw(&format!("/api/v1/jobs/{job}/items"), &req, "text/csv", body)
            .await;
        assert_eq!(
            (s, error_code(&v)),
            (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
        );
        assert_eq!(app.progress(job, &req).await["progress"]["tasks"], 0);
    }
}

#[tokio::test]
async fn two_workers_label_a_job_to_the_end_and_results_and_exports_agree() {
    for app in apps().await {
        let (ws, req, workers) = app.team("flow", 3).await;
        let job = app.job(ws, &req, json!({"k": 2, "n": 3})).await;
        app.import_csv(job, &req, "name\nAda\nParis\nAlan\n").await;
        // Worker 0 says Yes to everything, worker 1 No to Paris only, worker 2 fills in.
        let answer = |w: usize, name: &str| {
            if name == "Paris" && w != 0 {
                "No"
            } else {
                "Yes"
            }
        };
        let mut finished = [false; 3];
        let mut rounds = 0;
        while finished.iter().any(|f| !f) {
            rounds += 1;
            assert!(rounds < 100);
            for (w, token) in workers.iter().enumerate() {
                if finished[w] {
                    continue;
                }
                let (s, v) = app.next(job, token).await;
                match s {
                    StatusCode::OK => {
                        assert_eq!(
                            v["question"],
                            format!(
                                "Is {} a person?",
                                v["assignment"]["data"]["name"].as_str().unwrap()
                            )
                        );
                        let id = v["assignment"]["id"].as_i64().unwrap();
                        let (s, r) = app
                            .submit(
                                id,
                                token,
                                answer(w, v["assignment"]["data"]["name"].as_str().unwrap()),
                            )
                            .await;
                        assert_eq!(s, StatusCode::OK, "{r}");
                    }
                    StatusCode::NO_CONTENT => {}
                    StatusCode::GONE => finished[w] = true,
                    other => panic!("unexpected {other}: {v}"),
                }
            }
        }
        let j = app.progress(job, &req).await;
        assert_eq!(j["finished"], true);
        assert_eq!(j["progress"]["labeled"], 3);
        assert_eq!(j["progress"]["pending_leases"], 0);
        assert_eq!(j["progress"]["answers"], 7);
        assert_eq!(
            j["progress"]["answers_per_worker"]
                .as_array()
                .unwrap()
                .len(),
            3
        );
        let (_, labels) = app
            .text(
                &format!("/api/v1/jobs/{job}/export?format=csv&what=labels"),
                &req,
            )
            .await;
        let lines: Vec<&str> = labels.lines().collect();
        assert_eq!(
            lines[0],
            "_id,label,confidence,votes,aggregated_by,aggregated_label,aggregated_confidence"
        );
        assert_eq!(lines[1], "1,Yes,1.0000,\"{\"\"Yes\"\":2}\",,,");
        assert!(lines[2].starts_with("2,No,0.6667,"), "{}", lines[2]);
        assert_eq!(lines.len(), 4);
        let (_, answers) = app
            .text(
                &format!("/api/v1/jobs/{job}/export?format=csv&what=answers"),
                &req,
            )
            .await;
        assert!(answers.starts_with("_id,worker_id,annotation,"));
        assert_eq!(answers.lines().count(), 8);
        let (_, jsonl) = app
            .text(&format!("/api/v1/jobs/{job}/export?format=jsonl"), &req)
            .await;
        let first: Value = serde_json::from_str(jsonl.lines().next().unwrap()).unwrap();
        assert_eq!(
            (first["_id"].as_i64(), first["label"].as_str()),
            (Some(1), Some("Yes"))
        );
        let (_, ls) = app
            .text(
                &format!("/api/v1/jobs/{job}/export?format=label-studio"),
                &req,
            )
            .await;
        let ls: Value = serde_json::from_str(&ls).unwrap();
        assert_eq!(ls.as_array().unwrap().len(), 3);
        assert_eq!(ls[1]["annotations"].as_array().unwrap().len(), 3);
        let mut choices: Vec<&str> = ls[1]["annotations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["result"][0]["value"]["choices"][0].as_str().unwrap())
            .collect();
        choices.sort();
        assert_eq!(choices, ["No", "No", "Yes"]);
        // Paged results follow the cursor to the end.
        let (_, p1) = app
            .get(&format!("/api/v1/jobs/{job}/results?limit=2"), &req)
            .await;
        assert_eq!(p1["items"].as_array().unwrap().len(), 2);
        let cursor = p1["next_cursor"].as_str().unwrap();
        let (_, p2) = app
            .get(
                &format!("/api/v1/jobs/{job}/results?limit=2&cursor={cursor}"),
                &req,
            )
            .await;
        assert_eq!(p2["items"][0]["_id"], 3);
        assert!(p2["next_cursor"].is_null());
        let (s, v) = app
            .get(&format!("/api/v1/jobs/{job}/results?limit=0"), &req)
            .await;
        assert_eq!(
            (s, v["error"]["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some("limit"))
        );
        let (s, _) = app
            .get(&format!("/api/v1/jobs/{job}/export?format=xml"), &req)
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
    }
}

#[tokio::test]
async fn next_says_wait_while_everything_is_leased_and_gone_when_finished() {
    for app in apps().await {
        let (ws, req, w) = app.team("wait", 3).await;
        let job = app.job(ws, &req, json!({"k": 1, "n": 1})).await;
        let (s, _) = app.next(job, &w[0]).await;
        assert_eq!(s, StatusCode::NO_CONTENT, "an empty job has nothing yet");
        app.import_csv(job, &req, "name\nAda\n").await;
        let (s, a) = app.next(job, &w[0]).await;
        assert_eq!(s, StatusCode::OK);
        let r = app
            .client
            .post(format!("{}/api/v1/jobs/{job}/next", app.base))
            .bearer_auth(&w[1])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        assert_eq!(r.headers()["retry-after"], "5");
        assert!(r.headers().contains_key("x-tutti-reason"));
        // Asking again hands back the same lease.
        let (_, again) = app.next(job, &w[0]).await;
        assert_eq!(
            (again["assignment"]["id"].clone(), again["held"].clone()),
            (a["assignment"]["id"].clone(), json!(true))
        );
        app.submit(a["assignment"]["id"].as_i64().unwrap(), &w[0], "Yes")
            .await;
        let (s, v) = app.next(job, &w[1]).await;
        assert_eq!((s, error_code(&v)), (StatusCode::GONE, "job_finished"));
    }
}

#[tokio::test]
async fn submits_are_idempotent_checked_against_the_options_and_only_for_their_holder() {
    for app in apps().await {
        let (ws, req, w) = app.team("idem", 2).await;
        let job = app.job(ws, &req, json!({"k": 2, "n": 3})).await;
        app.import_csv(job, &req, "name\nAda\n").await;
        let (_, a) = app.next(job, &w[0]).await;
        let id = a["assignment"]["id"].as_i64().unwrap();
        let path = format!("/api/v1/assignments/{id}/submit");
        let (s, v) = app.post(&path, &w[0], json!({"answer": "Maybe"})).await;
        assert_eq!(
            (s, v["error"]["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("answer"))
        );
        let (s, v) = app.post(&path, &w[1], json!({"answer": "Yes"})).await;
        assert_eq!((s, error_code(&v)), (StatusCode::NOT_FOUND, "not_found"));
        let body = json!({"answer": "Yes", "idempotency_key": "abc"});
        let (s, v) = app.post(&path, &w[0], body.clone()).await;
        assert_eq!((s, &v["replayed"]), (StatusCode::OK, &json!(false)));
        let (s, v) = app.post(&path, &w[0], body).await;
        assert_eq!((s, &v["replayed"]), (StatusCode::OK, &json!(true)));
        let (s, v) = app
            .post(
                &path,
                &w[0],
                json!({"answer": "No", "idempotency_key": "other"}),
            )
            .await;
        assert_eq!(
            (s, error_code(&v)),
            (StatusCode::CONFLICT, "already_submitted")
        );
        assert_eq!(app.progress(job, &req).await["progress"]["answers"], 1);
        let (s, _) = app
            .post(&path, &w[0], json!({"answer": "Yes", "extra": 1}))
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    }
}

#[tokio::test]
async fn skip_and_release_give_the_task_back() {
    for app in apps().await {
        let (ws, req, w) = app.team("give", 1).await;
        let job = app.job(ws, &req, json!({"k": 1, "n": 1})).await;
        app.import_csv(job, &req, "name\nAda\nAlan\n").await;
        let (_, a) = app.next(job, &w[0]).await;
        let id = a["assignment"]["id"].as_i64().unwrap();
        let (s, v) = app
            .post(
                &format!("/api/v1/assignments/{id}/skip"),
                &w[0],
                json!(null),
            )
            .await;
        assert_eq!((s, v["status"].as_str()), (StatusCode::OK, Some("skipped")));
        let (_, b) = app.next(job, &w[0]).await;
        assert_eq!(b["assignment"]["_id"], 2);
        let id = b["assignment"]["id"].as_i64().unwrap();
        let (s, _) = app
            .post(
                &format!("/api/v1/assignments/{id}/release"),
                &w[0],
                json!(null),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        let (s, v) = app
            .post(
                &format!("/api/v1/assignments/{id}/release"),
                &w[0],
                json!(null),
            )
            .await;
        assert_eq!((s, error_code(&v)), (StatusCode::CONFLICT, "not_pending"));
        let (s, v) = app.submit(id, &w[0], "Yes").await;
        assert_eq!((s, error_code(&v)), (StatusCode::CONFLICT, "not_pending"));
        let (_, c) = app.next(job, &w[0]).await;
        assert_eq!(c["assignment"]["_id"], 2, "a released task may come back");
    }
}

#[tokio::test]
async fn the_monitor_reopens_an_overdue_lease_and_a_late_submit_is_judged_by_need() {
    for app in apps().await {
        let (ws, req, w) = app.team("late", 2).await;
        let job = app
            .job(ws, &req, json!({"k": 1, "n": 1, "time_limit_secs": 5}))
            .await;
        app.import_csv(job, &req, "name\nAda\nAlan\n").await;
        let (_, a) = app.next(job, &w[0]).await;
        let (_, b) = app.next(job, &w[0]).await;
        assert_eq!(a["assignment"]["id"], b["assignment"]["id"]);
        let (_, other) = app.next(job, &w[1]).await;
        assert_eq!(other["assignment"]["_id"], 2);
        tokio::time::sleep(std::time::Duration::from_millis(5200)).await;
        assert_eq!(
            tutti_server::monitor::sweep(app.store.as_ref())
                .await
                .unwrap(),
            2
        );
        let j = app.progress(job, &req).await;
        assert_eq!(j["progress"]["pending_leases"], 0);
        // Task 1 was reopened and still needs its answer: the late submit counts.
        let (s, v) = app
            .submit(a["assignment"]["id"].as_i64().unwrap(), &w[0], "Yes")
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["assignment"]["late"], true);
        // Task 2 was reopened and leased to someone else: the late submit is refused.
        let (_, c) = app.next(job, &w[0]).await;
        assert_eq!(c["assignment"]["_id"], 2);
        let (s, v) = app
            .submit(other["assignment"]["id"].as_i64().unwrap(), &w[1], "Yes")
            .await;
        assert_eq!((s, error_code(&v)), (StatusCode::CONFLICT, "lease_expired"));
        assert!(v["error"]["message"].as_str().unwrap().contains("expired"));
    }
}

#[tokio::test]
async fn workspaces_are_invisible_to_outsiders_and_roles_are_enforced() {
    for app in apps().await {
        let (ws_a, req_a, wa) = app.team("alpha", 1).await;
        let (ws_b, req_b, wb) = app.team("beta", 1).await;
        let job_a = app.job(ws_a, &req_a, json!({"k": 1, "n": 1})).await;
        app.import_csv(job_a, &req_a, "name\nAda\n").await;
        let (_, lease) = app.next(job_a, &wa[0]).await;
        let assignment = lease["assignment"]["id"].as_i64().unwrap();
        for token in [&wb[0], &req_b] {
            for (method, path) in [
                ("GET", format!("/api/v1/jobs/{job_a}")),
                ("POST", format!("/api/v1/jobs/{job_a}/next")),
                ("GET", format!("/api/v1/jobs/{job_a}/results")),
                ("GET", format!("/api/v1/jobs/{job_a}/export")),
                ("GET", format!("/api/v1/workspaces/{ws_a}")),
                ("GET", format!("/api/v1/workspaces/{ws_a}/jobs")),
                ("GET", format!("/api/v1/workspaces/{ws_a}/members")),
                ("GET", format!("/api/v1/assignments/{assignment}")),
            ] {
                let (s, v) = app.call(method, &path, Some(token), None).await;
                assert_eq!(s, StatusCode::NOT_FOUND, "{method} {path}: {v}");
            }
            let (s, _) = app
                .post(
                    &format!("/api/v1/assignments/{assignment}/submit"),
                    token,
                    json!({"answer": "Yes"}),
                )
                .await;
            assert_eq!(s, StatusCode::NOT_FOUND);
            let (_, mine) = app.get("/api/v1/me/jobs", token).await;
            assert!(
                mine["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|j| j["job_id"] != job_a)
            );
            let (_, list) = app.get("/api/v1/workspaces", token).await;
            assert!(
                list["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|w| w["id"] != ws_a)
            );
        }
        // Inside the workspace, a worker works but does not manage.
        let (s, v) = app.get(&format!("/api/v1/jobs/{job_a}"), &wa[0]).await;
        assert_eq!((s, error_code(&v)), (StatusCode::FORBIDDEN, "forbidden"));
        let (s, _) = app
            .raw(
                &format!("/api/v1/jobs/{job_a}/items"),
                &wa[0],
                "text/csv",
                "name\nX\n",
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let spec =
            json!({"name": "J", "question": "Q", "answers": ["A"], "policy": {"k": 1, "n": 1}});
        let (s, _) = app
            .post(&format!("/api/v1/workspaces/{ws_a}/jobs"), &wa[0], spec)
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (_, mine) = app.get("/api/v1/me/jobs", &wa[0]).await;
        assert_eq!(mine["items"][0]["job_id"], job_a);
        // A requester cannot make an admin of their workspace; the admin can.
        let (uid, _) = app.user("promo", "worker").await;
        let (s, _) = app
            .call(
                "PUT",
                &format!("/api/v1/workspaces/{ws_b}/members/{uid}"),
                Some(&req_b),
                Some(json!({"role": "admin"})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "a workspace's creator is its admin");
        let (s, v) = app
            .call(
                "PUT",
                &format!("/api/v1/workspaces/{ws_b}/members/{uid}"),
                Some(&req_b),
                Some(json!({"role": "boss"})),
            )
            .await;
        assert_eq!(
            (s, v["error"]["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("role"))
        );
        let (s, v) = app.get("/api/v1/jobs/999999", &app.admin).await;
        assert_eq!((s, error_code(&v)), (StatusCode::NOT_FOUND, "not_found"));
        let (s, _) = app.get("/api/v1/jobs/not-a-number", &app.admin).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn stewards_decide_apart_from_workers_over_the_api() {
    for app in apps().await {
        let (ws, req, w) = app.team("knlm", 1).await;
        let (sid, steward) = app.user("knlm-steward", "steward").await;
        app.call(
            "PUT",
            &format!("/api/v1/workspaces/{ws}/members/{sid}"),
            Some(&req),
            Some(json!({"role": "steward"})),
        )
        .await;
        let job = app
            .job(ws, &req, json!({"k": 2, "n": 2, "l": 1, "m": 1}))
            .await;
        app.import_csv(job, &req, "name\nAda\n").await;
        let (_, a) = app.next(job, &w[0]).await;
        let (_, s) = app.next(job, &steward).await;
        assert_eq!(s["assignment"]["side"], "steward");
        app.submit(a["assignment"]["id"].as_i64().unwrap(), &w[0], "No")
            .await;
        let (_, v) = app
            .submit(s["assignment"]["id"].as_i64().unwrap(), &steward, "Yes")
            .await;
        assert_eq!(v["task_state"], "labeled");
        let (_, r) = app.get(&format!("/api/v1/jobs/{job}/results"), &req).await;
        assert_eq!(
            (
                r["items"][0]["label"].as_str(),
                r["items"][0]["decided_by"].as_str()
            ),
            (Some("Yes"), Some("steward"))
        );
    }
}

#[tokio::test]
async fn many_concurrent_workers_over_http_never_over_lease_a_task() {
    for app in apps().await {
        let (ws, req, workers) = app.team("crowd", 16).await;
        let job = app.job(ws, &req, json!({"k": 2, "n": 3})).await;
        let mut csv = String::from("name\n");
        for i in 0..60 {
            csv.push_str(&format!("item {i}\n"));
        }
        app.import_csv(job, &req, &csv).await;
        let app = Arc::new(app);
        let mut handles = Vec::new();
        for (w, token) in workers.into_iter().enumerate() {
            let app = app.clone();
            handles.push(tokio::spawn(async move {
                for _ in 0..1000 {
                    let (s, v) = app.next(job, &token).await;
                    match s {
                        StatusCode::OK => {
                            let seq = v["assignment"]["_id"].as_i64().unwrap();
                            let answer = if (seq + w as i64) % 4 == 0 {
                                "No"
                            } else {
                                "Yes"
                            };
                            let (s, _) = app
                                .submit(v["assignment"]["id"].as_i64().unwrap(), &token, answer)
                                .await;
                            assert_eq!(s, StatusCode::OK);
                        }
                        StatusCode::NO_CONTENT => {
                            tokio::time::sleep(std::time::Duration::from_millis(5)).await
                        }
                        StatusCode::GONE => return,
                        other => panic!("{other}: {v}"),
                    }
                }
                panic!("worker never finished");
            }));
        }
        for h in handles {
            h.await.unwrap();
        }
        assert_over_lease_free(&app, job, &req).await;
    }
}

async fn assert_over_lease_free(app: &TestApp, job: i64, req: &str) {
    let (_, r) = app
        .get(&format!("/api/v1/jobs/{job}/results?limit=1000"), req)
        .await;
    for item in r["items"].as_array().unwrap() {
        assert_ne!(item["state"], "open");
        let votes: Vec<i64> = item["votes"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_i64().unwrap())
            .collect();
        let total: i64 = votes.iter().sum();
        assert!(
            total <= 3 && votes.iter().all(|v| *v <= 2),
            "task {} over-leased: {}",
            item["_id"],
            item["votes"]
        );
    }
}

#[tokio::test]
async fn two_servers_on_one_postgres_database_never_over_lease_a_task() {
    let Some(url) = tutti_store::testing::fresh_postgres_url().await.unwrap() else {
        eprintln!("skipped: set TUTTI_TEST_POSTGRES_URL to run the two-process test");
        return;
    };
    let app = spawn_on(tutti_store::connect(&url).await.unwrap()).await;
    // A second server process's view: its own store (own pool) on the same database.
    let second = spawn_server(tutti_store::connect(&url).await.unwrap()).await;
    let (ws, req, workers) = app.team("twin", 12).await;
    let job = app.job(ws, &req, json!({"k": 2, "n": 3})).await;
    let mut csv = String::from("name\n");
    for i in 0..40 {
        csv.push_str(&format!("item {i}\n"));
    }
    app.import_csv(job, &req, &csv).await;
    let mut handles = Vec::new();
    for (w, token) in workers.into_iter().enumerate() {
        let base = if w % 2 == 0 {
            app.base.clone()
        } else {
            second.clone()
        };
        let client = reqwest::Client::new();
        handles.push(tokio::spawn(async move {
            for _ in 0..1000 {
                let r = client
                    .post(format!("{base}/api/v1/jobs/{job}/next"))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .unwrap();
                match r.status() {
                    StatusCode::OK => {
                        let v: Value = r.json().await.unwrap();
                        let answer =
                            if (v["assignment"]["_id"].as_i64().unwrap() + w as i64) % 4 == 0 {
                                "No"
                            } else {
                                "Yes"
                            };
                        let id = v["assignment"]["id"].as_i64().unwrap();
                        let r = client
                            .post(format!("{base}/api/v1/assignments/{id}/submit"))
                            .bearer_auth(&token)
                            .json(&json!({"answer": answer}))
                            .send()
                            .await
                            .unwrap();
                        assert_eq!(r.status(), StatusCode::OK);
                    }
                    StatusCode::NO_CONTENT => {
                        tokio::time::sleep(std::time::Duration::from_millis(5)).await
                    }
                    StatusCode::GONE => return,
                    other => panic!("{other}"),
                }
            }
            panic!("worker never finished");
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    assert_over_lease_free(&app, job, &req).await;
}

#[tokio::test]
async fn the_openapi_document_and_the_docs_page_are_served() {
    for app in apps().await {
        let (s, spec) = app.call("GET", "/api/openapi.json", None, None).await;
        assert_eq!(s, StatusCode::OK);
        for path in [
            "/api/v1/jobs/{id}/next",
            "/api/v1/assignments/{id}/submit",
            "/api/v1/jobs/{id}/items",
            "/api/v1/jobs/{id}/export",
            "/api/v1/jobs/{id}/aggregate",
            "/api/v1/jobs/{id}/workers",
        ] {
            assert!(
                spec["paths"].get(path).is_some(),
                "{path} missing from the spec"
            );
        }
        for schema in [
            "JobSpec",
            "GoldSpec",
            "AdaptiveSpec",
            "AggregationSummary",
            "WorkerQuality",
        ] {
            assert!(
                spec["components"]["schemas"].get(schema).is_some(),
                "{schema} missing from the spec"
            );
        }
        let r = app
            .client
            .get(format!("{}/docs/", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert!(r.text().await.unwrap().contains("swagger"));
    }
}

#[tokio::test]
async fn the_worker_page_signs_in_shows_a_task_escaped_and_takes_an_answer() {
    for app in apps().await {
        let (ws, req, w) = app.team("web", 1).await;
        let job = app.job(ws, &req, json!({"k": 1, "n": 1})).await;
        app.import_csv(job, &req, "name\n<script>alert(1)</script>\nAda\n")
            .await;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let r = client
            .get(format!("{}/work/{job}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::SEE_OTHER,
            "unsigned visitors go to the sign-in page"
        );
        let r = web_login(&client, &app.base, &[("token", "wrong")]).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let r = web_login(&client, &app.base, &[("token", w[0].as_str())]).await;
        let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
        let cookie = cookie.split(';').next().unwrap().to_owned();
        let page = client
            .get(format!("{}/work/{job}", app.base))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert!(
            page.headers()["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("script-src 'self'")
        );
        let html = page.text().await.unwrap();
        assert!(
            !html.contains("<script>alert(1)</script>"),
            "row values must be escaped"
        );
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(
            html.contains("<b>Be quick</b>"),
            "instructions are the requester's HTML"
        );
        assert!(html.contains("data-key=\"1\""));
        let action = html
            .split("action=\"/work/")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let csrf = html
            .split("name=\"csrf\" value=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let url = format!("{}/work/{action}", app.base);
        let bad = client
            .post(&url)
            .header("cookie", &cookie)
            .form(&[("csrf", "forged"), ("action", "submit"), ("answer", "No")])
            .send()
            .await
            .unwrap();
        assert_eq!(bad.status(), StatusCode::FORBIDDEN);
        let ok = client
            .post(&url)
            .header("cookie", &cookie)
            .form(&[("csrf", csrf), ("action", "submit"), ("answer", "No")])
            .send()
            .await
            .unwrap();
        assert_eq!(ok.status(), StatusCode::SEE_OTHER);
        let (_, r) = app.get(&format!("/api/v1/jobs/{job}/results"), &req).await;
        assert_eq!(r["items"][0]["label"], "No");
        assert!(html.contains("you answered today (UTC): <b id=\"answered-today\">0</b>"));
        let next = client
            .get(format!("{}/work/{job}", app.base))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            next.contains("you answered today (UTC): <b id=\"answered-today\">1</b>"),
            "{next}"
        );
        // The API never takes the cookie as a credential.
        let r = client
            .get(format!("{}/api/v1/users/me", app.base))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
}

/// How a simulated worker answers, given the row's `truth` column.
type Answerer = fn(&str) -> &str;

/// Every worker answers every task they are offered, by their answerer.
async fn work_through(app: &TestApp, job: i64, workers: &[(String, Answerer)]) {
    for (token, answer) in workers {
        loop {
            let (s, v) = app.next(job, token).await;
            if s != StatusCode::OK {
                break;
            }
            let truth = v["assignment"]["data"]["truth"]
                .as_str()
                .unwrap()
                .to_owned();
            let id = v["assignment"]["id"].as_i64().unwrap();
            let (s, r) = app.submit(id, token, answer(&truth)).await;
            assert_eq!(s, StatusCode::OK, "{r}");
        }
    }
}

#[tokio::test]
async fn a_job_is_re_aggregated_by_a_chosen_method_and_reports_its_workers() {
    for app in apps().await {
        let (ws, req, w) = app.team("quality", 4).await;
        // All four must agree: a task where one says otherwise stays
        // undecided under the agreement rule.
        let job = app
            .job(ws, &req, json!({"k": 4, "n": 4, "aggregation": "ds"}))
            .await;
        let (s, v) = app
            .post(&format!("/api/v1/jobs/{job}/aggregate"), &req, json!({}))
            .await;
        assert_eq!(
            (s, error_code(&v)),
            (StatusCode::CONFLICT, "no_answers"),
            "{v}"
        );
        let mut csv = String::from("name,truth\n");
        for i in 0..8 {
            csv.push_str(&format!("p{i},{}\n", if i % 2 == 0 { "Yes" } else { "No" }));
        }
        let (s, v) = app.import_csv(job, &req, &csv).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let careful: Answerer = |t| if t == "Yes" { "Yes" } else { "No" };
        let naysayer: Answerer = |_| "No";
        let workers: Vec<(String, Answerer)> = vec![
            (w[0].clone(), careful),
            (w[1].clone(), careful),
            (w[2].clone(), careful),
            (w[3].clone(), naysayer),
        ];
        work_through(&app, job, &workers).await;

        // The background refresh re-aggregates the job by its own method
        // once, and not again until new answers come.
        let refreshed = tutti_server::quality::refresh(app.store.as_ref(), 0)
            .await
            .unwrap();
        assert!(refreshed >= 1);
        let (s, info) = app
            .get(&format!("/api/v1/jobs/{job}/aggregate"), &req)
            .await;
        assert_eq!(
            (s, info["answers"].as_i64()),
            (StatusCode::OK, Some(32)),
            "{info}"
        );
        let jobs = app.store.jobs_with_new_answers().await.unwrap();
        assert!(!jobs.iter().any(|j| j.0 == job), "{jobs:?}");

        // Bad input first: an unknown method names the field.
        let (s, v) = app
            .post(
                &format!("/api/v1/jobs/{job}/aggregate"),
                &req,
                json!({"method": "best"}),
            )
            .await;
        assert_eq!(
            (s, v["error"]["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("method")),
            "{v}"
        );
        let (s, v) = app
            .post(
                &format!("/api/v1/jobs/{job}/aggregate"),
                &w[0],
                json!({"method": "mv"}),
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{v}");

        // The job's own method (Dawid-Skene) decides the four disputed tasks.
        let (s, summary) = app
            .post(&format!("/api/v1/jobs/{job}/aggregate"), &req, json!({}))
            .await;
        assert_eq!(s, StatusCode::OK, "{summary}");
        assert_eq!(summary["method"], "ds");
        assert_eq!(summary["tasks"], 8);
        assert_eq!(summary["labeled"], 8);
        assert_eq!(summary["answers"], 32);
        assert_eq!(summary["changed"], 0, "agreed labels stay: {summary}");
        // Mostly agreeing answers with four disputes: agreement beyond
        // chance, well above 0 and below 1.
        for measure in ["fleiss_kappa", "krippendorff_alpha"] {
            let v = summary[measure].as_f64().unwrap();
            assert!(v > 0.2 && v < 1.0, "{measure}: {summary}");
        }
        let (s, info) = app
            .get(&format!("/api/v1/jobs/{job}/aggregate"), &req)
            .await;
        assert_eq!(
            (s, info["method"].as_str()),
            (StatusCode::OK, Some("ds")),
            "{info}"
        );

        let (_, page) = app.get(&format!("/api/v1/jobs/{job}/results"), &req).await;
        for r in page["items"].as_array().unwrap() {
            let truth = r["data"]["truth"].as_str().unwrap();
            assert_eq!(r["aggregate"]["label"].as_str(), Some(truth), "{r}");
            assert_eq!(r["aggregate"]["method"], "ds");
            let live = if truth == "Yes" {
                "undecided"
            } else {
                "labeled"
            };
            assert_eq!(r["state"], live, "{r}");
        }
        let (_, csv) = app.text(&format!("/api/v1/jobs/{job}/export"), &req).await;
        assert!(
            csv.lines().nth(1).unwrap().ends_with(",ds,Yes,1.0000"),
            "{csv}"
        );

        // k-of-n over all answers with k=4 leaves the disputed tasks undecided.
        let (_, summary) = app
            .post(
                &format!("/api/v1/jobs/{job}/aggregate"),
                &req,
                json!({"method": "kofn"}),
            )
            .await;
        assert_eq!(
            (summary["labeled"].as_i64(), summary["undecided"].as_i64()),
            (Some(4), Some(4)),
            "{summary}"
        );

        // The worker report: the naysayer agrees with the labels on the
        // four tasks agreement labeled, like everyone, but the fit rates
        // them lower.
        let (_, summary) = app
            .post(
                &format!("/api/v1/jobs/{job}/aggregate"),
                &req,
                json!({"method": "onecoin"}),
            )
            .await;
        assert_eq!(summary["method"], "onecoin");
        let (s, report) = app.get(&format!("/api/v1/jobs/{job}/workers"), &req).await;
        assert_eq!(s, StatusCode::OK, "{report}");
        let rows = report.as_array().unwrap();
        assert_eq!(rows.len(), 4);
        for r in rows {
            assert_eq!(r["answers"], 8, "{r}");
            assert_eq!(r["agreement"], 1.0, "{r}");
            assert_eq!(r["skill_method"], "onecoin");
            assert!(r["mean_seconds"].as_f64().unwrap() >= 0.0);
        }
        let skill = |i: usize| rows[i]["skill"].as_f64().unwrap();
        assert!(skill(3) < skill(0) && skill(3) < 0.75, "{report}");
        let (s, csv) = app
            .text(&format!("/api/v1/jobs/{job}/workers?format=csv"), &req)
            .await;
        assert_eq!(s, StatusCode::OK);
        assert!(
            csv.starts_with("worker_id,worker_name,answers,skipped,abandoned,agreement"),
            "{csv}"
        );
        assert_eq!(csv.lines().count(), 5);
        let (s, v) = app
            .get(&format!("/api/v1/jobs/{job}/workers?format=xml"), &req)
            .await;
        assert_eq!(
            (s, v["error"]["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some("format"))
        );
    }
}

#[tokio::test]
async fn control_questions_give_feedback_and_stop_a_failing_worker_whose_answers_are_excluded() {
    for app in apps().await {
        let (ws, req, w) = app.team("gold", 2).await;
        let job = app
            .job(
                ws,
                &req,
                json!({"k": 2, "n": 3,
                       "gold": {"rate": 0.5, "min_answers": 2, "min_accuracy": 0.6}}),
            )
            .await;
        // A known answer outside the options is refused, naming the row.
        let (s, v) = app
            .import_csv(job, &req, "name,_gold\nAda,\nBob,Maybe\n")
            .await;
        assert_eq!(
            (s, error_code(&v)),
            (StatusCode::BAD_REQUEST, "bad_record"),
            "{v}"
        );
        assert_eq!(v["error"]["field"], "_gold");
        assert!(
            v["error"]["message"].as_str().unwrap().contains("row 2"),
            "{v}"
        );
        let (s, v) = app
            .import_csv(
                job,
                &req,
                "name,_gold\nAda,\nBob,\nGold 1,Yes\nGold 2,Yes\n",
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let progress = app.progress(job, &req).await;
        assert_eq!(progress["progress"]["tasks"], 2, "{progress}");
        assert_eq!(progress["progress"]["gold_tasks"], 2, "{progress}");

        let (good, bad) = (&w[0], &w[1]);
        let answer = |v: &Value| v["assignment"]["id"].as_i64().unwrap();
        // The first task of each worker is a control question; its known
        // answer is not in the data they see.
        let (_, t) = app.next(job, bad).await;
        assert_eq!(t["assignment"]["data"]["name"], "Gold 1", "{t}");
        assert!(t["assignment"]["data"].get("_gold").is_none(), "{t}");
        let (s, r) = app.submit(answer(&t), bad, "No").await;
        assert_eq!(s, StatusCode::OK, "{r}");
        assert_eq!(
            r["gold"],
            json!({"correct": false, "expected": "Yes"}),
            "{r}"
        );
        // Then an open task.
        let (_, t) = app.next(job, bad).await;
        assert_eq!(t["assignment"]["data"]["name"], "Ada", "{t}");
        let (_, r) = app.submit(answer(&t), bad, "No").await;
        assert!(r.get("gold").is_none(), "{r}");
        // The careful worker agrees on Ada, which labels it.
        let (_, t) = app.next(job, good).await;
        let (_, r) = app.submit(answer(&t), good, "Yes").await;
        assert_eq!(r["gold"]["correct"], true, "{r}");
        let (_, t) = app.next(job, good).await;
        assert_eq!(t["assignment"]["data"]["name"], "Ada", "{t}");
        let (_, r) = app.submit(answer(&t), good, "No").await;
        assert_eq!(r["task_state"], "labeled", "{r}");

        // A second wrong control answer stops the bad worker; their answer
        // on Ada leaves the count and Ada opens again.
        let (_, t) = app.next(job, bad).await;
        assert_eq!(t["assignment"]["data"]["name"], "Gold 2", "{t}");
        let (_, r) = app.submit(answer(&t), bad, "No").await;
        assert_eq!(r["stopped"], true, "{r}");
        let (s, v) = app.next(job, bad).await;
        assert_eq!(
            (s, error_code(&v)),
            (StatusCode::FORBIDDEN, "worker_stopped"),
            "{v}"
        );
        assert!(
            v["error"]["message"].as_str().unwrap().contains("0 of 2"),
            "{v}"
        );
        let (_, page) = app.get(&format!("/api/v1/jobs/{job}/results"), &req).await;
        let ada = &page["items"][0];
        assert_eq!(
            (ada["state"].as_str(), ada["votes"].clone()),
            (Some("open"), json!({"No": 1})),
            "{ada}"
        );

        let (_, report) = app.get(&format!("/api/v1/jobs/{job}/workers"), &req).await;
        let rows = report.as_array().unwrap();
        let row = |name: &str| {
            rows.iter()
                .find(|r| r["worker_name"] == name)
                .unwrap()
                .clone()
        };
        let (g, b) = (row("gold-w0"), row("gold-w1"));
        assert_eq!(
            (g["gold_seen"].as_i64(), g["gold_accuracy"].as_f64()),
            (Some(1), Some(1.0)),
            "{g}"
        );
        assert!(g["stopped_at"].is_null());
        assert_eq!(
            (b["gold_seen"].as_i64(), b["gold_accuracy"].as_f64()),
            (Some(2), Some(0.0)),
            "{b}"
        );
        assert!(b["stopped_at"].is_string(), "{b}");
        // The CSV report carries the same control-question record.
        let (s, csv) = app
            .text(&format!("/api/v1/jobs/{job}/workers?format=csv"), &req)
            .await;
        assert_eq!(s, StatusCode::OK, "{csv}");
        let mut lines = csv.lines();
        let header: Vec<&str> = lines.next().unwrap().split(',').collect();
        let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
        let line = |who: &str| {
            lines
                .clone()
                .map(|l| l.split(',').collect::<Vec<_>>())
                .find(|f| f[col("worker_name")] == who)
                .unwrap()
        };
        let (gc, bc) = (line("gold-w0"), line("gold-w1"));
        assert_eq!(
            (
                gc[col("gold_seen")],
                gc[col("gold_correct")],
                gc[col("gold_accuracy")],
                gc[col("stopped_at")]
            ),
            ("1", "1", "1.0000", "")
        );
        assert_eq!(
            (
                bc[col("gold_seen")],
                bc[col("gold_correct")],
                bc[col("gold_accuracy")]
            ),
            ("2", "0", "0.0000")
        );
        assert_eq!(Some(bc[col("stopped_at")]), b["stopped_at"].as_str());

        // Re-aggregation labels the job's tasks, not its control questions:
        // the one answer left is the careful worker's on Ada.
        let (s, summary) = app
            .post(
                &format!("/api/v1/jobs/{job}/aggregate"),
                &req,
                json!({"method": "mv"}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{summary}");
        assert_eq!(
            (
                summary["tasks"].as_i64(),
                summary["answers"].as_i64(),
                summary["workers"].as_i64()
            ),
            (Some(1), Some(1), Some(1)),
            "{summary}"
        );
        // One answer is nothing to agree on.
        assert!(summary["fleiss_kappa"].is_null(), "{summary}");
    }
}

/// A requester, `workers` workers and an adaptive job: confidence 0.9,
/// two to four answers a task.
async fn adaptive_team(
    app: &TestApp,
    name: &str,
    workers: usize,
) -> (i64, String, Vec<String>, i64) {
    let (ws, req, w) = app.team(name, workers).await;
    let job = app
        .job(
            ws,
            &req,
            json!({"k": 2, "n": 5, "adaptive": {"confidence": 0.9, "min": 2, "max": 4}}),
        )
        .await;
    (ws, req, w, job)
}

#[tokio::test]
async fn under_adaptive_redundancy_a_worker_who_always_says_yes_adds_next_to_nothing() {
    for app in apps().await {
        let (_, req, w, job) = adaptive_team(&app, "yes-man", 3).await;
        let mut rows = String::from("name\n");
        for i in 0..10 {
            rows.push_str(&format!("y{i}\n"));
        }
        rows.push_str("n0\nn1\n");
        let (s, v) = app.import_csv(job, &req, &rows).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        // Two careful workers answer the truth, the third "Yes" to all.
        let answer = |worker: usize, t: &Value| {
            let name = t["assignment"]["data"]["name"].as_str().unwrap().to_owned();
            if worker == 2 || name.starts_with('y') {
                "Yes"
            } else {
                "No"
            }
        };
        let answer_all = |worker: usize| {
            let (app, token) = (&app, &w[worker]);
            async move {
                let mut n = 0;
                loop {
                    let (s, t) = app.next(job, token).await;
                    if s != StatusCode::OK {
                        return n;
                    }
                    let id = t["assignment"]["id"].as_i64().unwrap();
                    let (s, r) = app.submit(id, token, answer(worker, &t)).await;
                    assert_eq!(s, StatusCode::OK, "{r}");
                    n += 1;
                }
            }
        };
        for worker in 0..3 {
            assert_eq!(answer_all(worker).await, 12, "worker {worker}");
        }
        // Dawid-Skene learns that the third worker's "Yes" comes whatever
        // the truth.
        let (s, v) = app
            .post(
                &format!("/api/v1/jobs/{job}/aggregate"),
                &req,
                json!({"method": "ds"}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let (s, v) = app.import_csv(job, &req, "name\ny10\n").await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let state = || async {
            let (_, page) = app
                .get(&format!("/api/v1/jobs/{job}/results?limit=100"), &req)
                .await;
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["data"]["name"] == "y10")
                .cloned()
                .unwrap()
        };
        // The yes-man's "Yes" and one careful "Yes": about 0.89 (a
        // one-coin accuracy would have counted the yes-man right 10 times
        // in 12 and settled it); a second careful "Yes" settles it.
        assert_eq!(answer_all(2).await, 1);
        assert_eq!(answer_all(0).await, 1);
        let y10 = state().await;
        assert_eq!(y10["state"], "open", "{y10}");
        assert_eq!(answer_all(1).await, 1);
        let y10 = state().await;
        assert_eq!(
            (y10["state"].as_str(), y10["label"].as_str()),
            (Some("labeled"), Some("Yes")),
            "{y10}"
        );
        assert!(y10["confidence"].as_f64().unwrap() > 0.97, "{y10}");
    }
}

#[tokio::test]
async fn under_adaptive_redundancy_the_next_answer_goes_where_it_tells_most() {
    for app in apps().await {
        let (_, req, w, job) = adaptive_team(&app, "tells-most", 3).await;
        let (s, v) = app.import_csv(job, &req, "name\nA\nB\nC\n").await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let take = |token: usize| {
            let app = &app;
            let token = &w[token];
            async move {
                let (s, t) = app.next(job, token).await;
                assert_eq!(s, StatusCode::OK, "{t}");
                (
                    t["assignment"]["data"]["name"].as_str().unwrap().to_owned(),
                    t["assignment"]["id"].as_i64().unwrap(),
                )
            }
        };
        let answer = |token: usize, id: i64, a: &'static str| {
            let app = &app;
            let token = &w[token];
            async move {
                let (s, r) = app.submit(id, token, a).await;
                assert_eq!(s, StatusCode::OK, "{r}");
            }
        };
        // Nothing started: tasks begin in row order.
        let (name, id) = take(0).await;
        assert_eq!(name, "A");
        answer(0, id, "Yes").await;
        // A started task comes before a new one.
        let (name, id) = take(1).await;
        assert_eq!(name, "A");
        answer(1, id, "Yes").await;
        let (name, id) = take(0).await;
        assert_eq!(name, "B");
        answer(0, id, "Yes").await;
        let (name, id) = take(1).await;
        assert_eq!(name, "B");
        answer(1, id, "No").await;
        // A (two agreeing answers, 0.845) and B (split, 0.5) both need
        // another; the third worker's answer tells more on B, later in
        // row order.
        let (name, id) = take(2).await;
        assert_eq!(name, "B");
        answer(2, id, "Yes").await;
        let (name, _) = take(2).await;
        assert_eq!(name, "A");
    }
}

#[tokio::test]
async fn adaptive_redundancy_takes_answers_only_while_the_label_is_uncertain() {
    for app in apps().await {
        let (ws, req, w, job) = adaptive_team(&app, "adaptive", 4).await;
        let (_, j) = app.get(&format!("/api/v1/jobs/{job}"), &req).await;
        assert_eq!(j["policy"]["aggregation"], "ds", "{j}");
        let (s, v) = app.import_csv(job, &req, "name\nA\nB\n").await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        // Per worker: their answers to A and B, in the order offered.
        let plan: [(&str, &str); 4] = [("Yes", "Yes"), ("Yes", "No"), ("Yes", "Yes"), ("", "No")];
        for (token, (on_a, on_b)) in w.iter().zip(plan) {
            loop {
                let (s, t) = app.next(job, token).await;
                if s != StatusCode::OK {
                    break;
                }
                let answer = if t["assignment"]["data"]["name"] == "A" {
                    on_a
                } else {
                    on_b
                };
                assert!(
                    !answer.is_empty(),
                    "A was offered after it was decided: {t}"
                );
                let id = t["assignment"]["id"].as_i64().unwrap();
                let (s, r) = app.submit(id, token, answer).await;
                assert_eq!(s, StatusCode::OK, "{r}");
            }
        }
        let (_, page) = app.get(&format!("/api/v1/jobs/{job}/results"), &req).await;
        let (a, b) = (&page["items"][0], &page["items"][1]);
        // A: two agreeing answers of 0.7-accurate newcomers give 0.845, a
        // third gives 0.927 and decides it.
        assert_eq!(
            (a["state"].as_str(), a["label"].as_str()),
            (Some("labeled"), Some("Yes")),
            "{a}"
        );
        assert_eq!(a["votes"], json!({"Yes": 3}));
        let c = a["confidence"].as_f64().unwrap();
        assert!((c - 0.343 / 0.37).abs() < 1e-6, "{c}");
        // B: split two to two at the maximum of four; the likelier label
        // is taken with its low confidence.
        assert_eq!(b["votes"], json!({"Yes": 2, "No": 2}), "{b}");
        assert_eq!(b["state"], "labeled", "{b}");
        assert!(
            (b["confidence"].as_f64().unwrap() - 0.5).abs() < 1e-9,
            "{b}"
        );
        // Bad settings name their field.
        let (s, v) = app
            .post(
                &format!("/api/v1/workspaces/{ws}/jobs"),
                &req,
                json!({"name": "X", "question": "?", "answers": ["Yes", "No"],
                       "policy": {"k": 2, "n": 3, "adaptive": {"confidence": 1.2}}}),
            )
            .await;
        assert_eq!(
            (s, v["error"]["field"].as_str()),
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                Some("policy.adaptive.confidence")
            ),
            "{v}"
        );
    }
}

#[tokio::test]
async fn the_worker_page_shows_control_question_feedback_after_a_submit() {
    for app in apps().await {
        let (ws, req, w) = app.team("webgold", 1).await;
        let job = app
            .job(
                ws,
                &req,
                json!({"k": 1, "n": 1, "gold": {"rate": 0.5, "min_answers": 10}}),
            )
            .await;
        app.import_csv(job, &req, "name,_gold\nAda,\nControl,No\n")
            .await;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let r = web_login(&client, &app.base, &[("token", w[0].as_str())]).await;
        let cookie = r.headers()["set-cookie"].to_str().unwrap();
        let cookie = cookie.split(';').next().unwrap().to_owned();
        let html = client
            .get(format!("{}/work/{job}", app.base))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            html.contains("Control"),
            "the first task is the control question"
        );
        assert!(!html.contains("notice"), "no feedback before any answer");
        let field = |name: &str| {
            html.split(&format!("name=\"{name}\" value=\""))
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap()
                .to_owned()
        };
        let action = html
            .split("action=\"/work/")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let r = client
            .post(format!("{}/work/{action}", app.base))
            .header("cookie", &cookie)
            .form(&[
                ("csrf", field("csrf").as_str()),
                ("action", "submit"),
                ("answer", "Yes"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let location = r.headers()["location"].to_str().unwrap().to_owned();
        assert!(
            location.starts_with(&format!("/work/{job}?last="))
                && location.ends_with("&gold=wrong&expected=No"),
            "{location}"
        );
        let html = client
            .get(format!("{}{location}", app.base))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            html.contains("That was a control question; its answer is <b>No</b>."),
            "{html}"
        );
        assert!(html.contains("Ada"), "then the next task");
        assert!(
            html.contains("control questions right: 0 of 1 (0%)"),
            "the worker sees their own control-question record: {html}"
        );
    }
}
