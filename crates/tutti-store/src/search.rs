//! Text search over the values of a job's rows, on each backend's own
//! index.
//!
//! A search's terms (see [`TextSearch`](tutti_domain::search::TextSearch))
//! must each occur in a row's values, joined one per line, as lower-case
//! substrings.
//!
//! - **SQLite** keeps the values in `task_text`, an FTS5 table with the
//!   trigram tokenizer (rowid = task id), so a term of three characters or
//!   more is a phrase of trigrams the index answers without reading rows.
//!   Imports do not write it: indexing in the insert would slow an import
//!   about fifteen-fold, so [`index_batch`] indexes committed tasks in id
//!   order behind them, and a search also scans the job's few tasks past
//!   `task_text_progress.through_id` directly. Terms shorter than three
//!   characters have no trigram: alongside a longer term they filter its
//!   matches; alone they scan the index's stored text, which is narrower
//!   than the rows (but holds every job's).
//! - **PostgreSQL** stores [`row_text`] in `tasks.search_text` as a row is
//!   imported, under a GIN trigram index (`pg_trgm`), and each term is a
//!   `LIKE` on it: the planner reads the index for a rare term and scans
//!   the narrow column for a common one.

use crate::Backend;

/// SQLite: a task row's values, one per line, as the index holds them; `$t`
/// is the row's alias.
macro_rules! sqlite_row_text {
    ($t:literal) => {
        concat!(
            "(SELECT group_concat(j.value, char(10)) FROM json_each(",
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
    let mut tx = pool.begin().await?;
    let through: i64 = sqlx::query_scalar("SELECT through_id FROM task_text_progress")
        .fetch_one(&mut *tx)
        .await?;
    let last: Option<i64> = sqlx::query_scalar(
        "SELECT MAX(id) FROM (SELECT id FROM tasks WHERE id > $1 ORDER BY id LIMIT $2)",
    )
    .bind(through)
    .bind(limit)
    .fetch_one(&mut *tx)
    .await?;
    let Some(last) = last else {
        return Ok(0);
    };
    let done = sqlx::query(concat!(
        "INSERT INTO task_text (rowid, text) SELECT t.id, COALESCE(",
        sqlite_row_text!("t"),
        ", '') FROM tasks t WHERE t.id > $1 AND t.id <= $2"
    ))
    .bind(through)
    .bind(last)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    sqlx::query("UPDATE task_text_progress SET through_id = $1")
        .bind(last)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(done)
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
            let mut indexed = String::from("SELECT rowid FROM task_text WHERE ");
            let mut tail = String::from(
                "SELECT u.id FROM tasks u WHERE u.id > (SELECT through_id FROM task_text_progress) \
                 AND u.job_id = $1",
            );
            let mut conditions = Vec::new();
            if !long.is_empty() {
                let phrases = long
                    .iter()
                    .map(|t| format!("\"{}\"", t.replace('"', "\"\"")))
                    .collect::<Vec<_>>()
                    .join(" AND ");
                conditions.push(format!("task_text MATCH {}", param(phrases, &mut vals)));
            }
            // A short term has no trigram to look up: it filters what the
            // long ones found, or alone scans the stored text (narrower
            // than the rows themselves).
            for term in &short {
                let p = param(like_pattern(term), &mut vals);
                conditions.push(format!("text LIKE {p} ESCAPE '\\'"));
            }
            indexed.push_str(&conditions.join(" AND "));
            for term in long.iter().chain(&short) {
                let p = param((*term).clone(), &mut vals);
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
            sql.contains(
                "instr(lower((SELECT group_concat(j.value, char(10)) FROM json_each(u.data) j)), $3) > 0"
            ),
            "{sql}"
        );
    }

    #[test]
    fn sqlite_short_terms_filter_the_index_matches_or_scan_the_stored_text() {
        let (sql, vals) = text_search_sql(Backend::Sqlite, &terms(&["a%", "dog"]), 1);
        assert_eq!(vals, ["\"dog\"", "%a\\%%", "dog", "a%"]);
        assert!(
            sql.contains("MATCH $1 AND text LIKE $2 ESCAPE '\\' UNION ALL"),
            "{sql}"
        );
        let (sql, vals) = text_search_sql(Backend::Sqlite, &terms(&["ab"]), 1);
        assert_eq!(vals, ["%ab%", "ab"]);
        assert!(!sql.contains("MATCH"), "{sql}");
        assert!(sql.contains("FROM task_text WHERE text LIKE $1"), "{sql}");
    }
}
