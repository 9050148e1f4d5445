//! What the API tests share: the real server on port 0 per backend, and
//! calls to it.
#![allow(dead_code)]

use reqwest::StatusCode;
use serde_json::{Value, json};
use std::sync::Arc;
use tutti_domain::role::Role;
use tutti_server::{Application, Settings};
use tutti_store::{NewUser, Store};

/// Upload limit of test servers, small so the limit is cheap to hit.
pub const TEST_UPLOAD_LIMIT: u64 = 1 << 20;

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub store: Arc<dyn Store>,
    pub admin: String,
    /// The outside databases this app's server knows, by name.
    pub databases: std::collections::BTreeMap<String, String>,
}

pub async fn spawn_on(store: Arc<dyn Store>) -> TestApp {
    spawn_on_settings(store, None).await
}

/// The real server on port 0 over `store` with an admin token; with
/// `settings` instead of the test defaults when given (this is then the
/// only server, so only its runner picks up runs).
pub async fn spawn_on_settings(store: Arc<dyn Store>, settings: Option<Settings>) -> TestApp {
    let admin = store
        .create_user(
            &NewUser {
                name: "root".into(),
                display_name: "Root".into(),
                role: Role::Admin,
            },
            tutti_store::now(),
        )
        .await
        .unwrap();
    let token = tutti_server::auth::new_token();
    store
        .create_token(
            admin.id,
            "test",
            &tutti_server::auth::token_hash(&token),
            tutti_store::now(),
        )
        .await
        .unwrap();
    let databases = test_databases();
    let app = match settings {
        Some(settings) => spawn_settings(store.clone(), settings).await,
        None => spawn_with(store.clone(), databases.clone()).await,
    };
    TestApp {
        base: app,
        client: reqwest::Client::new(),
        store,
        admin: token,
        databases,
    }
}

pub async fn spawn_server(store: Arc<dyn Store>) -> String {
    spawn_with(store, test_databases()).await
}

pub async fn spawn_with(
    store: Arc<dyn Store>,
    databases: std::collections::BTreeMap<String, String>,
) -> String {
    let settings = Settings {
        max_upload_bytes: TEST_UPLOAD_LIMIT,
        monitor_interval: None,
        runs_dir: test_dir("runs"),
        run_workflows: true,
        databases,
        public_url: None,
        labeling: None,
        mturk: None,
        // The tests' model services and webhooks listen on this machine.
        outbound: tutti_engine::outbound::Outbound::open(),

        header_timeout: tutti_server::serve::HEADER_TIMEOUT,
    };
    spawn_settings(store, settings).await
}

/// The real server on port 0 with these settings; its base URL.
pub async fn spawn_settings(store: Arc<dyn Store>, settings: Settings) -> String {
    let app = Application::build(store, settings, "127.0.0.1:0")
        .await
        .unwrap();
    let base = format!("http://{}", app.local_addr());
    tokio::spawn(app.run_until(std::future::pending()));
    base
}

/// One app per backend under test.
pub async fn apps() -> Vec<TestApp> {
    let mut out = Vec::new();
    for url in tutti_store::testing::fresh_urls().await.unwrap() {
        out.push(spawn_on(tutti_store::connect(&url).await.unwrap()).await);
    }
    out
}

impl TestApp {
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .client
            .request(method.parse().unwrap(), format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, v)
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call("POST", path, Some(token), Some(body)).await
    }

    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call("GET", path, Some(token), None).await
    }

    pub async fn raw(
        &self,
        path: &str,
        token: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> (StatusCode, Value) {
        let r = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn text(&self, path: &str, token: &str) -> (StatusCode, String) {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        (r.status(), r.text().await.unwrap())
    }

    /// Makes a user through the API; returns (id, token).
    pub async fn user(&self, name: &str, role: &str) -> (i64, String) {
        let (s, u) = self
            .post(
                "/api/v1/users",
                &self.admin,
                json!({"name": name, "role": role}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{u}");
        let id = u["id"].as_i64().unwrap();
        let (s, t) = self
            .post(
                "/api/v1/tokens",
                &self.admin,
                json!({"name": "t", "user_id": id}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{t}");
        (id, t["token"].as_str().unwrap().to_owned())
    }

    /// A workspace owned by a new requester, with `workers` new workers;
    /// returns (workspace, requester token, worker tokens).
    pub async fn team(&self, prefix: &str, workers: usize) -> (i64, String, Vec<String>) {
        let (_, req) = self.user(&format!("{prefix}-req"), "requester").await;
        let (s, ws) = self
            .post("/api/v1/workspaces", &req, json!({"name": prefix}))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{ws}");
        let ws = ws["id"].as_i64().unwrap();
        let mut tokens = Vec::new();
        for i in 0..workers {
            let (id, t) = self.user(&format!("{prefix}-w{i}"), "worker").await;
            let (s, m) = self
                .call(
                    "PUT",
                    &format!("/api/v1/workspaces/{ws}/members/{id}"),
                    Some(&req),
                    Some(json!({"role": "worker"})),
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{m}");
            tokens.push(t);
        }
        (ws, req, tokens)
    }

    pub async fn job(&self, ws: i64, token: &str, policy: Value) -> i64 {
        let (s, j) = self
            .post(
                &format!("/api/v1/workspaces/{ws}/jobs"),
                token,
                json!({"name": "Persons", "question": "Is ${name} a person?", "answers": ["Yes", "No"],
                       "short_instructions": "<b>Be quick</b>", "policy": policy}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{j}");
        j["id"].as_i64().unwrap()
    }

    pub async fn import_csv(&self, job: i64, token: &str, csv: &str) -> (StatusCode, Value) {
        self.raw(
            &format!("/api/v1/jobs/{job}/items"),
            token,
            "text/csv",
            csv.to_owned(),
        )
        .await
    }

    pub async fn next(&self, job: i64, token: &str) -> (StatusCode, Value) {
        self.call(
            "POST",
            &format!("/api/v1/jobs/{job}/next"),
            Some(token),
            None,
        )
        .await
    }

    pub async fn submit(&self, assignment: i64, token: &str, answer: &str) -> (StatusCode, Value) {
        self.post(
            &format!("/api/v1/assignments/{assignment}/submit"),
            token,
            json!({"answer": answer}),
        )
        .await
    }

    pub async fn progress(&self, job: i64, token: &str) -> Value {
        let (s, j) = self.get(&format!("/api/v1/jobs/{job}"), token).await;
        assert_eq!(s, StatusCode::OK, "{j}");
        j
    }
}

/// The double-submit cookie and form value of the sign-in form, as a
/// browser gets them: `(cookie header, form value)`.
pub async fn form_cookie(client: &reqwest::Client, base: &str) -> (String, String) {
    let r = client.get(format!("{base}/login")).send().await.unwrap();
    let cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("tutti_form="))
        .expect("the sign-in form sets its form cookie");
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let value = cookie.trim_start_matches("tutti_form=").to_owned();
    (cookie, value)
}

/// Signs in on the web pages with `fields` (a token, or a name and
/// password); the response of the sign-in.
pub async fn web_login(
    client: &reqwest::Client,
    base: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let (cookie, value) = form_cookie(client, base).await;
    let mut form: Vec<(&str, &str)> = vec![("form", value.as_str())];
    form.extend_from_slice(fields);
    client
        .post(format!("{base}/login"))
        .header("cookie", cookie)
        .form(&form)
        .send()
        .await
        .unwrap()
}

pub fn error_code(v: &Value) -> &str {
    v["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("not an error body: {v}"))
}

/// A fresh directory under the system's temporary directory.
pub fn test_dir(what: &str) -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let p = std::env::temp_dir().join(format!(
        "tutti-test-{what}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&p).unwrap();
    p
}

/// The outside databases test servers know: `local` (a SQLite file made
/// for each app), plus `pg` and `maria` when their test URLs are set
/// (`TUTTI_TEST_POSTGRES_URL`, `TUTTI_TEST_MYSQL_URL`).
pub fn test_databases() -> std::collections::BTreeMap<String, String> {
    let mut dbs = std::collections::BTreeMap::new();
    dbs.insert(
        "local".to_owned(),
        format!("sqlite://{}", test_dir("extdb").join("ext.db").display()),
    );
    if let Ok(u) = std::env::var("TUTTI_TEST_POSTGRES_URL") {
        dbs.insert("pg".to_owned(), u);
    }
    if let Ok(u) = std::env::var("TUTTI_TEST_MYSQL_URL") {
        dbs.insert("maria".to_owned(), u);
    }
    dbs
}
