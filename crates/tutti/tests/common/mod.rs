//! What the command-line tests share: running the binary, a free port,
//! calls to a server.
#![allow(dead_code)]

use serde_json::Value;
use std::process::Command;

pub fn tutti(db: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tutti"));
    c.env("TUTTI_DATABASE_URL", db).env("TUTTI_LOG", "warn");
    c
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub async fn call(method: &str, url: &str, token: &str, body: Option<Value>) -> (u16, Value) {
    let client = reqwest::Client::new();
    let mut req = client
        .request(method.parse().unwrap(), url)
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

pub fn create_user(db: &str, name: &str, role: &str) -> String {
    let out = tutti(db)
        .args(["user", "create", name, "--role", role])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("token: "))
        .unwrap_or_else(|| panic!("no token in {stdout}"))
        .to_owned()
}
