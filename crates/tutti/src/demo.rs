//! `tutti demo`: a workspace with an admin, a requester, two workers and a
//! job of a few hundred items ("Is this a person?", Cymphony's example),
//! so that a new user can try everything at once. Running it again on the
//! same database reuses what is there and prints fresh tokens.

use std::net::SocketAddr;
use tutti_domain::job::{JobConfig, JobSpec};
use tutti_domain::role::Role;
use tutti_store::{ImportMsg, ImportRow, NewUser, Store, User};

const FIRST: &[&str] = &[
    "Ada", "Alan", "Grace", "Edsger", "Barbara", "Donald", "Frances", "John", "Margaret", "Ken",
    "Radia", "Niklaus", "Sophie", "Tim", "Hedy", "Claude",
];
const LAST: &[&str] = &[
    "Lovelace",
    "Turing",
    "Hopper",
    "Dijkstra",
    "Liskov",
    "Knuth",
    "Allen",
    "Backus",
    "Hamilton",
    "Thompson",
    "Perlman",
    "Wirth",
    "Wilson",
    "Berners-Lee",
    "Lamarr",
    "Shannon",
];
const THINGS: &[&str] = &[
    "Paris",
    "Mount Everest",
    "Amazon River",
    "Golden Gate Bridge",
    "Rosetta Stone",
    "Linux",
    "Acme Corporation",
    "Hubble Space Telescope",
    "Sahara",
    "Eiffel Tower",
    "Python",
    "Toyota",
    "Lake Geneva",
    "Mona Lisa",
    "Jupiter",
    "Oxford University",
    "Nile",
    "Kilimanjaro",
];

/// The demo rows: `name` and a `source` hint, people and things mixed.
fn rows(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let (name, kind) = if i % 3 == 2 {
                (
                    format!("{} {}", THINGS[i % THINGS.len()], i / THINGS.len() + 1),
                    "encyclopedia",
                )
            } else {
                (
                    format!(
                        "{} {}",
                        FIRST[i % FIRST.len()],
                        LAST[(i / FIRST.len() + i) % LAST.len()]
                    ),
                    "directory",
                )
            };
            serde_json::json!({"name": name, "source": kind}).to_string()
        })
        .collect()
}

async fn user(store: &dyn Store, name: &str, role: Role) -> anyhow::Result<User> {
    if let Some(u) = store.get_user_by_name(name).await? {
        return Ok(u);
    }
    let display_name = name.replace('-', " ");
    Ok(store
        .create_user(
            &NewUser {
                name: name.to_owned(),
                display_name,
                role,
            },
            tutti_store::now(),
        )
        .await?)
}

/// The web sign-in password of every demo user.
pub const DEMO_PASSWORD: &str = "tutti-demo-password";

/// Creates (or finds) the demo data; returns `(user, token)` pairs.
pub async fn populate(store: &dyn Store, items: usize) -> anyhow::Result<Vec<(String, String)>> {
    let admin = user(store, "admin", Role::Admin).await?;
    let requester = user(store, "requester", Role::Requester).await?;
    let workers = [
        user(store, "worker-1", Role::Worker).await?,
        user(store, "worker-2", Role::Worker).await?,
    ];
    let ws = match store
        .list_workspaces(Some(requester.id), None, 1)
        .await?
        .into_iter()
        .next()
    {
        Some(ws) => ws,
        None => {
            let ws = store
                .create_workspace("Demo", requester.id, tutti_store::now())
                .await?;
            for w in &workers {
                store.set_member(ws.id, w.id, Role::Worker).await?;
            }
            let spec: JobSpec = serde_json::from_value(serde_json::json!({
                "name": "Is this a person?",
                "question": "Is ${name} a person?",
                "answers": ["Yes", "No"],
                "short_instructions": "<p>Answer <b>Yes</b> if the name belongs to a person, <b>No</b> for places, things and organisations.</p>",
                "long_instructions": "<p>Names come from a directory of people and an encyclopedia of places and things. Numbers after a name only tell items apart. When unsure, answer by the most common meaning.</p>",
                "policy": {"k": 2, "n": 3, "time_limit_secs": 600}
            }))?;
            let job = store
                .create_job(
                    ws.id,
                    &JobConfig::parse(spec)?,
                    requester.id,
                    tutti_store::now(),
                )
                .await?;
            let (tx, rx) = tokio::sync::mpsc::channel(2);
            tx.send(ImportMsg::Rows(
                rows(items).into_iter().map(ImportRow::plain).collect(),
            ))
            .await?;
            tx.send(ImportMsg::Done).await?;
            store.import_tasks(&job, rx).await?;
            ws
        }
    };
    let _ = ws;
    let mut tokens = Vec::new();
    let phc = tutti_server::auth::hash_password(DEMO_PASSWORD.to_owned())
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.message))?;
    for u in [&admin, &requester, &workers[0], &workers[1]] {
        store.set_password(u.id, Some(&phc)).await?;
        tokens.push((u.name.clone(), crate::issue(store, u, "demo").await?));
    }
    Ok(tokens)
}

/// Tells the person what to do next.
pub fn print_welcome(addr: SocketAddr, tokens: &[(String, String)]) {
    let base = format!("http://{addr}");
    println!();
    println!("Tutti demo is running at {base}");
    println!(
        "  Web pages:    {base}/login  (sign in as one of the users below, password {DEMO_PASSWORD})"
    );
    println!("  API docs:     {base}/docs");
    println!();
    println!("Users and API tokens (shown once; make more with `tutti token create --user NAME`):");
    for (name, token) in tokens {
        println!("  {name:<10} {token}");
    }
    if let Some((_, requester)) = tokens.iter().find(|(n, _)| n == "requester") {
        println!();
        println!("Try:");
        println!("  curl -s -H 'Authorization: Bearer {requester}' {base}/api/v1/workspaces");
        println!("  curl -s -H 'Authorization: Bearer {requester}' {base}/api/v1/jobs/1");
    }
    println!();
    println!("Stop with Ctrl-C.");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_rows_mix_people_and_things() {
        let r = rows(300);
        assert_eq!(r.len(), 300);
        assert!(r.iter().any(|s| s.contains("directory")));
        assert!(r.iter().any(|s| s.contains("encyclopedia")));
    }
}
