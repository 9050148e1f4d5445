//! Text search over the values of a job's rows, on each backend's own
//! index.
//!
//! A search's terms (see [`TextSearch`](tutti_domain::search::TextSearch))
//! must each occur in a row's values, joined one per line, as lower-case
//! substrings.
//!
//! - **SQLite** keeps each row's [`row_text`] in `task_search` (per job)
//!   and indexes it in `task_text`, an FTS5 table with the trigram
//!   tokenizer over it (rowid = task id), so a term of three characters or
//!   more is a phrase of trigrams the index answers without reading rows.
//!   Imports do not write them: indexing in the insert would slow an
//!   import about fifteen-fold, so [`index_batch`] indexes committed tasks
//!   in id order behind them, and a search also reads the job's few tasks
//!   past `task_text_progress.through_id` directly (there SQLite's own
//!   `lower`, which folds ASCII only, stands in for [`row_text`]'s). Terms
//!   shorter than three characters have no trigram: alongside a longer
//!   term they filter its matches; alone they scan the job's stored text.
//! - **PostgreSQL** stores [`row_text`] in `tasks.search_text` as a row is
//!   imported, under a GIN trigram index (`pg_trgm`), and each term is a
//!   `LIKE` on it: the planner reads the index for a rare term and scans
//!   the narrow column for a common one.

use crate::Backend;

/// SQLite: a task row's values, one per line, as [`row_text`] makes them
/// but for case (SQLite's `lower` folds ASCII only); `$t` is the row's
/// alias.
macro_rules! sqlite_row_text {
    ($t:literal) => {
        concat!(
            "(SELECT group_concat(CASE j.type WHEN 'true' THEN 'true' WHEN 'false' \
             THEN 'false' ELSE j.value END, char(10)) FROM json_each(",
            $t,
            ".data) j)"
        )
    };
}

/// Rows per transaction of the background indexer: about 20 ms of the
/// writer each, so leases and submits wait at most that long behind it.
pub(crate) const INDEX_BATCH: i64 = 1000;

/// SQLite: indexes up to `limit` tasks after the last one indexed, in one
/// transaction; returns how many. Task ids only grow (SQLite has one
/// writer and tasks are never deleted), so everything up to
/// `through_id` is indexed.
pub(crate) async fn index_batch(pool: &sqlx::SqlitePool, limit: i64) -> anyhow::Result<u64> {
    // Take the write lock first: a deferred transaction that read the mark
    // and then found another process (a second `tutti` on the same file)
    // had written since would fail instead of waiting its turn.
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let through: i64 = sqlx::query_scalar("SELECT through_id FROM task_text_progress")
        .fetch_one(&mut *tx)
        .await?;
    let rows: Vec<(i64, i64, String)> =
        sqlx::query_as("SELECT id, job_id, data FROM tasks WHERE id > $1 ORDER BY id LIMIT $2")
            .bind(through)
            .bind(limit)
            .fetch_all(&mut *tx)
            .await?;
    let Some(&(last, _, _)) = rows.last() else {
        return Ok(0);
    };
    // 300 rows of three values per statement, under SQLite's parameter
    // limit; positional parameters (numbered ones are looked up linearly).
    for chunk in rows.chunks(300) {
        let mut sql = String::from("INSERT INTO task_search (id, job_id, text) VALUES ");
        for i in 0..chunk.len() {
            sql.push_str(if i == 0 { "(?, ?, ?)" } else { ", (?, ?, ?)" });
        }
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (id, job, data) in chunk {
            q = q.bind(*id).bind(*job).bind(row_text(data));
        }
        q.execute(&mut *tx).await?;
    }
    sqlx::query(
        "INSERT INTO task_text (rowid, text) SELECT id, text FROM task_search \
         WHERE id > $1 AND id <= $2",
    )
    .bind(through)
    .bind(last)
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE task_text_progress SET through_id = $1")
        .bind(last)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(rows.len() as u64)
}

/// The ` AND …` clause keeping tasks `t` of job `$1` whose values hold every
/// term, numbering its parameters from `$first`, and the values to bind.
pub(crate) fn text_search_sql(
    backend: Backend,
    terms: &[String],
    first: usize,
) -> (String, Vec<String>) {
    let mut vals: Vec<String> = Vec::new();
    let param = |v: String, vals: &mut Vec<String>| {
        vals.push(v);
        format!("${}", first + vals.len() - 1)
    };
    match backend {
        Backend::Postgres => {
            let mut sql = String::new();
            for term in terms {
                let p = param(like_pattern(term), &mut vals);
                sql.push_str(&format!(" AND t.search_text LIKE {p}"));
            }
            (sql, vals)
        }
        Backend::Sqlite => {
            let (long, short): (Vec<&String>, Vec<&String>) =
                terms.iter().partition(|t| t.chars().count() >= 3);
            // The indexed rows: long words through the trigram index, short
            // ones (no trigram to look up) by reading the stored text, of
            // what the index found or else of this job's rows.
            let mut indexed = if long.is_empty() {
                String::from("SELECT id FROM task_search WHERE job_id = $1")
            } else {
                let phrases = long
                    .iter()
                    .map(|t| format!("\"{}\"", t.replace('"', "\"\"")))
                    .collect::<Vec<_>>()
                    .join(" AND ");
                format!(
                    "SELECT rowid FROM task_text WHERE task_text MATCH {}",
                    param(phrases, &mut vals)
                )
            };
            for term in &short {
                let p = param((*term).clone(), &mut vals);
                indexed.push_str(&format!(" AND instr(text, {p}) > 0"));
            }
            // The job's rows imported since, read directly.
            let mut tail = String::from(
                "SELECT u.id FROM tasks u WHERE u.id > (SELECT through_id FROM task_text_progress) \
                 AND u.job_id = $1",
            );
            for term in terms {
                let p = param(term.clone(), &mut vals);
                tail.push_str(&format!(
                    " AND instr(lower({}), {p}) > 0",
                    sqlite_row_text!("u")
                ));
            }
            (format!(" AND t.id IN ({indexed} UNION ALL {tail})"), vals)
        }
    }
}

/// What a search reads of a row (a JSON object): its values, one per line,
/// lower-cased; text as itself, numbers and booleans as written, nested
/// values as JSON, nulls left out. Text that is not a JSON object is
/// searched as it is.
pub(crate) fn row_text(data: &str) -> String {
    let Ok(serde_json::Value::Object(row)) = serde_json::from_str::<serde_json::Value>(data) else {
        return data.to_lowercase();
    };
    let mut out = String::new();
    for value in row.values() {
        let part = match value {
            serde_json::Value::Null => continue,
            serde_json::Value::String(s) => s.to_lowercase(),
            other => other.to_string().to_lowercase(),
        };
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&part);
    }
    out
}

/// `%term%` for a `LIKE` whose escape character is `\`.
fn like_pattern(term: &str) -> String {
    let mut pattern = String::from("%");
    for c in term.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(t: &[&str]) -> Vec<String> {
        t.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_rows_text_is_its_values_lower_cased_one_per_line() {
        assert_eq!(
            row_text(
                r#"{"Name": "Ada LOVELACE", "n": 7, "ok": true, "none": null, "tags": ["X"]}"#
            ),
            "ada lovelace\n7\ntrue\n[\"x\"]"
        );
        assert_eq!(row_text("{}"), "");
        assert_eq!(row_text("Not JSON"), "not json");
    }

    #[test]
    fn postgres_likes_each_term_with_its_wildcards_escaped() {
        let (sql, vals) = text_search_sql(Backend::Postgres, &terms(&["50%", "a_b"]), 4);
        assert_eq!(sql, " AND t.search_text LIKE $4 AND t.search_text LIKE $5");
        assert_eq!(vals, ["%50\\%%", "%a\\_b%"]);
    }

    #[test]
    fn sqlite_looks_long_terms_up_in_the_index_as_quoted_phrases() {
        let (sql, vals) = text_search_sql(Backend::Sqlite, &terms(&["say \"hi\"", "dog"]), 2);
        assert!(
            sql.starts_with(
                " AND t.id IN (SELECT rowid FROM task_text WHERE task_text MATCH $2 UNION ALL"
            ),
            "{sql}"
        );
        assert_eq!(vals[0], "\"say \"\"hi\"\"\" AND \"dog\"");
        // The tail past the indexed tasks checks each term itself.
        assert_eq!(&vals[1..], ["say \"hi\"", "dog"]);
        assert!(
            sql.contains("ELSE j.value END, char(10)) FROM json_each(u.data) j)), $3) > 0"),
            "{sql}"
        );
    }

    #[test]
    fn sqlite_short_terms_filter_the_index_matches_or_read_the_jobs_text() {
        let (sql, vals) = text_search_sql(Backend::Sqlite, &terms(&["a%", "dog"]), 2);
        assert_eq!(vals, ["\"dog\"", "a%", "a%", "dog"]);
        assert!(
            sql.contains("MATCH $2 AND instr(text, $3) > 0 UNION ALL"),
            "{sql}"
        );
        let (sql, vals) = text_search_sql(Backend::Sqlite, &terms(&["ab"]), 2);
        assert_eq!(vals, ["ab", "ab"]);
        assert!(!sql.contains("MATCH"), "{sql}");
        assert!(
            sql.contains("SELECT id FROM task_search WHERE job_id = $1 AND instr(text, $2) > 0"),
            "{sql}"
        );
    }
}
