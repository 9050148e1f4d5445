//! Bulk labeling end to end: real SQLite files (and PostgreSQL and
//! MariaDB tables when TUTTI_TEST_POSTGRES_URL / TUTTI_TEST_MYSQL_URL are
//! set) in, result and production tables out.

use rusqlite::Connection;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use tutti_engine::bulk::task::{Place, Task};
use tutti_engine::bulk::{Control, LabelError, Progress, TimeRange};

fn dir(what: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let p = std::env::temp_dir().join(format!(
        "tutti-bulk-{what}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).unwrap();
    p
}

const PATTERNS: &str = "label,pattern,kind,priority\n\
/female,mary,keyword,0\n\
/female,ann,keyword,0\n\
/male,mary ann jr,keyword,0\n\
/male,john,keyword,1\n\
/male,林超,keyword,0\n\
/vip,(?i)^dr\\.? ,regex,0\n";

/// (id, source, author, content, time)
type Post = (String, String, Option<String>, Option<String>, String);

fn posts() -> Vec<Post> {
    let p = |id: &str, s: &str, a: Option<&str>, c: Option<&str>, t: &str| {
        (
            id.to_owned(),
            s.to_owned(),
            a.map(str::to_owned),
            c.map(str::to_owned),
            t.to_owned(),
        )
    };
    vec![
        p(
            "01",
            "S1",
            Some("Mary Smith"),
            Some("hello"),
            "2020-01-01 00:00:01",
        ),
        p(
            "02",
            "S1",
            Some("Mary Smith"),
            Some("John here"),
            "2020-01-02 00:00:00",
        ),
        p("03", "S1", Some("Mary Ann Jr"), None, "2020-01-03 00:00:00"),
        p(
            "04",
            "S2",
            Some("JOHN mary"),
            Some("x"),
            "2020-01-04 00:00:00",
        ),
        p(
            "05",
            "S2",
            Some("Ｍａｒｙ　Ｗ"),
            Some("x"),
            "2020-01-05 00:00:00",
        ),
        p(
            "06",
            "S2",
            Some("WH_林超哥"),
            Some("x"),
            "2020-01-06 00:00:00",
        ),
        p(
            "07",
            "S3",
            Some("Dr. Who"),
            Some("x"),
            "2020-01-07 00:00:00",
        ),
        p("08", "S3", None, Some("ann"), "2020-01-08 00:00:00"),
        p("09", "S3", Some("nobody"), Some("x"), "2021-06-01 00:00:00"),
        p(
            "10",
            "S1",
            Some("mary smith"),
            Some("x"),
            "2020-01-09 00:00:00",
        ),
        p(
            "11",
            "S2",
            Some("JOHN mary"),
            Some("x"),
            "2020-01-10 00:00:00",
        ),
    ]
}

fn write_posts(path: &Path, rows: &[Post]) {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(
        "CREATE TABLE posts (id TEXT, source TEXT, author_name TEXT, content TEXT, create_time TEXT)",
    )
    .unwrap();
    for r in rows {
        conn.execute(
            "INSERT INTO posts VALUES (?1, ?2, ?3, ?4, ?5)",
            rusqlite::params![r.0, r.1, r.2, r.3, r.4],
        )
        .unwrap();
    }
}

fn run(task: &Task) -> Result<(String, Progress), LabelError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let mut p = task.prepare(rt.handle())?;
    let out = p.run(&Control::default(), &mut |_| {});
    out.map(|progress| (p.task_id(), progress))
}

fn sqlite_task(input: &Path, output: &Path) -> Task {
    let mut t = Task::new(
        PATTERNS.as_bytes().to_vec(),
        Place::Sqlite(input.display().to_string()),
        Place::Sqlite(output.display().to_string()),
        "author_name",
    );
    t.table = Some("posts".into());
    t.batch_rows = 3;
    t
}

/// (id, label, pattern) of a task's result rows.
fn results(output: &Path, table: &str) -> BTreeSet<(String, String, String)> {
    let conn = Connection::open(output).unwrap();
    let mut stmt = conn
        .prepare(&format!("SELECT id, label, pattern FROM \"{table}\""))
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// (source_author, panel, id) of a task's production rows.
fn production(output: &Path, table: &str) -> BTreeSet<(String, String, String)> {
    let conn = Connection::open(output).unwrap();
    let mut stmt = conn
        .prepare(&format!(
            "SELECT source_author, panel, id FROM \"wh_panel_mapping_{table}\""
        ))
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn set(items: &[(&str, &str, &str)]) -> BTreeSet<(String, String, String)> {
    items
        .iter()
        .map(|(a, b, c)| ((*a).into(), (*b).into(), (*c).into()))
        .collect()
}

#[test]
fn a_sqlite_table_is_labeled_into_result_and_production_tables_by_the_documented_rule() {
    let d = dir("rule");
    let (input, output) = (d.join("posts.db"), d.join("out.db"));
    write_posts(&input, &posts());
    let (task_id, p) = run(&sqlite_task(&input, &output)).unwrap();
    assert_eq!(task_id.len(), 32);
    assert_eq!(p.received, 11);
    assert_eq!(
        results(&output, "posts_author_name"),
        set(&[
            ("01", "/female", "mary"),
            ("02", "/female", "mary"),
            // The longest keyword wins over the words inside it.
            ("03", "/male", "mary ann jr"),
            ("04", "/male", "john"),
            ("04", "/female", "mary"),
            // Full width and the ideographic space fold to ASCII.
            ("05", "/female", "mary"),
            // CJK keywords match inside unspaced text.
            ("06", "/male", "林超"),
            ("07", "/vip", "(?i)^dr\\.? "),
            ("10", "/female", "mary"),
            ("11", "/male", "john"),
            ("11", "/female", "mary"),
        ])
    );
    assert_eq!((p.labeled_rows, p.result_rows), (9, 11));
    // S2_JOHN mary: /male and /female twice each; /male has priority 1.
    // S1_Mary Smith and S1_mary smith are different authors.
    assert_eq!(
        production(&output, "posts_author_name"),
        set(&[
            ("S1_Mary Smith", "/female", "01"),
            ("S1_Mary Ann Jr", "/male", "03"),
            ("S2_JOHN mary", "/male", "04"),
            ("S2_Ｍａｒｙ　Ｗ", "/female", "05"),
            ("S2_WH_林超哥", "/male", "06"),
            ("S3_Dr. Who", "/vip", "07"),
            ("S1_mary smith", "/female", "10"),
        ])
    );
    // 9 distinct (source, author) pairs, the NULL author among them.
    assert_eq!(p.unique_pairs, 9);
    assert_eq!(p.production_rows, Some(7));
    let conn = Connection::open(&output).unwrap();
    let (stat, prod, received, rate): (String, String, i64, f64) = conn
        .query_row(
            "SELECT stat, prod_stat, length_receive_table, rate_of_label FROM state WHERE task_id = ?1",
            [&task_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!(
        (stat.as_str(), prod.as_str(), received),
        ("SUCCESS", "finish", 11)
    );
    assert_eq!(rate, 77.78);
    // A new output file has large pages: appends write fewer of them.
    let page: i64 = conn
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .unwrap();
    assert_eq!(page, 65536);
    drop(conn);

    // A tally over its memory budget leaves the production step to a
    // query, with the same outcome.
    let by_query = d.join("by-query.db");
    let mut t = sqlite_task(&input, &by_query);
    t.tally_budget = Some(2);
    let (_, q) = run(&t).unwrap();
    assert_eq!(q.production_rows, Some(7));
    assert_eq!(
        production(&by_query, "posts_author_name"),
        production(&output, "posts_author_name")
    );

    // The same task again finds the finished one and writes nothing twice.
    let again = run(&sqlite_task(&input, &output)).unwrap_err();
    assert!(
        again.message.contains("has already labeled these rows"),
        "{again}"
    );
    assert_eq!(results(&output, "posts_author_name").len(), 11);
}

#[test]
fn the_time_range_keeps_only_rows_inside_it_and_must_run_forwards() {
    let d = dir("range");
    let (input, output) = (d.join("posts.db"), d.join("out.db"));
    write_posts(&input, &posts());
    Connection::open(&input)
        .unwrap()
        .execute_batch("CREATE INDEX posts_time ON posts (create_time)")
        .unwrap();
    let mut t = sqlite_task(&input, &output);
    t.range = TimeRange::parse(Some("2020-01-02"), Some("2020-01-05")).unwrap();
    let (_, p) = run(&t).unwrap();
    assert_eq!(p.received, 3);
    assert_eq!(
        results(&output, "posts_author_name"),
        set(&[
            ("02", "/female", "mary"),
            ("03", "/male", "mary ann jr"),
            ("04", "/male", "john"),
            ("04", "/female", "mary"),
        ])
    );
    let e = TimeRange::parse(Some("2021-01-01"), Some("2020-01-01")).unwrap_err();
    assert_eq!(e.message, "start_time must be earlier than end_time");
}

#[test]
fn tables_with_sparse_or_extreme_rowids_or_a_column_named_rowid_are_labeled_like_any_other() {
    let d = dir("rowids");
    let output = d.join("out.db");
    let plain = d.join("plain.db");
    write_posts(&plain, &posts());
    let mut t = sqlite_task(&plain, &output);
    t.result = Some("plain".into());
    let (_, expected) = run(&t).unwrap();
    let (want, want_prod) = (results(&output, "plain"), production(&output, "plain"));
    assert!(!want.is_empty());
    let rows = posts();
    // Rowids from the smallest to the largest there are, far apart (chunks
    // by rowid would number in the quadrillions), in the posts' order.
    let sparse: Vec<i64> = (0..rows.len() as i64)
        .map(|i| match i {
            0 => i64::MIN,
            1 => -7,
            i if i == rows.len() as i64 - 1 => i64::MAX,
            i => i * (1 << 58) / 2 + 3,
        })
        .collect();
    let n = rows.len() as i64;
    let top: Vec<i64> = (0..n).map(|i| i64::MAX - n + 1 + i).collect();
    let bottom: Vec<i64> = (0..n).map(|i| i64::MIN + i).collect();
    for (name, setup, column_named_rowid, rowids) in [
        ("sparse", "", false, &sparse),
        // WAL: the pages are left to SQL.
        ("sparse_wal", "PRAGMA journal_mode = WAL;", false, &sparse),
        // Dense at either end of the range: chunks by rowid, whose bounds
        // must not overflow.
        ("top", "", false, &top),
        ("bottom_wal", "PRAGMA journal_mode = WAL;", false, &bottom),
        ("named_rowid", "", true, &sparse),
    ] {
        let input = d.join(format!("{name}.db"));
        let conn = Connection::open(&input).unwrap();
        conn.execute_batch(&format!(
            "{setup} CREATE TABLE posts ({}id TEXT, source TEXT, author_name TEXT, content TEXT, create_time TEXT)",
            if column_named_rowid { "rowid INTEGER, " } else { "" }
        ))
        .unwrap();
        for (i, r) in rows.iter().enumerate() {
            if column_named_rowid {
                // The column runs backwards; the real rowid forwards.
                conn.execute(
                    "INSERT INTO posts VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    rusqlite::params![-(i as i64), r.0, r.1, r.2, r.3, r.4],
                )
                .unwrap();
            } else {
                conn.execute(
                    "INSERT INTO posts (_rowid_, id, source, author_name, content, create_time) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    rusqlite::params![rowids[i], r.0, r.1, r.2, r.3, r.4],
                )
                .unwrap();
            }
        }
        drop(conn);
        let mut t = sqlite_task(&input, &output);
        t.result = Some(name.into());
        let (_, got) = run(&t).unwrap();
        assert_eq!(got.received, expected.received, "{name}");
        assert_eq!(got.result_rows, expected.result_rows, "{name}");
        assert_eq!(results(&output, name), want, "{name}");
        assert_eq!(production(&output, name), want_prod, "{name}");
    }
}

/// Runs `t` and stops it once `rows` rows are committed; the run must
/// fail.
fn stop_once_committed(t: &Task, rows: u64) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let mut prepared = t.prepare(rt.handle()).unwrap();
    let control = Control::default();
    let run = prepared.run(&control, &mut |p| {
        if p.checkpoint_rows >= rows {
            control.stop();
        }
    });
    assert!(run.is_err(), "the stopped task must fail");
}

#[test]
fn a_resumed_task_refuses_a_source_whose_row_at_the_checkpoint_changed() {
    let d = dir("changed");
    let (input, output) = (d.join("posts.db"), d.join("out.db"));
    let rows: Vec<Post> = (0..20_000)
        .map(|i| {
            (
                format!("{i}"),
                "S1".to_owned(),
                Some(format!("Mary Smith {i}")),
                Some("x".to_owned()),
                "2020-01-01 00:00:00".to_owned(),
            )
        })
        .collect();
    write_posts(&input, &rows);
    let mut t = sqlite_task(&input, &output);
    t.batch_rows = 500;
    t.commit_rows = 1000;
    stop_once_committed(&t, 2000);
    let cp: i64 = Connection::open(&output)
        .unwrap()
        .query_row("SELECT checkpoint_rows FROM state", [], |r| r.get(0))
        .unwrap();
    assert!((2000..20_000).contains(&cp), "checkpoint {cp}");
    // The row at the checkpoint (its rowid is its place) gets another id.
    Connection::open(&input)
        .unwrap()
        .execute("UPDATE posts SET id = 'changed' WHERE rowid = ?1", [cp])
        .unwrap();
    let e = run(&t).unwrap_err();
    assert!(
        e.message
            .contains("has changed since this task's checkpoint")
            && e.message.contains("\"changed\""),
        "{e}"
    );
}

/// A source that fails after a number of chunks, around the real one.
#[test]
fn a_task_that_fails_midway_resumes_from_its_checkpoint_without_duplicates() {
    let d = dir("resume");
    let (input, output, clean) = (d.join("posts.db"), d.join("out.db"), d.join("clean.db"));
    // Enough rows for many commits.
    let mut rows = Vec::new();
    for i in 0..12_000 {
        let author = match i % 7 {
            0 => "Mary Smith",
            1 => "John Doe",
            2 => "Ann Lee",
            _ => "Nobody Here",
        };
        rows.push((
            format!("{i}"),
            format!("S{}", i % 13),
            Some(format!("{author} {}", i % 101)),
            Some("x".to_owned()),
            format!("2020-01-01 00:00:{:02}", i % 60),
        ));
    }
    write_posts(&input, &rows);
    let mut uninterrupted = sqlite_task(&input, &clean);
    uninterrupted.batch_rows = 500;
    let (_, want) = run(&uninterrupted).unwrap();

    let mut t = sqlite_task(&input, &output);
    t.batch_rows = 500;
    t.commit_rows = 2000;
    stop_once_committed(&t, 3000);
    let conn = Connection::open(&output).unwrap();
    let (stat, cp): (String, i64) = conn
        .query_row("SELECT stat, checkpoint_rows FROM state", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(stat, "FAILURE");
    assert!(cp > 0 && cp < 12_000, "checkpoint {cp}");
    let written: i64 = conn
        .query_row("SELECT count(*) FROM posts_author_name", [], |r| r.get(0))
        .unwrap();
    assert!(written > 0 && (written as u64) < want.result_rows);
    drop(conn);

    // The same task again (found by its configuration) carries on.
    let (_, got) = run(&t).unwrap();
    assert_eq!(got.received, want.received);
    assert_eq!(got.result_rows, want.result_rows);
    assert_eq!(got.production_rows, want.production_rows);
    assert_eq!(got.unique_pairs, want.unique_pairs);
    assert_eq!(
        results(&output, "posts_author_name"),
        results(&clean, "posts_author_name")
    );
    let count: i64 = Connection::open(&output)
        .unwrap()
        .query_row("SELECT count(*) FROM posts_author_name", [], |r| r.get(0))
        .unwrap();
    assert_eq!(count as u64, want.result_rows, "no row written twice");
    assert_eq!(
        production(&output, "posts_author_name"),
        production(&clean, "posts_author_name")
    );
}

#[test]
fn bad_inputs_fail_with_a_message_that_names_the_problem() {
    let d = dir("bad");
    let (input, output) = (d.join("posts.db"), d.join("out.db"));
    write_posts(&input, &posts());
    let mut t = sqlite_task(&input, &output);
    t.patterns = b"label,pattern\n".to_vec();
    assert!(run(&t).unwrap_err().message.contains("no patterns"));
    t.patterns = b"label,pattern,kind\n/a,(x,regex\n".to_vec();
    assert!(run(&t).unwrap_err().message.contains("line 2"));
    t.patterns = PATTERNS.as_bytes().to_vec();
    t.columns.field = "missing".into();
    let e = run(&t).unwrap_err();
    assert!(e.message.contains("no column missing"), "{e}");
    t.columns.field = "author_name".into();
    t.table = Some("nope".into());
    assert!(run(&t).unwrap_err().message.contains("no table named nope"));
    t.table = Some("posts; DROP TABLE posts".into());
    assert!(run(&t).unwrap_err().message.contains("not a valid name"));

    // Invalid UTF-8 in a row: the task fails and says which row.
    let conn = Connection::open(&input).unwrap();
    conn.execute(
        "INSERT INTO posts VALUES ('bad', 'S9', CAST(X'4D61FF7279' AS TEXT), 'x', '2020-02-01 00:00:00')",
        [],
    )
    .unwrap();
    drop(conn);
    t.table = Some("posts".into());
    let e = run(&t).unwrap_err();
    assert!(
        e.message.contains("\"bad\"") && e.message.contains("UTF-8"),
        "{e}"
    );
    let stat: String = Connection::open(&output)
        .unwrap()
        .query_row(
            "SELECT stat FROM state ORDER BY create_time DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(stat, "FAILURE");

    // An unreachable server.
    let mut t = Task::new(
        PATTERNS.as_bytes().to_vec(),
        Place::Server("mysql://root@127.0.0.1:9/test".into()),
        Place::Sqlite(output.display().to_string()),
        "author_name",
    );
    t.table = Some("posts".into());
    let e = run(&t).unwrap_err();
    assert!(
        e.message
            .contains("cannot reach the input database at 127.0.0.1:9"),
        "{e}"
    );
}

#[test]
fn csv_and_json_lines_files_are_labeled_into_files_written_whole() {
    let d = dir("files");
    let csv = d.join("posts.csv");
    let mut text = String::from("\u{feff}id,source,author_name,content,create_time\r\n");
    for p in posts() {
        text.push_str(&format!(
            "{},{},\"{}\",{},{}\r\n",
            p.0,
            p.1,
            p.2.unwrap_or_default(),
            p.3.unwrap_or_default(),
            p.4
        ));
    }
    std::fs::write(&csv, text).unwrap();
    let out = d.join("labels.jsonl");
    let t = Task::new(
        PATTERNS.as_bytes().to_vec(),
        Place::Csv(csv.display().to_string()),
        Place::Jsonl(out.display().to_string()),
        "author_name",
    );
    let (_, p) = run(&t).unwrap();
    assert_eq!(
        (p.received, p.result_rows, p.production_rows),
        (11, 11, Some(7))
    );
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 11);
    assert_eq!(lines[0]["label"], "/female");
    assert_eq!(lines[0]["match_content"], "Mary Smith");
    let prod = std::fs::read_to_string(d.join("labels.production.jsonl")).unwrap();
    assert_eq!(prod.lines().count(), 7);
    assert!(!d.join("labels.jsonl.partial").exists());

    // JSON lines in, CSV out.
    let jsonl = d.join("posts.jsonl");
    let mut text = String::new();
    for p in posts() {
        text.push_str(
            &serde_json::json!({"id": p.0, "source": p.1, "author_name": p.2, "content": p.3, "create_time": p.4})
                .to_string(),
        );
        text.push('\n');
    }
    std::fs::write(&jsonl, text).unwrap();
    let out = d.join("labels.csv");
    let t = Task::new(
        PATTERNS.as_bytes().to_vec(),
        Place::Jsonl(jsonl.display().to_string()),
        Place::Csv(out.display().to_string()),
        "content",
    );
    let (_, p) = run(&t).unwrap();
    // content: "John here" and "ann".
    assert_eq!(p.result_rows, 2);
    let written = std::fs::read_to_string(&out).unwrap();
    assert!(
        written
            .starts_with("seq,task_id,id,source,author,label,pattern,match_content,create_time\n")
    );
    assert_eq!(written.lines().count(), 3);
}

/// Loads the posts into a server database and labels them from there,
/// writing to the same server; the results equal the SQLite run's.
fn server_source_matches_sqlite(url: &str) {
    let d = dir("server");
    let (input, output) = (d.join("posts.db"), d.join("out.db"));
    write_posts(&input, &posts());
    let (_, want) = run(&sqlite_task(&input, &output)).unwrap();
    let table = format!("posts_{}", std::process::id());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use sqlx::Connection as _;
        let mysql = url.starts_with("mysql");
        let ddl = format!(
            "CREATE TABLE {table} (id VARCHAR(20) PRIMARY KEY, source TEXT, author_name TEXT, content TEXT, create_time {})",
            if mysql { "DATETIME" } else { "TIMESTAMP" }
        );
        let ph = |n: usize| if mysql { "?".to_owned() } else { format!("${n}") };
        let insert = format!(
            "INSERT INTO {table} VALUES ({}, {}, {}, {}, CAST({} AS {}))",
            ph(1),
            ph(2),
            ph(3),
            ph(4),
            ph(5),
            if mysql { "DATETIME" } else { "TIMESTAMP" }
        );
        macro_rules! load {
            ($conn:expr) => {{
                let mut c = $conn;
                sqlx::query(sqlx::AssertSqlSafe(format!("DROP TABLE IF EXISTS {table}")))
                    .execute(&mut c)
                    .await
                    .unwrap();
                sqlx::query(sqlx::AssertSqlSafe(ddl.clone()))
                    .execute(&mut c)
                    .await
                    .unwrap();
                for p in posts() {
                    sqlx::query(sqlx::AssertSqlSafe(insert.clone()))
                        .bind(p.0)
                        .bind(p.1)
                        .bind(p.2)
                        .bind(p.3)
                        .bind(p.4)
                        .execute(&mut c)
                        .await
                        .unwrap();
                }
            }};
        }
        if mysql {
            load!(sqlx::MySqlConnection::connect(url).await.unwrap());
        } else {
            load!(sqlx::PgConnection::connect(url).await.unwrap());
        }
    });
    // Server in, server out (its own result tables), and server in,
    // SQLite out.
    let result = format!("r{}", std::process::id());
    let mut t = Task::new(
        PATTERNS.as_bytes().to_vec(),
        Place::Server(url.to_owned()),
        Place::Server(url.to_owned()),
        "author_name",
    );
    t.table = Some(table.clone());
    t.result = Some(result.clone());
    t.batch_rows = 4;
    // The production step as a query on the server.
    t.tally_budget = Some(3);
    t.range = TimeRange::parse(Some("2019-01-01"), Some("2022-01-01")).unwrap();
    let (task_id, got) = run(&t).unwrap();
    assert_eq!(
        (
            got.received,
            got.result_rows,
            got.production_rows,
            got.unique_pairs
        ),
        (
            want.received,
            want.result_rows,
            want.production_rows,
            want.unique_pairs
        )
    );
    let sampled = tutti_engine::bulk::task::sample(
        rt.handle(),
        &t.output,
        None,
        &result,
        &task_id,
        &format!("wh_panel_mapping_{result}"),
        20,
    )
    .unwrap();
    assert_eq!(sampled.len(), 7);
    assert!(sampled.iter().any(|r| r["source_author"] == "S2_WH_林超哥"));
    let out2 = d.join("from-server.db");
    let mut t2 = t.clone();
    t2.output = Place::Sqlite(out2.display().to_string());
    t2.result = None;
    t2.range = TimeRange::default();
    run(&t2).unwrap();
    let name = format!("{table}_author_name");
    assert_eq!(results(&out2, &name), results(&output, "posts_author_name"));
    assert_eq!(
        production(&out2, &name),
        production(&output, "posts_author_name")
    );
}

#[test]
fn postgresql_tables_are_labeled_like_sqlite_ones() {
    let Ok(url) = std::env::var("TUTTI_TEST_POSTGRES_URL") else {
        eprintln!("TUTTI_TEST_POSTGRES_URL is not set: skipping the PostgreSQL source");
        return;
    };
    server_source_matches_sqlite(&url);
}

#[test]
fn mariadb_tables_are_labeled_like_sqlite_ones() {
    let Ok(url) = std::env::var("TUTTI_TEST_MYSQL_URL") else {
        eprintln!("TUTTI_TEST_MYSQL_URL is not set: skipping the MariaDB source");
        return;
    };
    server_source_matches_sqlite(&url);
}
