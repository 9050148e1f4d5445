//! `tutti label` from the terminal: a run killed with SIGKILL at random
//! moments and started again ends with exactly the tables of a run left
//! alone; bad input ends with a clear message and a failure exit.

mod common;

use rand::Rng as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn dir(what: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("tutti-cli-label-{what}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).unwrap();
    p
}

fn tutti() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tutti"));
    c.env("TUTTI_LOG", "warn");
    c
}

fn label(d: &Path, output: &str) -> Command {
    let mut c = tutti();
    c.args(["label", "--patterns"])
        .arg(d.join("patterns.csv"))
        .arg("--input")
        .arg(d.join("posts.sqlite"))
        .args(["--table", "posts", "--column", "author_name", "--output"])
        .arg(d.join(output))
        .args(["--batch-rows", "2000", "--commit-rows", "4000"]);
    c
}

/// Every result row but its task id, and every production row, in order.
fn tables(path: &Path) -> (Vec<String>, Vec<String>) {
    let conn = rusqlite::Connection::open(path).unwrap();
    let read = |sql: &str| -> Vec<String> {
        let mut stmt = conn.prepare(sql).unwrap();
        stmt.query_map([], |r| r.get::<_, String>(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    (
        read(
            "SELECT seq || '|' || id || '|' || source || '|' || author || '|' || label || '|' || pattern || '|' || \
             create_time FROM posts_author_name ORDER BY seq",
        ),
        read(
            "SELECT seq || '|' || id || '|' || source_author || '|' || panel FROM wh_panel_mapping_posts_author_name \
             ORDER BY seq",
        ),
    )
}

#[test]
fn a_labeling_run_killed_at_random_moments_ends_with_the_tables_of_an_uninterrupted_run() {
    let d = dir("kill");
    let made = tutti()
        .args([
            "bench",
            "posts",
            "--rows",
            "150000",
            "--authors",
            "20000",
            "--out",
        ])
        .arg(d.join("posts.sqlite"))
        .arg("--patterns")
        .arg(d.join("patterns.csv"))
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );

    let started = Instant::now();
    let clean = label(&d, "clean.sqlite").output().unwrap();
    assert!(
        clean.status.success(),
        "{}",
        String::from_utf8_lossy(&clean.stderr)
    );
    let line = String::from_utf8_lossy(&clean.stdout).into_owned();
    assert!(line.contains("rows=150000"), "{line}");
    let full = started.elapsed();

    let mut rng = rand::rng();
    let mut kills = 0;
    let mut midway = 0;
    let mut full = full;
    let mut early = 0;
    loop {
        let began = Instant::now();
        let mut child = label(&d, "out.sqlite")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        if kills < 6 {
            // Past start-up (a tenth of a run), before the end.
            let ms = full.as_millis().max(50) as u64;
            let wait = rng.random_range(ms / 10..ms * 4 / 5);
            std::thread::sleep(Duration::from_millis(wait));
            if midway == 0 && early < 20 && child.try_wait().unwrap().is_some() {
                // Faster than the first run (a warm cache): aim by this
                // run's time and start over on a fresh output.
                full = full.min(began.elapsed());
                early += 1;
                let _ = std::fs::remove_file(d.join("out.sqlite"));
                let _ = std::fs::remove_file(d.join("out.sqlite-journal"));
                continue;
            }
            if child.try_wait().unwrap().is_none() {
                child.kill().unwrap();
                child.wait().unwrap();
                kills += 1;
                let checkpoint: i64 = rusqlite::Connection::open(d.join("out.sqlite"))
                    .ok()
                    .and_then(|c| {
                        c.query_row("SELECT checkpoint_rows FROM state", [], |r| r.get(0))
                            .ok()
                    })
                    .unwrap_or(0);
                if checkpoint > 0 && checkpoint < 150_000 {
                    midway += 1;
                }
                if checkpoint == 150_000 && midway == 0 && kills < 6 {
                    // Finished before the kill: start over on a fresh output.
                    let _ = std::fs::remove_file(d.join("out.sqlite"));
                    let _ = std::fs::remove_file(d.join("out.sqlite-journal"));
                    continue;
                }
                if checkpoint == 150_000 {
                    // It finished before the kill; run it again to see it
                    // refuse to label the rows twice.
                    let again = label(&d, "out.sqlite").output().unwrap();
                    assert!(!again.status.success());
                    let e = String::from_utf8_lossy(&again.stderr).into_owned();
                    assert!(e.contains("has already labeled these rows"), "{e}");
                    break;
                }
                continue;
            }
        }
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        break;
    }
    assert_eq!(
        tables(&d.join("out.sqlite")),
        tables(&d.join("clean.sqlite"))
    );
    // One task, resumed each time, finished.
    let conn = rusqlite::Connection::open(d.join("out.sqlite")).unwrap();
    let states: Vec<(String, i64)> = conn
        .prepare("SELECT stat, length_receive_table FROM state")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(states, [("SUCCESS".to_owned(), 150_000)]);
    eprintln!("killed {kills} times, {midway} of them between checkpoints");
    assert!(
        midway > 0,
        "no kill landed after a checkpoint; the test proved nothing"
    );
}

#[test]
fn bad_input_ends_with_a_message_and_a_failure_exit() {
    let d = dir("bad");
    std::fs::write(d.join("empty.csv"), "").unwrap();
    std::fs::write(
        d.join("posts.csv"),
        "id,source,author_name,create_time\n1,S,Mary,2020-01-01 00:00:00\n",
    )
    .unwrap();
    std::fs::write(d.join("patterns.csv"), "label,pattern\n/f,mary\n").unwrap();
    let run = |args: &[&str]| {
        let out = tutti()
            .current_dir(&d)
            .arg("label")
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} succeeded");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let e = run(&[
        "--patterns",
        "empty.csv",
        "--input",
        "posts.csv",
        "--output",
        "o.csv",
    ]);
    assert!(e.contains("the pattern file is empty"), "{e}");
    let e = run(&[
        "--patterns",
        "patterns.csv",
        "--input",
        "posts.csv",
        "--output",
        "o.csv",
        "--column",
        "content",
    ]);
    assert!(e.contains("no column content"), "{e}");
    let e = run(&[
        "--patterns",
        "patterns.csv",
        "--input",
        "posts.csv",
        "--output",
        "o.csv",
        "--since",
        "2021-01-01",
        "--until",
        "2020-01-01",
    ]);
    assert!(
        e.contains("start_time must be earlier than end_time"),
        "{e}"
    );
    let e = run(&[
        "--patterns",
        "patterns.csv",
        "--input",
        "posts.xlsx",
        "--output",
        "o.csv",
    ]);
    assert!(e.contains("--input"), "{e}");
    let e = run(&[
        "--patterns",
        "patterns.csv",
        "--input",
        "postgres://nobody@127.0.0.1:9/x",
        "--table",
        "posts",
        "--output",
        "o.csv",
    ]);
    assert!(
        e.contains("cannot reach the input database at 127.0.0.1:9"),
        "{e}"
    );
    assert!(!d.join("o.csv").exists() && !d.join("o.csv.partial").exists());
}
