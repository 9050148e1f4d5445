//! `tutti bench pages`: server time of the web pages on a large job.
//!
//! Fills a fresh database through the store with one job of `--tasks` rows
//! and three answers per row (so 100,000 tasks make 300,000 answers) under
//! a 3-of-4 rule: rows answered the same three times are labeled, the rest
//! stay open for the task page. Then, against `tutti serve` started as a
//! child process, it times (from this process, so loopback HTTP is
//! included) the results browser with a filter, its later pages, and the
//! task page as fresh workers open it (each view leases a task).

use crate::bench::{Server, Target, describe, fresh_db, setup};
use clap::Args;
use std::sync::Arc;
use std::time::Instant;
use tutti_domain::policy::Side;
use tutti_store::{ImportMsg, ImportRow, LeaseOutcome, LeaseRequest, Store, SubmitRequest};

/// `tutti bench pages`.
#[derive(Args)]
pub struct PagesArgs {
    #[command(flatten)]
    target: Target,
    /// Rows in the job (each gets three answers).
    #[arg(long, default_value_t = 100_000)]
    tasks: usize,
    /// Timed requests per page.
    #[arg(long, default_value_t = 200)]
    requests: usize,
}

/// The answer worker `w` gives row `seq`: every third row draws a split.
fn answer(seq: i64, w: usize) -> &'static str {
    match (seq % 3, seq % 2, w) {
        (0, _, 1) => "No",
        (0, _, _) => "Yes",
        (_, 0, _) => "Yes",
        _ => "No",
    }
}

pub async fn pages(args: PagesArgs) -> anyhow::Result<()> {
    let db = fresh_db(&args.target);
    let store = tutti_store::connect(&db).await?;
    // Three answering workers, then one fresh worker per timed task page.
    let (job, requester, tokens) = setup(store.as_ref(), 3 + args.requests, 3, 4, None).await?;
    let started = Instant::now();
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    let rows = args.tasks;
    tokio::spawn(async move {
        for start in (0..rows).step_by(10_000) {
            let batch = (start..(start + 10_000).min(rows))
                .map(|i| {
                    ImportRow::plain(
                        serde_json::json!({"name": format!("item {i}"), "note": format!("row number {i} of the bench")})
                            .to_string(),
                    )
                })
                .collect();
            if tx.send(ImportMsg::Rows(batch)).await.is_err() {
                return;
            }
        }
        let _ = tx.send(ImportMsg::Done).await;
    });
    store.import_tasks(&job, rx).await?;
    // The answers, through the store's own lease and submit.
    let workers: Vec<_> = {
        let mut out = Vec::new();
        for i in 0..3 {
            let u = store
                .get_user_by_name(&format!("bench-worker-{i}"))
                .await?
                .ok_or_else(|| anyhow::anyhow!("the bench worker {i} is missing"))?;
            out.push(u.id);
        }
        out
    };
    let mut handles = Vec::new();
    for (w, worker) in workers.into_iter().enumerate() {
        let store: Arc<dyn Store> = store.clone();
        let job = job.clone();
        handles.push(tokio::spawn(async move {
            // Each worker asks for its next task, as the task page does,
            // until nothing is left for it.
            let mut answered = 0u64;
            loop {
                let now = tutti_store::now();
                let req = LeaseRequest {
                    job: job.id,
                    policy: job.config.policy,
                    worker,
                    side: Side::Worker,
                    gold: false,
                    besides: None,
                    now,
                };
                let a = match store.next_assignment(&req).await? {
                    LeaseOutcome::Leased(a) | LeaseOutcome::Held(a) => a,
                    _ => break,
                };
                store
                    .submit(&SubmitRequest {
                        assignment: a.id,
                        worker,
                        policy: job.config.policy,
                        answer: answer(a.seq, w).into(),
                        grade: None,
                        idempotency_key: None,
                        evidence: None,
                        now,
                    })
                    .await?;
                answered += 1;
            }
            anyhow::Ok(answered)
        }));
    }
    let mut answers = 0;
    for h in handles {
        answers += h.await??;
    }
    println!(
        "bench pages: {} tasks, {answers} answers, filled in {:.1} s, database {}",
        args.tasks,
        started.elapsed().as_secs_f64(),
        tutti_store::redact_url(&db)
    );
    let server = Server::start(&db).await?;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let get = |path: String, token: String| {
        let client = client.clone();
        let base = server.base.clone();
        async move {
            let t = Instant::now();
            let r = client
                .get(format!("{base}{path}"))
                .header("cookie", format!("tutti_token={token}"))
                .send()
                .await?;
            let status = r.status();
            let body = r.bytes().await?;
            anyhow::ensure!(status.is_success(), "{path}: {status}");
            anyhow::Ok((t.elapsed().as_micros() as u32, body.len()))
        }
    };
    let id = job.id.0;
    // One untimed view first, as a person's first visit warms the caches.
    get(format!("/jobs/{id}?label=Yes"), requester.clone()).await?;
    for (name, path) in [
        ("results", format!("/jobs/{id}")),
        (
            "filter",
            format!("/jobs/{id}?state=labeled&label=Yes&min_confidence=0.5"),
        ),
        ("search", format!("/jobs/{id}?q=item+4242")),
        // A word every row holds, and one too short for the index.
        ("search-all", format!("/jobs/{id}?q=bench")),
        ("search-short", format!("/jobs/{id}?q=42")),
        (
            "deep",
            format!("/jobs/{id}?label=No&cursor={}", args.tasks * 9 / 10),
        ),
        ("workers", format!("/jobs/{id}/workers")),
        ("home", "/".to_owned()),
    ] {
        let mut micros = Vec::with_capacity(args.requests);
        let mut size = 0;
        for _ in 0..args.requests {
            let (us, len) = get(path.clone(), requester.clone()).await?;
            micros.push(us);
            size = len;
        }
        print!("  [{size:>6} B] ");
        describe(name, micros);
    }
    let mut micros = Vec::with_capacity(args.requests);
    let mut size = 0;
    for token in tokens.iter().skip(3).take(args.requests) {
        let (us, len) = get(format!("/work/{id}"), token.clone()).await?;
        micros.push(us);
        size = len;
    }
    print!("  [{size:>6} B] ");
    describe("task", micros);
    let (_, css) = get("/assets/work.css".into(), requester.clone()).await?;
    let (_, js) = get("/assets/work.js".into(), requester.clone()).await?;
    println!("  task page assets: work.css {css} B, work.js {js} B");
    Ok(())
}
