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
        let token = cookie.trim_start_matches("tutti_token=").to_owned();
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
        // Each form's CSRF value is bound to its own route.
        let csrf_of = |id: &str| {
            tutti_server::auth::csrf_for(&token, &format!("/work/{job}/assignments/{id}"))
        };
        assert_eq!(csrf_of(&first), csrf);
        let answer = |id: String, answer: &'static str| {
            client
                .post(format!("{work}/assignments/{id}"))
                .header("cookie", &cookie)
                .header("x-tutti-fetch", "1")
                .form(&[
                    ("csrf", csrf_of(&id).as_str()),
                    ("action", "submit"),
                    ("answer", answer),
                    ("key", &format!("web-{id}")),
                ])
                .send()
        };
        let r = client
            .post(format!("{work}/assignments/{second}"))
            .header("cookie", &cookie)
            .header("x-tutti-fetch", "1")
            .form(&[
                ("csrf", csrf.as_str()),
                ("action", "submit"),
                ("answer", "No"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "another form's value");
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

/// The session's token (the cookie's value).
fn token_of(cookie: &str) -> String {
    cookie.trim_start_matches("tutti_token=").to_owned()
}

#[tokio::test]
async fn a_background_answer_after_sign_out_gets_401_json_and_is_not_stored() {
    for app in apps().await {
        let (ws, req, w) = app.team("signout", 1).await;
        let job = app.job(ws, &req, json!({"k": 1, "n": 1})).await;
        app.import_csv(job, &req, "name\nAda\nBob\n").await;
        let (client, cookie) = signed_in(&app, &w[0]).await;
        let work = format!("{}/work/{job}", app.base);
        let (_, html) = page(&client, &cookie, work.clone()).await;
        let id = attr(&html, "id=\"answer-form\"", "data-assignment").to_owned();
        let csrf = attr(&html, "id=\"answer-form\"", "value").to_owned();
        // The session ends (the cookie is no longer known).
        let post = |fetched: bool| {
            let mut r = client
                .post(format!("{work}/assignments/{id}"))
                .header("cookie", "tutti_token=tutti_gone")
                .header("referer", work.as_str())
                .form(&[
                    ("csrf", csrf.as_str()),
                    ("action", "submit"),
                    ("answer", "Yes"),
                ]);
            if fetched {
                r = r.header("x-tutti-fetch", "1");
            }
            r.send()
        };
        let r = post(true).await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "signed_out", "{body}");
        // A plain post goes to sign-in, which says so and comes back.
        let r = post(false).await.unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let to = r.headers()["location"].to_str().unwrap().to_owned();
        assert_eq!(to, format!("/login?next=%2Fwork%2F{job}&lost=1"));
        let (_, login) = page(&client, "", format!("{}{to}", app.base)).await;
        assert!(login.contains("<b>not saved</b>"), "{login}");
        assert!(
            login.contains(&format!("name=\"next\" value=\"/work/{job}\"")),
            "{login}"
        );
        let (_, results) = app.get(&format!("/api/v1/jobs/{job}/results"), &req).await;
        assert!(
            results["items"]
                .as_array()
                .unwrap()
                .iter()
                .all(|r| r["label"].is_null()),
            "{results}"
        );
    }
}

#[tokio::test]
async fn signing_in_brings_the_visitor_back_to_the_page_that_asked_for_it() {
    for app in apps().await {
        let (ws, req, w) = app.team("return", 1).await;
        let job = app.job(ws, &req, json!({"k": 1, "n": 1})).await;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let r = client
            .get(format!("{}/jobs/{job}/workers?x=1", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert_eq!(
            r.headers()["location"],
            format!("/login?next=%2Fjobs%2F{job}%2Fworkers%3Fx%3D1").as_str()
        );
        let next = format!("/jobs/{job}/workers?x=1");
        let r = web_login(
            &client,
            &app.base,
            &[("token", w[0].as_str()), ("next", &next)],
        )
        .await;
        assert_eq!(r.headers()["location"], next.as_str());
        // Only this site's pages.
        for outside in [
            "https://evil.example/",
            "//evil.example/x",
            "/\\evil.example",
        ] {
            let r = web_login(
                &client,
                &app.base,
                &[("token", w[0].as_str()), ("next", outside)],
            )
            .await;
            assert_eq!(r.headers()["location"], "/", "{outside}");
        }
    }
}

#[tokio::test]
async fn a_task_leased_ahead_starts_its_clock_when_shown() {
    for app in apps().await {
        let (ws, req, w) = app.team("clock", 1).await;
        let (s, j) = app
            .post(
                &format!("/api/v1/workspaces/{ws}/jobs"),
                &req,
                json!({"name": "Clock", "question": "Is ${name} a person?", "answers": ["Yes", "No"],
                       "policy": {"k": 1, "n": 1, "time_limit_secs": 60}}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{j}");
        let job = j["id"].as_i64().unwrap();
        app.import_csv(job, &req, "name\nAda\nBob\n").await;
        let (client, cookie) = signed_in(&app, &w[0]).await;
        let work = format!("{}/work/{job}", app.base);
        let (_, html) = page(&client, &cookie, work.clone()).await;
        let first = attr(&html, "id=\"answer-form\"", "data-assignment").to_owned();
        let (_, frag) = page(&client, &cookie, format!("{work}/ahead?after={first}")).await;
        let second: i64 = attr(&frag, "id=\"answer-form\"", "data-assignment")
            .parse()
            .unwrap();
        assert_eq!(attr(&frag, "class=\"lease\"", "data-seconds"), "60");
        let fetched = app
            .store
            .get_assignment(tutti_domain::ids::AssignmentId(second))
            .await
            .unwrap()
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
        // The answer to the first says the second is shown now.
        let r = client
            .post(format!("{work}/assignments/{first}"))
            .header("cookie", &cookie)
            .header("x-tutti-fetch", "1")
            .form(&[
                ("csrf", attr(&html, "id=\"answer-form\"", "value")),
                ("action", "submit"),
                ("answer", "Yes"),
                ("shown", &second.to_string()),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let shown = app
            .store
            .get_assignment(tutti_domain::ids::AssignmentId(second))
            .await
            .unwrap()
            .unwrap();
        assert!(
            shown.leased_at.0 >= fetched.leased_at.0 + 1000,
            "{shown:?} {fetched:?}"
        );
        assert_eq!(shown.deadline.0 - shown.leased_at.0, 60_000);
    }
}

#[tokio::test]
async fn a_requesters_preview_shows_the_task_without_taking_a_lease() {
    for app in apps().await {
        let (ws, req, w) = app.team("preview", 1).await;
        let job = app.job(ws, &req, json!({"k": 1, "n": 1})).await;
        app.import_csv(job, &req, "name\nAda\n").await;
        let (client, cookie) = signed_in(&app, &req).await;
        let (s, html) = page(&client, &cookie, format!("{}/jobs/{job}/preview", app.base)).await;
        assert_eq!(s, StatusCode::OK, "{html}");
        assert!(html.contains("Is Ada a person?"), "{html}");
        assert!(html.contains("It takes no lease"), "{html}");
        assert!(
            !html.contains("id=\"answer-form\""),
            "the preview answers nothing"
        );
        assert!(!html.contains("type=\"submit\""), "{html}");
        // The only task is still free for a worker.
        let (s, _) = app.next(job, &w[0]).await;
        assert_eq!(s, StatusCode::OK);
        // A worker of the workspace may not preview.
        let (wc, wcookie) = signed_in(&app, &w[0]).await;
        let (s, _) = page(&wc, &wcookie, format!("{}/jobs/{job}/preview", app.base)).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, _) = page(
            &client,
            &cookie,
            format!("{}/jobs/{job}/preview?row=0", app.base),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
    }
}

#[tokio::test]
async fn the_last_answer_can_be_taken_back_while_its_task_is_open() {
    for app in apps().await {
        let (ws, req, w) = app.team("undo", 2).await;
        let job = app.job(ws, &req, json!({"k": 2, "n": 3})).await;
        app.import_csv(job, &req, "name\nAda\nBob\n").await;
        let (client, cookie) = signed_in(&app, &w[0]).await;
        let token = token_of(&cookie);
        let work = format!("{}/work/{job}", app.base);
        let (_, html) = page(&client, &cookie, work.clone()).await;
        let first = attr(&html, "id=\"answer-form\"", "data-assignment").to_owned();
        let act = |id: &str, fields: Vec<(&'static str, &'static str)>| {
            let mut form = vec![(
                "csrf",
                tutti_server::auth::csrf_for(&token, &format!("/work/{job}/assignments/{id}")),
            )];
            form.extend(fields.into_iter().map(|(k, v)| (k, v.to_owned())));
            client
                .post(format!("{work}/assignments/{id}"))
                .header("cookie", &cookie)
                .form(&form)
                .send()
        };
        let r = act(&first, vec![("action", "submit"), ("answer", "Yes")])
            .await
            .unwrap();
        let to = r.headers()["location"].to_str().unwrap().to_owned();
        assert_eq!(to, format!("/work/{job}?last={first}"));
        // The next page offers to take it back.
        let (_, next) = page(&client, &cookie, format!("{}{to}", app.base)).await;
        assert!(next.contains("id=\"undo-form\""), "{next}");
        assert!(
            next.contains(&format!(
                "action=\"/work/{job}/assignments/{first}\" class=\"secondary\" id=\"undo-form\""
            )),
            "{next}"
        );
        let before = app
            .get(&format!("/api/v1/jobs/{job}/workers"), &req)
            .await
            .1;
        let r = act(&first, vec![("action", "undo")]).await.unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let to = r.headers()["location"].to_str().unwrap().to_owned();
        assert_eq!(to, format!("/work/{job}?task={first}&undone=1"));
        let (_, again) = page(&client, &cookie, format!("{}{to}", app.base)).await;
        assert_eq!(attr(&again, "id=\"answer-form\"", "data-assignment"), first);
        assert!(again.contains("Your answer is taken back"));
        // The tally and the figures no longer hold it.
        let (_, results) = app.get(&format!("/api/v1/jobs/{job}/results"), &req).await;
        assert_eq!(results["items"][0]["votes"], json!({}), "{results}");
        let after = app
            .get(&format!("/api/v1/jobs/{job}/workers"), &req)
            .await
            .1;
        assert_ne!(before, after);
        let answers = |v: &Value| -> i64 {
            v.as_array().map_or(0, |a| {
                a.iter().map(|w| w["answers"].as_i64().unwrap_or(0)).sum()
            })
        };
        assert_eq!(answers(&before), 1, "{before}");
        assert_eq!(answers(&after), 0, "{after}");
        // Answered again, it counts once.
        let r = act(&first, vec![("action", "submit"), ("answer", "No")])
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let (_, results) = app.get(&format!("/api/v1/jobs/{job}/results"), &req).await;
        assert_eq!(results["items"][0]["votes"], json!({"No": 1}), "{results}");
        // Once the task is decided, its answers stay.
        let (s, t) = app.next(job, &w[1]).await;
        assert_eq!(s, StatusCode::OK);
        let other = t["assignment"]["id"].as_i64().unwrap();
        assert_eq!(t["assignment"]["_id"], 1);
        assert_eq!(app.submit(other, &w[1], "No").await.0, StatusCode::OK);
        let (s, e) = app
            .call(
                "POST",
                &format!("/api/v1/assignments/{first}/undo"),
                Some(w[0].as_str()),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::CONFLICT, "{e}");
        assert_eq!(e["error"]["code"], "task_decided");
        // Only one's own, and only the last.
        let (s, _) = app
            .call(
                "POST",
                &format!("/api/v1/assignments/{other}/undo"),
                Some(w[0].as_str()),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn a_new_job_form_refuses_an_oversized_field_without_holding_it() {
    for app in apps().await {
        let (ws, req, _) = app.team("bigform", 0).await;
        let (client, cookie) = signed_in(&app, &req).await;
        let action = format!("/workspaces/{ws}/jobs");
        let csrf = tutti_server::auth::csrf_for(&token_of(&cookie), &action);
        let multipart = |fields: Vec<(String, String)>| {
            let mut body = String::new();
            for (name, value) in fields {
                body.push_str(&format!(
                    "--XyZ\r\ncontent-disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
                ));
            }
            body.push_str("--XyZ--\r\n");
            client
                .post(format!("{}{action}", app.base))
                .header("cookie", &cookie)
                .header("content-type", "multipart/form-data; boundary=XyZ")
                .body(body)
                .send()
        };
        let r = multipart(vec![
            ("csrf".into(), csrf.clone()),
            ("name".into(), "x".repeat(3 << 20)),
        ])
        .await
        .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert!(
            r.text()
                .await
                .unwrap()
                .contains("longer than 1048576 bytes")
        );
        let many: Vec<(String, String)> = std::iter::once(("csrf".to_owned(), csrf.clone()))
            .chain((0..100).map(|i| (format!("f{i}"), "v".to_owned())))
            .collect();
        let r = multipart(many).await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert!(r.text().await.unwrap().contains("too many fields"));
        let (_, jobs) = app
            .get(&format!("/api/v1/workspaces/{ws}/jobs"), &req)
            .await;
        assert_eq!(jobs["items"].as_array().map_or(0, Vec::len), 0, "{jobs}");
    }
}
