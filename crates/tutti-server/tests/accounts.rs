//! Accounts on the web pages against the real server on port 0 (SQLite,
//! and PostgreSQL when `TUTTI_TEST_POSTGRES_URL` is set): invitations
//! through the API, sign-up with a password, sign-in, sign-out, CSRF on
//! every form, refusal after repeated failures, and who may open the
//! administration pages.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::json;

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn session_cookie(r: &reqwest::Response) -> String {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|c| c.starts_with("tutti_token="))
        .expect("a session cookie")
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

/// The CSRF value of the form posting to `action` (each form's is bound to
/// its own route).
fn csrf_of(html: &str, action: &str) -> String {
    html.split(&format!("action=\"{action}\""))
        .nth(1)
        .unwrap_or_else(|| panic!("a form posting to {action}"))
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .expect("a form with a CSRF value")
        .split('"')
        .next()
        .unwrap()
        .to_owned()
}

async fn page(c: &reqwest::Client, base: &str, path: &str, cookie: &str) -> (StatusCode, String) {
    let r = c
        .get(format!("{base}{path}"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    (r.status(), r.text().await.unwrap())
}

async fn sign_up(
    c: &reqwest::Client,
    base: &str,
    invite: &str,
    name: &str,
    password: &str,
) -> reqwest::Response {
    let (cookie, value) = form_cookie(c, base).await;
    c.post(format!("{base}/signup"))
        .header("cookie", cookie)
        .form(&[
            ("form", value.as_str()),
            ("invite", invite),
            ("name", name),
            ("password", password),
            ("password2", password),
        ])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_invited_person_signs_up_signs_out_and_signs_in_with_their_password() {
    for app in apps().await {
        let c = client();
        let (ws, req, _) = app.team("acct", 0).await;
        let (s, inv) = app
            .post(
                &format!("/api/v1/workspaces/{ws}/invitations"),
                &req,
                json!({"role": "steward", "days": 2}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{inv}");
        let secret = inv["secret"].as_str().unwrap();
        assert_eq!(inv["path"], format!("/signup?invite={secret}"));

        // The sign-up page names the workspace and the role.
        let (s, html) = page(&c, &app.base, &format!("/signup?invite={secret}"), "").await;
        assert_eq!(s, StatusCode::OK);
        assert!(html.contains("<b>acct</b> as a steward"), "{html}");

        // Too short a password is refused and nothing is used up.
        let r = sign_up(&c, &app.base, secret, "sue", "short").await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(r.text().await.unwrap().contains("at least 10 characters"));

        let r = sign_up(&c, &app.base, secret, "sue", "a long enough secret").await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let cookie = session_cookie(&r);
        let set = r.headers()["set-cookie"].to_str().unwrap().to_owned();
        assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict"));
        let (s, home) = page(&c, &app.base, "/", &cookie).await;
        assert_eq!(s, StatusCode::OK);
        assert!(home.contains("Hello, sue"));
        let (s, members) = app
            .get(&format!("/api/v1/workspaces/{ws}/members"), &req)
            .await;
        assert_eq!(s, StatusCode::OK);
        assert!(
            members["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["name"] == "sue" && m["role"] == "steward"),
            "{members}"
        );

        // The invitation is spent.
        let r = sign_up(&c, &app.base, secret, "sam", "a long enough secret").await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);

        // Signing out without the CSRF value is refused; with it, the
        // session stops working.
        let r = c
            .post(format!("{}/logout", app.base))
            .header("cookie", &cookie)
            .form(&[("csrf", "forged")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let r = c
            .post(format!("{}/logout", app.base))
            .header("cookie", &cookie)
            .form(&[("csrf", csrf_of(&home, "/logout").as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let (s, _) = page(&c, &app.base, "/", &cookie).await;
        assert_eq!(
            s,
            StatusCode::SEE_OTHER,
            "a revoked session goes to sign-in"
        );

        // A wrong password is refused; the right one signs in again.
        let r = web_login(
            &c,
            &app.base,
            &[("name", "sue"), ("password", "not the secret")],
        )
        .await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let r = web_login(
            &c,
            &app.base,
            &[("name", "nobody"), ("password", "not the secret")],
        )
        .await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let r = web_login(
            &c,
            &app.base,
            &[("name", "sue"), ("password", "a long enough secret")],
        )
        .await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let cookie = session_cookie(&r);
        let (s, account) = page(&c, &app.base, "/account", &cookie).await;
        assert_eq!(s, StatusCode::OK);

        // A password change needs the current one and signs out elsewhere.
        let other = session_cookie(
            &web_login(
                &c,
                &app.base,
                &[("name", "sue"), ("password", "a long enough secret")],
            )
            .await,
        );
        let change = |current: &'static str| {
            let c = c.clone();
            let base = app.base.clone();
            let cookie = cookie.clone();
            let csrf = csrf_of(&account, "/account/password");
            async move {
                c.post(format!("{base}/account/password"))
                    .header("cookie", cookie)
                    .form(&[
                        ("csrf", csrf.as_str()),
                        ("current", current),
                        ("password", "another long secret"),
                        ("password2", "another long secret"),
                    ])
                    .send()
                    .await
                    .unwrap()
            }
        };
        assert_eq!(
            change("wrong").await.status(),
            StatusCode::UNPROCESSABLE_ENTITY
        );
        assert_eq!(
            change("a long enough secret").await.status(),
            StatusCode::OK
        );
        let (s, _) = page(&c, &app.base, "/", &cookie).await;
        assert_eq!(s, StatusCode::OK, "this browser stays signed in");
        let (s, _) = page(&c, &app.base, "/", &other).await;
        assert_eq!(s, StatusCode::SEE_OTHER, "other browsers are signed out");
        let r = web_login(
            &c,
            &app.base,
            &[("name", "sue"), ("password", "another long secret")],
        )
        .await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
    }
}

#[tokio::test]
async fn a_sign_in_without_the_form_cookie_is_refused() {
    for app in apps().await {
        let (_, token) = app.user("plain", "worker").await;
        let r = client()
            .post(format!("{}/login", app.base))
            .form(&[("form", "made-up"), ("token", token.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert!(
            r.headers()
                .get("set-cookie")
                .is_none_or(|c| !c.to_str().unwrap().starts_with("tutti_token="))
        );
    }
}

/// A user of `role` who signs in with `password`.
async fn user_with_password(app: &TestApp, name: &str, role: &str, password: &str) {
    let (id, _) = app.user(name, role).await;
    let phc = tutti_server::auth::hash_password(password.into())
        .await
        .unwrap();
    app.store
        .set_password(tutti_domain::ids::UserId(id), Some(&phc))
        .await
        .unwrap();
}

#[tokio::test]
async fn failed_sign_ins_make_that_address_wait_but_never_lock_the_owner_out() {
    for app in apps().await {
        user_with_password(&app, "target", "worker", "the owners secret").await;
        // A stranger on 127.0.0.1 fails five times, then must wait.
        let stranger = client();
        for _ in 0..tutti_server::auth::FREE_FAILURES {
            let r = web_login(
                &stranger,
                &app.base,
                &[("name", "target"), ("password", "guess guess")],
            )
            .await;
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        }
        let r = web_login(
            &stranger,
            &app.base,
            &[("name", "target"), ("password", "the owners secret")],
        )
        .await;
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(r.text().await.unwrap().contains("wait 1 seconds"));
        // The owner, from another address, signs in at once.
        let owner = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
            .build()
            .unwrap();
        let r = web_login(
            &owner,
            &app.base,
            &[("name", "target"), ("password", "the owners secret")],
        )
        .await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        // The stranger's wait doubles with each further failure.
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        let r = web_login(
            &stranger,
            &app.base,
            &[("name", "target"), ("password", "guess again")],
        )
        .await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let r = web_login(
            &stranger,
            &app.base,
            &[("name", "target"), ("password", "the owners secret")],
        )
        .await;
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(r.text().await.unwrap().contains("wait 2 seconds"));
    }
}

#[tokio::test]
async fn a_first_password_needs_one_of_the_accounts_tokens_and_a_change_the_current_one() {
    for app in apps().await {
        let (_, token) = app.user("tokened", "worker").await;
        let c = client();
        let r = web_login(&c, &app.base, &[("token", token.as_str())]).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let cookie = session_cookie(&r);
        let (_, account) = page(&c, &app.base, "/account", &cookie).await;
        assert!(account.contains("You have no password yet"), "{account}");
        let set = |proof: Vec<(&'static str, String)>| {
            let c = c.clone();
            let base = app.base.clone();
            let cookie = cookie.clone();
            let csrf = csrf_of(&account, "/account/password");
            async move {
                let mut form = vec![
                    ("csrf", csrf),
                    ("password", "chosen by whoever".to_owned()),
                    ("password2", "chosen by whoever".to_owned()),
                ];
                form.extend(proof);
                c.post(format!("{base}/account/password"))
                    .header("cookie", cookie)
                    .form(&form)
                    .send()
                    .await
                    .unwrap()
            }
        };
        // The session alone is not enough (as a page acting through it would have).
        assert_eq!(set(vec![]).await.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let (_, other) = app.user("someone-else", "worker").await;
        assert_eq!(
            set(vec![("token", other)]).await.status(),
            StatusCode::UNPROCESSABLE_ENTITY
        );
        let r = web_login(
            &c,
            &app.base,
            &[("name", "tokened"), ("password", "chosen by whoever")],
        )
        .await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "no password was set");
        assert_eq!(
            set(vec![("token", token.clone())]).await.status(),
            StatusCode::OK
        );
        let r = web_login(
            &c,
            &app.base,
            &[("name", "tokened"), ("password", "chosen by whoever")],
        )
        .await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
    }
}

#[tokio::test]
async fn open_sign_up_needs_the_workspace_admin_to_open_it() {
    for app in apps().await {
        let c = client();
        let (ws, req, workers) = app.team("open", 1).await;
        let (cookie, value) = form_cookie(&c, &app.base).await;
        let (_, html) = page(&c, &app.base, "/signup", &cookie).await;
        assert!(html.contains("without an invitation"), "{html}");
        // A worker cannot open it; its admin can.
        let (s, _) = app
            .call(
                "PATCH",
                &format!("/api/v1/workspaces/{ws}"),
                Some(&workers[0]),
                Some(json!({"registration": "open"})),
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, w) = app
            .call(
                "PATCH",
                &format!("/api/v1/workspaces/{ws}"),
                Some(&req),
                Some(json!({"registration": "open"})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{w}");
        assert_eq!(w["registration"], "open");
        let r = c
            .post(format!("{}/signup", app.base))
            .header("cookie", &cookie)
            .form(&[
                ("form", value.as_str()),
                ("workspace", ws.to_string().as_str()),
                ("name", "walk-in"),
                ("password", "walk in password"),
                ("password2", "walk in password"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let (_, members) = app
            .get(&format!("/api/v1/workspaces/{ws}/members"), &req)
            .await;
        assert!(
            members["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["name"] == "walk-in" && m["role"] == "worker")
        );
        // A bad invitation field is a 422 naming the field in the API.
        let (s, e) = app
            .post(
                &format!("/api/v1/workspaces/{ws}/invitations"),
                &req,
                json!({"days": 0}),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(e["error"]["field"], "days");
    }
}

#[tokio::test]
async fn only_admins_open_the_admin_pages_and_only_managers_the_settings() {
    for app in apps().await {
        let c = client();
        let (ws, req, workers) = app.team("adm", 1).await;
        let worker =
            session_cookie(&web_login(&c, &app.base, &[("token", workers[0].as_str())]).await);
        let requester = session_cookie(&web_login(&c, &app.base, &[("token", req.as_str())]).await);
        let admin =
            session_cookie(&web_login(&c, &app.base, &[("token", app.admin.as_str())]).await);
        assert_eq!(
            page(&c, &app.base, "/admin", &worker).await.0,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            page(&c, &app.base, "/admin", &requester).await.0,
            StatusCode::FORBIDDEN
        );
        let (s, html) = page(&c, &app.base, "/admin", &admin).await;
        assert_eq!(s, StatusCode::OK);
        assert!(html.contains("adm-w0"));
        let settings = format!("/workspaces/{ws}/settings");
        assert_eq!(
            page(&c, &app.base, &settings, &worker).await.0,
            StatusCode::FORBIDDEN
        );
        let (s, html) = page(&c, &app.base, &settings, &requester).await;
        assert_eq!(s, StatusCode::OK);
        // The requester adds a member by name, with the form's CSRF value
        // and, to confirm, their own secret (this account has no password:
        // its token).
        app.user("late-joiner", "worker").await;
        let add = |name: &'static str, confirm: &str| {
            c.post(format!("{}/workspaces/{ws}/members", app.base))
                .header("cookie", &requester)
                .form(&[
                    ("csrf", csrf_of(&html, &format!("/workspaces/{ws}/members"))),
                    ("name", name.to_owned()),
                    ("role", "worker".to_owned()),
                    ("confirm", confirm.to_owned()),
                ])
                .send()
        };
        let r = add("late-joiner", "").await.unwrap();
        assert_eq!(
            r.status(),
            StatusCode::FORBIDDEN,
            "a session alone is not enough"
        );
        let r = add("late-joiner", &workers[0]).await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "someone else's token");
        let (_, members) = app
            .get(&format!("/api/v1/workspaces/{ws}/members"), &req)
            .await;
        assert!(!members.to_string().contains("late-joiner"), "{members}");
        let r = add("late-joiner", &req).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert!(
            r.text()
                .await
                .unwrap()
                .contains("<b>late-joiner</b> is a worker here.")
        );
        let r = add("nobody-here", &req).await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        // An unknown page is an HTML page for people and JSON for the API.
        let (s, html) = page(&c, &app.base, "/no/such/page", &worker).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        assert!(html.contains("Back to your jobs"));
        let (s, v) = app.get("/api/v1/no-such-thing", &req).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        assert_eq!(error_code(&v), "not_found");
    }
}

#[tokio::test]
async fn making_a_user_or_changing_a_role_on_the_admin_page_asks_for_the_password_again() {
    for app in apps().await {
        user_with_password(&app, "boss", "admin", "the boss secret").await;
        let c = client();
        let r = web_login(
            &c,
            &app.base,
            &[("name", "boss"), ("password", "the boss secret")],
        )
        .await;
        let cookie = session_cookie(&r);
        let (_, html) = page(&c, &app.base, "/admin", &cookie).await;
        assert!(html.contains("name=\"confirm\""), "{html}");
        let make = |confirm: &'static str| {
            c.post(format!("{}/admin/users", app.base))
                .header("cookie", &cookie)
                .form(&[
                    ("csrf", csrf_of(&html, "/admin/users")),
                    ("name", "evil_admin2".to_owned()),
                    ("role", "admin".to_owned()),
                    ("confirm", confirm.to_owned()),
                ])
                .send()
        };
        assert_eq!(make("").await.unwrap().status(), StatusCode::FORBIDDEN);
        assert_eq!(
            make("not the secret").await.unwrap().status(),
            StatusCode::FORBIDDEN
        );
        let (_, users) = app.get("/api/v1/users", &app.admin).await;
        assert!(!users.to_string().contains("evil_admin2"), "{users}");
        assert_eq!(
            make("the boss secret").await.unwrap().status(),
            StatusCode::OK
        );
        let (_, users) = app.get("/api/v1/users", &app.admin).await;
        assert!(users.to_string().contains("evil_admin2"), "{users}");
    }
}

#[tokio::test]
async fn every_answer_carries_the_security_headers_even_errors_and_the_api() {
    for app in apps().await {
        let (_, _, workers) = app.team("headers", 1).await;
        let c = client();
        let worker =
            session_cookie(&web_login(&c, &app.base, &[("token", workers[0].as_str())]).await);
        let admin_page = c
            .get(format!("{}/admin", app.base))
            .header("cookie", &worker)
            .send()
            .await
            .unwrap();
        let me = c
            .get(format!("{}/api/v1/users/me", app.base))
            .bearer_auth(&workers[0])
            .send()
            .await
            .unwrap();
        let missing = c
            .get(format!("{}/api/v1/workspaces", app.base))
            .send()
            .await
            .unwrap();
        for (what, r, status) in [
            ("a refused page", admin_page, StatusCode::FORBIDDEN),
            ("the API", me, StatusCode::OK),
            ("an API 401", missing, StatusCode::UNAUTHORIZED),
        ] {
            assert_eq!(r.status(), status, "{what}");
            let h = r.headers();
            assert_eq!(h["x-content-type-options"], "nosniff", "{what}");
            assert!(
                h["content-security-policy"]
                    .to_str()
                    .unwrap()
                    .contains("frame-ancestors 'none'"),
                "{what}"
            );
            assert_eq!(h["cache-control"], "no-store", "{what}");
        }
    }
}

#[tokio::test]
async fn a_client_that_never_finishes_its_request_head_is_cut_off() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let store = tutti_store::connect("sqlite::memory:").await.unwrap();
    let settings = tutti_server::Settings {
        runs_dir: common::test_dir("runs-slow"),
        monitor_interval: None,
        header_timeout: std::time::Duration::from_millis(500),
        ..tutti_server::Settings::default()
    };
    let app = spawn_on_settings(store, Some(settings)).await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut buf = Vec::new();
    // The server closes the connection (after a 408 or at once).
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        slow.read_to_end(&mut buf),
    )
    .await;
    assert!(read.is_ok(), "the connection was still open after 10 s");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    // A client that sends its request gets its answer.
    let r = reqwest::get(format!("{}/healthz", app.base)).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}
