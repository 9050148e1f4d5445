//! The worker page's pairwise jobs (side by side, graded slider) and its
//! next task leased ahead, on SQLite and (when configured) PostgreSQL.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A client that keeps redirects to itself, signed in as `token`: the
/// client and its session cookie.
async fn signed_in(app: &TestApp, token: &str) -> (reqwest::Client, String) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = web_login(&client, &app.base, &[("token", token)]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let cookie = r.headers()["set-cookie"].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_owned();
    (client, cookie)
}

async fn page(client: &reqwest::Client, cookie: &str, url: String) -> (StatusCode, String) {
    let r = client
        .get(url)
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    (r.status(), r.text().await.unwrap())
}

/// The value of `attr="..."` after the first `after` in `html`.
fn attr<'a>(html: &'a str, after: &str, attr: &str) -> &'a str {
    let from = html
        .find(after)
        .unwrap_or_else(|| panic!("{after} in {html}"));
    html[from..]
        .split(&format!("{attr}=\""))
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or_else(|| panic!("{attr} after {after} in {html}"))
}

async fn pairwise_job(app: &TestApp, ws: i64, token: &str, compare: Value) -> (StatusCode, Value) {
    app.post(
        &format!("/api/v1/workspaces/{ws}/jobs"),
        token,
        json!({"name": "Helpfulness", "question": "Which answer helps more?",
               "compare": compare, "policy": {"k": 1, "n": 1}}),
    )
    .await
}

#[tokio::test]
async fn a_graded_pairwise_job_shows_both_items_escaped_and_records_the_grade() {
    for app in apps().await {
        let (ws, req, w) = app.team("graded", 1).await;
        let (s, e) = pairwise_job(&app, ws, &req, json!({"left": "a", "right": "a"})).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
        assert_eq!(e["error"]["field"], "compare.right");
        let (s, e) = pairwise_job(
            &app,
            ws,
            &req,
            json!({"left": "a", "right": "b", "scale": 1000}),
        )
        .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
        assert_eq!(e["error"]["field"], "compare.scale");
        let (s, j) = pairwise_job(
            &app,
            ws,
            &req,
            json!({"left": "a", "right": "b", "scale": 10}),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{j}");
        let job = j["id"].as_i64().unwrap();
        app.import_csv(
            job,
            &req,
            "a,b\nPlain answer,<script>window.pwned=1</script>\n",
        )
        .await;
        let (client, cookie) = signed_in(&app, &w[0]).await;
        let (s, html) = page(&client, &cookie, format!("{}/work/{job}", app.base)).await;
        assert_eq!(s, StatusCode::OK);
        assert!(html.contains("class=\"pair\""), "{html}");
        assert!(html.contains("Plain answer"));
        assert!(
            !html.contains("<script>window.pwned"),
            "row values are escaped"
        );
        assert!(html.contains("&lt;script&gt;window.pwned=1&lt;/script&gt;"));
        assert_eq!(attr(&html, "id=\"grade\"", "min"), "-10");
        assert_eq!(attr(&html, "id=\"grade\"", "max"), "10");
        let action = attr(&html, "id=\"answer-form\"", "action");
        let csrf = attr(&html, "id=\"answer-form\"", "value");
        let url = format!("{}{action}", app.base);
        let post = |answer: &'static str| {
            client
                .post(&url)
                .header("cookie", &cookie)
                .form(&[("csrf", csrf), ("action", "submit"), ("answer", answer)])
                .send()
        };
        // The plain form refuses an out-of-scale grade with the page's
        // error, naming the scale.
        let r = post("12").await.unwrap();
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(r.text().await.unwrap().contains("between -10 and 10"));
        let r = post("-4").await.unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let (_, results) = app.get(&format!("/api/v1/jobs/{job}/results"), &req).await;
        assert_eq!(results["items"][0]["label"], "left");
        let (_, csv) = app
            .text(&format!("/api/v1/jobs/{job}/export?what=answers"), &req)
            .await;
        let row = csv.lines().nth(1).unwrap();
        assert!(row.contains(",left,") && row.ends_with(",-4"), "{csv}");
    }
}

#[tokio::test]
async fn an_ungraded_pairwise_job_answers_with_sides_and_the_arrow_keys() {
    for app in apps().await {
        let (ws, req, w) = app.team("sides", 1).await;
        let (s, j) = pairwise_job(&app, ws, &req, json!({"left": "a", "right": "b"})).await;
        assert_eq!(s, StatusCode::CREATED, "{j}");
        let job = j["id"].as_i64().unwrap();
        assert_eq!(j["answers"], json!(["left", "right"]));
        app.import_csv(job, &req, "a,b\none,two\n").await;
        let (client, cookie) = signed_in(&app, &w[0]).await;
        let (_, html) = page(&client, &cookie, format!("{}/work/{job}", app.base)).await;
        assert!(html.contains("data-arrow=\"ArrowLeft\""), "{html}");
        assert!(html.contains("data-arrow=\"ArrowRight\""));
        assert!(!html.contains("id=\"grade\""), "no slider without a scale");
        // Through the API the same task offers its pair and no scale.
        let (s, t) = app.next(job, &w[0]).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(
            t["compare"],
            json!({"left": "a", "right": "b", "tie": false})
        );
        let id = t["assignment"]["id"].as_i64().unwrap();
        let (s, e) = app.submit(id, &w[0], "-3").await;
        assert_eq!(
            s,
            StatusCode::UNPROCESSABLE_ENTITY,
            "a grade needs a scale: {e}"
        );
        let (s, _) = app.submit(id, &w[0], "right").await;
        assert_eq!(s, StatusCode::OK);
    }
}

#[tokio::test]
async fn the_next_task_is_leased_ahead_and_answered_in_the_background() {
    for app in apps().await {
        let (ws, req, w) = app.team("ahead", 1).await;
        let job = app.job(ws, &req, json!({"k": 1, "n": 1})).await;
        app.import_csv(job, &req, "name\nAda\nBob\nCy\n").await;
        let (client, cookie) = signed_in(&app, &w[0]).await;
        let work = format!("{}/work/{job}", app.base);
        let (_, html) = page(&client, &cookie, work.clone()).await;
        let first = attr(&html, "id=\"answer-form\"", "data-assignment").to_owned();
        let csrf = attr(&html, "id=\"answer-form\"", "value").to_owned();
        // Ahead: another task, and the same one when asked again.
        let ahead = format!("{work}/ahead?after={first}");
        let (s, frag) = page(&client, &cookie, ahead.clone()).await;
        assert_eq!(s, StatusCode::OK);
        assert!(!frag.contains("<html"), "a fragment for the page's main");
        let second = attr(&frag, "id=\"answer-form\"", "data-assignment").to_owned();
        assert_ne!(second, first);
        let (_, again) = page(&client, &cookie, ahead).await;
        assert_eq!(
            attr(&again, "id=\"answer-form\"", "data-assignment"),
            second
        );
        // Reloading the page shows the first lease, not the one ahead.
        let (_, html) = page(&client, &cookie, work.clone()).await;
        assert_eq!(attr(&html, "id=\"answer-form\"", "data-assignment"), first);
        // The API passes over a held lease the same way.
        let (s, t) = app
            .call(
                "POST",
                &format!("/api/v1/jobs/{job}/next?after={first}"),
                Some(w[0].as_str()),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(t["assignment"]["id"].to_string(), second);
        let (s, e) = app
            .call(
                "POST",
                &format!("/api/v1/jobs/{job}/next?after=soon"),
                Some(w[0].as_str()),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
        // Answers posted in the background get JSON, with today's count.
        let answer = |id: String, answer: &'static str| {
            client
                .post(format!("{work}/assignments/{id}"))
                .header("cookie", &cookie)
                .header("x-tutti-fetch", "1")
                .form(&[
                    ("csrf", csrf.as_str()),
                    ("action", "submit"),
                    ("answer", answer),
                    ("key", &format!("web-{id}")),
                ])
                .send()
        };
        let r = answer(first.clone(), "Yes").await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["ok"], true);
        assert_eq!(body["answered_today"], 1);
        // A refusal is JSON too: an assignment that is not the worker's.
        let r = answer("999999".into(), "No").await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        let body: Value = r.json().await.unwrap();
        assert!(body["error"]["message"].is_string(), "{body}");
        let r = answer(second.clone(), "No").await.unwrap();
        assert_eq!(r.json::<Value>().await.unwrap()["answered_today"], 2);
        // The last task: nothing further to fetch ahead.
        let (_, html) = page(&client, &cookie, work.clone()).await;
        let third = attr(&html, "id=\"answer-form\"", "data-assignment").to_owned();
        let (s, _) = page(&client, &cookie, format!("{work}/ahead?after={third}")).await;
        assert_eq!(s, StatusCode::NO_CONTENT);
        let (s, e) = page(&client, &cookie, format!("{work}/ahead")).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
        let (_, results) = app.get(&format!("/api/v1/jobs/{job}/results"), &req).await;
        let labels: Vec<&Value> = results["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| &r["label"])
            .collect();
        assert_eq!(labels, [&json!("Yes"), &json!("No"), &Value::Null]);
    }
}

#[tokio::test]
async fn quitting_gives_back_the_task_fetched_ahead_too() {
    for app in apps().await {
        let (ws, req, w) = app.team("quit", 2).await;
        let job = app.job(ws, &req, json!({"k": 1, "n": 1})).await;
        app.import_csv(job, &req, "name\nAda\nBob\n").await;
        let (client, cookie) = signed_in(&app, &w[0]).await;
        let work = format!("{}/work/{job}", app.base);
        let (_, html) = page(&client, &cookie, work.clone()).await;
        let first = attr(&html, "id=\"answer-form\"", "data-assignment").to_owned();
        let csrf = attr(&html, "id=\"answer-form\"", "value").to_owned();
        let (_, frag) = page(&client, &cookie, format!("{work}/ahead?after={first}")).await;
        let second = attr(&frag, "id=\"answer-form\"", "data-assignment").to_owned();
        // Both tasks are leased: the other worker has nothing now.
        let (s, _) = app.next(job, &w[1]).await;
        assert_eq!(s, StatusCode::NO_CONTENT);
        let r = client
            .post(format!("{work}/assignments/{first}"))
            .header("cookie", &cookie)
            .form(&[
                ("csrf", csrf.as_str()),
                ("action", "release"),
                ("ahead", &second),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        for _ in 0..2 {
            let (s, t) = app.next(job, &w[1]).await;
            assert_eq!(s, StatusCode::OK, "both tasks are free again");
            let id = t["assignment"]["id"].as_i64().unwrap();
            assert_eq!(app.submit(id, &w[1], "Yes").await.0, StatusCode::OK);
        }
    }
}
