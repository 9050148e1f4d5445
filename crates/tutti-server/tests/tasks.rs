//! The Audience task API against the real server: a client written to the
//! Audience README sends its requests unchanged and gets its shapes and
//! codes back. Input and output are SQLite files named by schema; the
//! store is SQLite, and PostgreSQL too when TUTTI_TEST_POSTGRES_URL is set.

mod common;

use common::{TestApp, spawn_on, spawn_settings, test_dir};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;
use tutti_server::Settings;
use tutti_server::tasks::LabelingSettings;

const PATTERNS: &str = "label,pattern\n/female,mary\n/female,ann\n/male,john\n/male,林超\n";

fn write_posts(path: &Path, n: usize) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(
        "CREATE TABLE posts (id TEXT, source TEXT, author_name TEXT, content TEXT, create_time TEXT)",
    )
    .unwrap();
    let names = [
        "Mary Smith",
        "John Doe",
        "Kuan Vera",
        "林超哥",
        "Ann Lee",
        "Nobody",
    ];
    for i in 0..n {
        conn.execute(
            "INSERT INTO posts VALUES (?1, ?2, ?3, 'x', ?4)",
            rusqlite::params![
                format!("{i:06}_FB"),
                format!("WH_F{:04}", i % 5),
                names[i % names.len()],
                format!("2020-{:02}-01 00:00:{:02}", 1 + i % 12, i % 60),
            ],
        )
        .unwrap();
    }
}

/// A server whose labeling reads `{schema}.db` and writes `out_{schema}.db`
/// in a fresh folder.
async fn labeling_app(store_url: &str, open: bool) -> (TestApp, std::path::PathBuf) {
    let dir = test_dir("tasks");
    write_posts(&dir.join("wh_fb_ex.db"), 600);
    let patterns = dir.join("patterns");
    std::fs::create_dir_all(&patterns).unwrap();
    std::fs::write(patterns.join("keyword_model.csv"), PATTERNS).unwrap();
    let store = tutti_store::connect(store_url).await.unwrap();
    let mut app = spawn_on(store.clone()).await;
    let settings = Settings {
        monitor_interval: None,
        runs_dir: dir.join("runs"),
        labeling: Some(LabelingSettings {
            input_url: format!("sqlite://{}/{{schema}}.db", dir.display()),
            output_url: format!("sqlite://{}/out_{{schema}}.db", dir.display()),
            input_schema: None,
            output_schema: None,
            patterns_dir: patterns,
            open,
        }),
        ..Settings::default()
    };
    app.base = spawn_settings(store, settings).await;
    (app, dir)
}

fn seed_request() -> Value {
    json!({
        "model_type": "keyword_model",
        "predict_type": "author_name",
        "start_time": "2020-01-01 00:00:00",
        "end_time": "2021-01-01 00:00:00",
        "target_schema": "wh_fb_ex",
        "target_table": "posts",
        "output_schema": "audience_result",
        "countdown": 0
    })
}

async fn wait_done(app: &TestApp, id: &str) -> Value {
    for _ in 0..300 {
        let (s, v) = app
            .call("GET", &format!("/api/tasks/{id}"), None, None)
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        if v["status"] == "SUCCESS" || v["status"] == "FAILURE" {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("task {id} did not finish");
}

#[tokio::test]
async fn a_client_of_the_audience_readme_creates_lists_checks_and_samples_tasks() {
    for url in tutti_store::testing::fresh_urls().await.unwrap() {
        let (app, dir) = labeling_app(&url, true).await;
        let (s, v) = app
            .call("POST", "/api/tasks/", None, Some(seed_request()))
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["error_code"], 200);
        let cfg = &v["error_message"];
        let id = cfg["task_id"].as_str().unwrap().to_owned();
        assert_eq!(id.len(), 32);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(
            cfg["date_range"],
            "2020-01-01 00:00:00 - 2021-01-01 00:00:00"
        );
        assert_eq!(cfg["start_time"], "2020-01-01T00:00:00");
        assert_eq!(
            (cfg["queue"].as_str(), cfg["countdown"].as_u64()),
            (Some("queue1"), Some(0))
        );

        let status = wait_done(&app, &id).await;
        assert_eq!(status["error_code"], 200);
        assert_eq!(status["error_message"], "OK");
        assert_eq!(status["status"], "SUCCESS", "{status}");
        assert_eq!(status["prod_status"], "finish");
        assert_eq!(status["result"], "posts_author_name");

        let (s, list) = app.call("GET", "/api/tasks/", None, None).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(list["error_message"], "OK");
        let t = list["content"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["task_id"] == id.as_str())
            .unwrap()
            .clone();
        assert_eq!(t["stat"], "SUCCESS");
        assert_eq!(t["prod_stat"], "finish");
        assert_eq!(t["model_type"], "keyword_model");
        assert_eq!(t["length_receive_table"], 600);
        // Mary, John, 林超 and Ann: four of the six names.
        assert_eq!(t["length_output_table"], 400);
        // Six names over five sources: 30 pairs, 20 of them labeled.
        assert_eq!(t["uniq_source_author"], "30");
        assert_eq!(t["length_prod_table"], 20);
        assert_eq!(t["rate_of_label"], "66.67");
        assert!(t["run_time"].as_f64().unwrap() >= 0.0);
        assert_eq!(t["check_point"], "000599_FB");

        let (s, sample) = app
            .call(
                "GET",
                &format!("/api/tasks/{id}/sample/?table_name=wh_panel_mapping_posts_author_name"),
                None,
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{sample}");
        let rows = sample["error_message"].as_array().unwrap();
        assert_eq!(rows.len(), 20);
        for r in rows {
            assert_eq!(r["task_id"], id.as_str());
            let sa = r["source_author"].as_str().unwrap();
            assert_eq!(
                sa,
                format!(
                    "{}_{}",
                    r["field_content"].as_str().unwrap(),
                    r["match_content"].as_str().unwrap()
                )
            );
            assert!(["/female", "/male"].contains(&r["panel"].as_str().unwrap()));
            assert!(r["create_time"].as_str().unwrap().starts_with("2020-"));
        }
        // The rows are in the output schema's file, with the state table.
        let out = rusqlite::Connection::open(dir.join("out_audience_result.db")).unwrap();
        let stat: String = out
            .query_row("SELECT stat FROM state WHERE task_id = ?1", [&id], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(stat, "SUCCESS");
    }
}

#[tokio::test]
async fn bad_requests_get_the_audience_error_codes_and_name_the_field() {
    let url = &tutti_store::testing::fresh_urls().await.unwrap()[0];
    let (app, _dir) = labeling_app(url, true).await;
    let post = |body: Value| {
        let app = &app;
        async move { app.call("POST", "/api/tasks/", None, Some(body)).await }
    };
    let mut body = seed_request();
    body["start_time"] = json!("2021-01-01 00:00:00");
    let (s, v) = post(body).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["error_code"], 400);
    assert_eq!(
        v["error_message"],
        "start_time must be earlier than end_time"
    );

    let mut body = seed_request();
    body.as_object_mut().unwrap().remove("start_time");
    let (s, v) = post(body).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(v["detail"][0]["loc"], json!(["body", "start_time"]));
    assert_eq!(v["field"], "start_time");

    let mut body = seed_request();
    body["countdown"] = json!("soon");
    assert_eq!(post(body).await.0, StatusCode::UNPROCESSABLE_ENTITY);

    let mut body = seed_request();
    body["end_time"] = json!("next year");
    let (s, v) = post(body).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["field"], "end_time");

    let mut body = seed_request();
    body["model_type"] = json!("rule_model");
    let (s, v) = post(body).await;
    assert_eq!(s.as_u16(), 501);
    assert!(
        v["error_message"]
            .as_str()
            .unwrap()
            .starts_with("Cannot read pattern file")
    );

    let mut body = seed_request();
    body["target_table"] = json!("nope");
    let (s, v) = post(body).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["field"], "target_table");

    let mut body = seed_request();
    body["predict_type"] = json!("gender");
    let (s, v) = post(body).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        v["error_message"]
            .as_str()
            .unwrap()
            .contains("no column gender"),
        "{v}"
    );

    let mut body = seed_request();
    body["target_schema"] = json!("../../etc");
    let (s, v) = post(body).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["field"], "target_schema");

    let (s, v) = app
        .call("GET", "/api/tasks/abc/sample/?table_name=x", None, None)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(
        v["error_message"],
        "abc is not in proper format, expect 32 digits get 3 digits"
    );

    let unknown = "0123456789abcdef0123456789abcdef";
    let (s, v) = app
        .call("GET", &format!("/api/tasks/{unknown}"), None, None)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        v["error_message"]
            .as_str()
            .unwrap()
            .starts_with("task id is not exist")
    );

    let (s, v) = app
        .call("POST", "/api/tasks/", None, Some(seed_request()))
        .await;
    assert_eq!(s, StatusCode::OK);
    let id = v["error_message"]["task_id"].as_str().unwrap().to_owned();
    wait_done(&app, &id).await;
    let (s, v) = app
        .call(
            "GET",
            &format!("/api/tasks/{id}/sample/?table_name=wh_panel_mapping_other"),
            None,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(
        v["error_message"]
            .as_str()
            .unwrap()
            .starts_with("empty result")
    );
}

#[tokio::test]
async fn without_the_open_setting_the_task_api_needs_an_administrators_token() {
    let url = &tutti_store::testing::fresh_urls().await.unwrap()[0];
    let (app, _dir) = labeling_app(url, false).await;
    let (s, v) = app.call("GET", "/api/tasks/", None, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    let (_, worker) = app.user("w", "worker").await;
    assert_eq!(
        app.get("/api/tasks/", &worker).await.0,
        StatusCode::FORBIDDEN
    );
    let (s, v) = app.get("/api/tasks/", &app.admin).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, _) = app.post("/api/tasks/", &app.admin, seed_request()).await;
    assert_eq!(s, StatusCode::OK);
}
