//! Filtered results: the API's `/results`, `/summary` and `/export` with a
//! filter, and the requester's results page that renders them, against
//! the real server on port 0 (SQLite, and PostgreSQL when
//! `TUTTI_TEST_POSTGRES_URL` is set).

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A job of five rows answered so that: Ada and Alan are Yes (2 of 2),
/// Paris is No (2 of 3), Oslo is open with one answer, and one row holds
/// markup that must stay text.
async fn answered_job(app: &TestApp) -> (i64, String, Vec<String>) {
    let (ws, req, workers) = app.team("res", 3).await;
    let job = app.job(ws, &req, json!({"k": 2, "n": 3})).await;
    let (s, r) = app
        .import_csv(
            job,
            &req,
            "name\nAda\nParis\nAlan\nOslo\n<script>alert(1)</script>\n",
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    let plan: &[(&str, &[&str])] = &[
        ("Ada", &["Yes", "Yes"]),
        ("Paris", &["No", "Yes", "No"]),
        ("Alan", &["Yes", "Yes"]),
        ("Oslo", &["No"]),
    ];
    // Each worker takes tasks in order; answer by the row's name.
    for (w, token) in workers.iter().enumerate() {
        loop {
            let (s, a) = app.next(job, token).await;
            if s != StatusCode::OK || a["assignment"].is_null() {
                break;
            }
            let a = &a["assignment"];
            let name = a["data"]["name"].as_str().unwrap().to_owned();
            let id = a["id"].as_i64().unwrap();
            let answer = plan
                .iter()
                .find(|(n, _)| *n == name)
                .and_then(|(_, answers)| answers.get(w));
            match answer {
                Some(ans) => {
                    let (s, r) = app.submit(id, token, ans).await;
                    assert_eq!(s, StatusCode::OK, "{r}");
                }
                None => {
                    let (s, r) = app
                        .post(&format!("/api/v1/assignments/{id}/skip"), token, json!({}))
                        .await;
                    assert_eq!(s, StatusCode::OK, "{r}");
                }
            }
        }
    }
    (job, req, workers)
}

fn ids(page: &Value) -> Vec<i64> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["_id"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn results_summary_and_export_keep_only_what_the_filter_asks_for() {
    for app in apps().await {
        let (job, req, _) = answered_job(&app).await;
        let get = |q: &str| {
            let path = format!("/api/v1/jobs/{job}/results?{q}");
            let (app, req) = (&app, &req);
            async move { app.get(&path, req).await }
        };
        let (s, all) = get("").await;
        assert_eq!(s, StatusCode::OK, "{all}");
        assert_eq!(ids(&all), vec![1, 2, 3, 4, 5]);
        assert_eq!(ids(&get("label=Yes").await.1), vec![1, 3]);
        assert_eq!(ids(&get("state=open").await.1), vec![4, 5]);
        assert_eq!(
            ids(&get("state=labeled&max_confidence=0.9").await.1),
            vec![2]
        );
        assert_eq!(ids(&get("q=PARIS").await.1), vec![2]);
        assert_eq!(ids(&get("worker=res-w2").await.1), vec![2]);
        // An empty field, as a form sends it, is no filter.
        assert_eq!(ids(&get("label=&q=").await.1), vec![1, 2, 3, 4, 5]);
        // Paging goes on with the filter.
        let (_, first) = get("state=labeled&limit=2").await;
        assert_eq!(ids(&first), vec![1, 2]);
        let cursor = first["next_cursor"].as_str().unwrap().to_owned();
        assert_eq!(
            ids(&get(&format!("state=labeled&limit=2&cursor={cursor}"))
                .await
                .1),
            vec![3]
        );

        let (s, sum) = app
            .get(&format!("/api/v1/jobs/{job}/summary?state=labeled"), &req)
            .await;
        assert_eq!(s, StatusCode::OK, "{sum}");
        assert_eq!(sum["matching"], 3);
        assert_eq!(sum["labels"], json!({"No": 1, "Yes": 2}));
        assert_eq!(sum["confidence"][9], 2, "{sum}");
        assert_eq!(sum["confidence"][6], 1, "{sum}");

        let (s, csv) = app
            .text(&format!("/api/v1/jobs/{job}/export?label=Yes"), &req)
            .await;
        assert_eq!(s, StatusCode::OK);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 3, "{csv}");
        assert!(
            lines[1].starts_with("1,Yes,") && lines[2].starts_with("3,Yes,"),
            "{csv}"
        );
        let (_, answers) = app
            .text(
                &format!("/api/v1/jobs/{job}/export?what=answers&q=paris"),
                &req,
            )
            .await;
        assert_eq!(
            answers.lines().count(),
            4,
            "three answers to Paris: {answers}"
        );
        assert!(
            answers.lines().skip(1).all(|l| l.starts_with("2,")),
            "{answers}"
        );
    }
}

#[tokio::test]
async fn a_bad_filter_gets_a_400_naming_the_field() {
    for app in apps().await {
        let (job, req, _) = answered_job(&app).await;
        for (q, field) in [
            ("state=done", "state"),
            ("min_confidence=2", "min_confidence"),
            ("max_confidence=abc", "max_confidence"),
            ("min_confidence=0.9&max_confidence=0.1", "min_confidence"),
            ("worker=nobody", "worker"),
            ("format=csv", "format"),
            ("bogus=1", ""),
            ("q=a+b+c+d+e+f+g+h+i+j+k+l+m+n+o+p+q", "q"),
        ]
        .into_iter()
        .map(|(q, f)| (q.to_owned(), f))
        .chain([(format!("q={}", "x".repeat(201)), "q")])
        {
            let (s, r) = app
                .get(&format!("/api/v1/jobs/{job}/results?{q}"), &req)
                .await;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{q}: {r}");
            if !field.is_empty() {
                assert_eq!(r["error"]["field"], field, "{q}: {r}");
            }
        }
        let (s, r) = app
            .get(&format!("/api/v1/jobs/{job}/export?limit=5"), &req)
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{r}");
        assert_eq!(r["error"]["field"], "limit");
    }
}

#[tokio::test]
async fn the_results_page_shows_filtered_rows_as_text_with_charts_and_downloads() {
    for app in apps().await {
        let (job, req, workers) = answered_job(&app).await;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let page = |path: String, token: String| {
            let client = client.clone();
            let base = app.base.clone();
            async move {
                let r = client
                    .get(format!("{base}{path}"))
                    .header("cookie", format!("tutti_token={token}"))
                    .send()
                    .await
                    .unwrap();
                (r.status(), r.text().await.unwrap())
            }
        };
        let (s, home) = page("/".into(), req.clone()).await;
        assert_eq!(s, StatusCode::OK);
        assert!(home.contains(&format!("href=\"/jobs/{job}\"")), "{home}");

        let (s, html) = page(format!("/jobs/{job}"), req.clone()).await;
        assert_eq!(s, StatusCode::OK, "{html}");
        assert!(html.contains("5 of 5 tasks match"), "{html}");
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );
        assert!(!html.contains("<script>alert(1)"), "{html}");
        assert!(
            html.contains("<svg role=\"img\" aria-label=\"Labels\""),
            "{html}"
        );

        let (s, html) = page(format!("/jobs/{job}?label=Yes&state=labeled"), req.clone()).await;
        assert_eq!(s, StatusCode::OK);
        assert!(html.contains("2 of 5 tasks match"), "{html}");
        assert!(
            html.contains("<td>Ada</td>") && html.contains("<td>Alan</td>"),
            "{html}"
        );
        assert!(!html.contains("<td>Paris</td>"), "{html}");
        assert!(
            html.contains(&format!(
                "href=\"/jobs/{job}/export?state=labeled&amp;label=Yes\""
            )),
            "{html}"
        );
        let (s, csv) = page(
            format!("/jobs/{job}/export?state=labeled&label=Yes"),
            req.clone(),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(csv.lines().count(), 3, "{csv}");

        let (s, html) = page(format!("/jobs/{job}?q=nothing-like-this"), req.clone()).await;
        assert_eq!(s, StatusCode::OK);
        assert!(html.contains("No task matches this filter"), "{html}");

        let (s, html) = page(format!("/jobs/{job}?min_confidence=7"), req.clone()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{html}");
        assert!(html.contains("between 0 and 1"), "{html}");

        // A worker of the workspace cannot see the results page.
        let (s, _) = page(format!("/jobs/{job}"), workers[0].clone()).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        // Nobody signed in is sent to sign in.
        let r = client
            .get(format!("{}/jobs/{job}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
    }
}
