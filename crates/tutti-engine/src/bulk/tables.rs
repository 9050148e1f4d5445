//! The tables a labeling task writes, in each database's dialect.
//!
//! - `{result}`: one row per (row, label): `seq, task_id, id, source,
//!   author, label, pattern, match_content, create_time`. As in the
//!   Audience sample, `match_content` is the text that was labeled;
//!   `pattern` is the pattern that gave the label.
//! - `wh_panel_mapping_{result}`: the production rows, the Audience
//!   layout: `id, task_id, source_author, panel, create_time,
//!   field_content` (the source), `match_content`, and `seq`.
//! - `state`: one row per task with the Audience columns (`stat`,
//!   `prod_stat`, `length_receive_table`, `rate_of_label`, `check_point`,
//!   ...) and the checkpoint.
//!
//! `seq` numbers result rows and is the key of both result tables. Tasks
//! sharing a result table each own a block of 2^40 numbers, starting at the
//! task's `seq_base`, so one task's rows are one key range: appends go to
//! the end of the table, and a task's rows are read without an index on
//! `task_id`.

use super::LabelError;

/// A database dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
    /// MySQL or MariaDB.
    MySql,
}

/// Checks a table, schema or column name: letters, digits and `_`, not
/// starting with a digit, at most 64 characters.
pub fn identifier(field: &str, name: &str) -> Result<String, LabelError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit();
    if ok {
        Ok(name.to_owned())
    } else {
        Err(LabelError::new(format!(
            "{field}: {name:?} is not a valid name; use letters, digits and _ (at most 64, not starting with a digit)"
        )))
    }
}

impl Dialect {
    /// Quotes a checked name.
    pub fn quote(self, name: &str) -> String {
        match self {
            Dialect::MySql => format!("`{name}`"),
            _ => format!("\"{name}\""),
        }
    }

    /// Placeholder number `n` (from 1).
    pub fn param(self, n: usize) -> String {
        match self {
            Dialect::Postgres => format!("${n}"),
            _ => "?".into(),
        }
    }

    fn key(self) -> &'static str {
        match self {
            Dialect::MySql => "VARCHAR(191)",
            _ => "TEXT",
        }
    }

    fn float(self) -> &'static str {
        match self {
            Dialect::Postgres => "DOUBLE PRECISION",
            Dialect::MySql => "DOUBLE",
            Dialect::Sqlite => "REAL",
        }
    }

    /// `CREATE TABLE IF NOT EXISTS` for the result, production and state
    /// tables; `prefix` qualifies them (`schema.` or empty).
    pub fn create(self, prefix: &str, result: &str) -> Vec<String> {
        let q = |n: &str| format!("{prefix}{}", self.quote(n));
        let key = self.key();
        let float = self.float();
        // SQLite's INTEGER PRIMARY KEY is the rowid itself.
        let int = if self == Dialect::Sqlite {
            "INTEGER"
        } else {
            "BIGINT"
        };
        let production = format!("wh_panel_mapping_{result}");
        vec![
            format!(
                "CREATE TABLE IF NOT EXISTS {} (seq {int} NOT NULL PRIMARY KEY, task_id {key} NOT NULL, id TEXT, \
                 source TEXT, author TEXT, label TEXT NOT NULL, pattern TEXT NOT NULL, match_content TEXT, \
                 create_time TEXT)",
                q(result)
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {} (id TEXT, task_id {key} NOT NULL, source_author TEXT, panel TEXT NOT NULL, \
                 create_time TEXT, field_content TEXT, match_content TEXT, seq {int} NOT NULL PRIMARY KEY)",
                q(&production)
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {} (task_id {key} NOT NULL PRIMARY KEY, stat VARCHAR(16) NOT NULL, \
                 prod_stat VARCHAR(16), model_type VARCHAR(64) NOT NULL, predict_type VARCHAR(64) NOT NULL, \
                 date_range VARCHAR(64) NOT NULL, target_table VARCHAR(255) NOT NULL, create_time VARCHAR(32) NOT NULL, \
                 peak_memory {float}, length_receive_table BIGINT, length_output_table BIGINT, length_prod_table BIGINT, \
                 result VARCHAR(255) NOT NULL, uniq_source_author BIGINT, rate_of_label {float}, run_time {float}, \
                 check_point VARCHAR(255), checkpoint_rows BIGINT NOT NULL DEFAULT 0, rows_labeled BIGINT, \
                 batches BIGINT, digest VARCHAR(64) NOT NULL, error TEXT, seq_base BIGINT NOT NULL, \
                 UNIQUE (result, seq_base))",
                q("state")
            ),
        ]
    }

    /// Inserts the task's state row unless it exists: parameters
    /// task_id, model_type, predict_type, date_range, target_table,
    /// create_time, result, digest; its `seq_base` is the next free block
    /// of the result table.
    pub fn insert_state(self, prefix: &str) -> String {
        let verb = match self {
            Dialect::Sqlite => "INSERT OR IGNORE INTO",
            Dialect::MySql => "INSERT IGNORE INTO",
            Dialect::Postgres => "INSERT INTO",
        };
        let tail = if self == Dialect::Postgres {
            " ON CONFLICT (task_id) DO NOTHING"
        } else {
            ""
        };
        let p: Vec<String> = (1..=9).map(|n| self.param(n)).collect();
        // MySQL cannot read the table it inserts into in a subquery
        // unless the subquery is materialised as a derived table.
        let state = self.quote("state");
        format!(
            "{verb} {prefix}{state} (task_id, stat, model_type, predict_type, date_range, target_table, create_time, \
             result, digest, seq_base) \
             SELECT {}, 'PENDING', {}, {}, {}, {}, {}, {}, {}, \
             (SELECT COALESCE(MAX(b), -{SEQ_BLOCK}) + {SEQ_BLOCK} FROM (SELECT seq_base AS b FROM {prefix}{state} WHERE result = {}) AS taken){tail}",
            p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8]
        )
    }

    /// Reads a task's state: stat, prod_stat, checkpoint_rows, check_point,
    /// digest, seq_base. One parameter: task_id.
    pub fn select_state(self, prefix: &str) -> String {
        format!(
            "SELECT stat, prod_stat, checkpoint_rows, check_point, digest, seq_base FROM {prefix}{} WHERE task_id = {}",
            self.quote("state"),
            self.param(1)
        )
    }

    /// Updates the counters: parameters stat, prod_stat, peak_memory,
    /// length_receive_table, length_output_table, length_prod_table,
    /// uniq_source_author, rate_of_label, run_time, check_point,
    /// checkpoint_rows, rows_labeled, batches, error, task_id.
    pub fn update_state(self, prefix: &str) -> String {
        let cols = [
            "stat",
            "prod_stat",
            "peak_memory",
            "length_receive_table",
            "length_output_table",
            "length_prod_table",
            "uniq_source_author",
            "rate_of_label",
            "run_time",
            "check_point",
            "checkpoint_rows",
            "rows_labeled",
            "batches",
            "error",
        ];
        let sets: Vec<String> = cols
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c} = {}", self.param(i + 1)))
            .collect();
        format!(
            "UPDATE {prefix}{} SET {} WHERE task_id = {}",
            self.quote("state"),
            sets.join(", "),
            self.param(cols.len() + 1)
        )
    }

    /// Marks a task failed: parameters error, task_id.
    pub fn fail_state(self, prefix: &str) -> String {
        format!(
            "UPDATE {prefix}{} SET stat = 'FAILURE', error = {} WHERE task_id = {}",
            self.quote("state"),
            self.param(1),
            self.param(2)
        )
    }

    /// Copies the listed result rows to the production table: parameters
    /// `n` seqs.
    pub fn produce(self, prefix: &str, result: &str, n: usize) -> String {
        let concat = match self {
            Dialect::MySql => "CONCAT(source, '_', author)".to_owned(),
            _ => "source || '_' || author".to_owned(),
        };
        let list: Vec<String> = (0..n).map(|i| self.param(i + 1)).collect();
        format!(
            "INSERT INTO {prefix}{} (id, task_id, source_author, panel, create_time, field_content, match_content, seq) \
             SELECT id, task_id, {concat}, label, create_time, source, match_content, seq FROM {prefix}{} \
             WHERE seq IN ({})",
            self.quote(&format!("wh_panel_mapping_{result}")),
            self.quote(result),
            list.join(", ")
        )
    }
}

impl Dialect {
    /// The production step as one statement over the task's result rows,
    /// for tallies too large to keep in memory: per (source, author) the
    /// label with the most rows, then the higher priority, then the first
    /// seen, and that label's first row. Parameters, in order, come with
    /// it: the priorities of labels that have one, then the task's
    /// `seq_base` twice (the block's ends).
    pub fn produce_by_query(
        self,
        prefix: &str,
        result: &str,
        priorities: &[(String, i32)],
        seq_base: i64,
    ) -> (String, Vec<Value>) {
        let mut params = Vec::new();
        let next = |v: Value, params: &mut Vec<Value>| {
            params.push(v);
            self.param(params.len())
        };
        // MySQL compares text by a collation that ignores case (and width);
        // pairs and labels are told apart byte for byte, as in memory.
        let exact = |c: &str| match self {
            Dialect::MySql => format!("BINARY {c}"),
            _ => c.to_owned(),
        };
        let ranked: Vec<&(String, i32)> = priorities.iter().filter(|(_, p)| *p != 0).collect();
        let prio = if ranked.is_empty() {
            "0".to_owned()
        } else {
            let mut case = format!("CASE {}", exact("label"));
            for (label, p) in ranked {
                let l = next(Value::Text(Some(label.clone())), &mut params);
                let v = next(Value::Int(Some(i64::from(*p))), &mut params);
                case.push_str(&format!(" WHEN {l} THEN {v}"));
            }
            case.push_str(" ELSE 0 END");
            case
        };
        let lo = next(Value::Int(Some(seq_base)), &mut params);
        let hi = next(Value::Int(Some(seq_base + SEQ_BLOCK)), &mut params);
        let concat = match self {
            Dialect::MySql => "CONCAT(r.source, '_', r.author)",
            _ => "r.source || '_' || r.author",
        };
        let r = format!("{prefix}{}", self.quote(result));
        let sql = format!(
            "INSERT INTO {prefix}{} (id, task_id, source_author, panel, create_time, field_content, match_content, seq) \
             SELECT r.id, r.task_id, {concat}, r.label, r.create_time, r.source, r.match_content, r.seq \
             FROM {r} AS r JOIN (\
               SELECT first_seq, ROW_NUMBER() OVER (PARTITION BY s, a ORDER BY n DESC, prio DESC, first_seq) AS k \
               FROM (SELECT {bs} AS s, {ba} AS a, COUNT(*) AS n, MIN(seq) AS first_seq, MAX({prio}) AS prio \
                     FROM {r} WHERE seq > {lo} AND seq <= {hi} GROUP BY {bs}, {ba}, {bl}) AS c\
             ) AS w ON r.seq = w.first_seq WHERE w.k = 1",
            self.quote(&format!("wh_panel_mapping_{result}")),
            bs = exact("source"),
            ba = exact("author"),
            bl = exact("label"),
        );
        (sql, params)
    }
}

/// Seq numbers per task: each task's result rows are numbered from its
/// `seq_base + 1`.
pub const SEQ_BLOCK: i64 = 1 << 40;

/// A value to bind.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Text or NULL.
    Text(Option<String>),
    /// An integer or NULL.
    Int(Option<i64>),
    /// A float or NULL.
    Float(Option<f64>),
}

/// The parameters of [`Dialect::update_state`], in order.
pub fn state_params(
    stat: &str,
    prod_stat: Option<&str>,
    p: &super::Progress,
    error: Option<&str>,
    task_id: &str,
) -> Vec<Value> {
    let int = |n: u64| Value::Int(Some(n as i64));
    vec![
        Value::Text(Some(stat.to_owned())),
        Value::Text(prod_stat.map(str::to_owned)),
        Value::Float(p.peak_mb.map(|m| (m * 100.0).round() / 100.0)),
        int(p.received),
        int(p.result_rows),
        Value::Int(p.production_rows.map(|n| n as i64)),
        int(p.unique_pairs),
        Value::Float(p.rate_of_label().map(|r| (r * 100.0).round() / 100.0)),
        Value::Float(Some((p.seconds * 1000.0).round() / 1000.0)),
        Value::Text(p.checkpoint_id.clone()),
        int(p.checkpoint_rows),
        int(p.labeled_rows),
        int(p.batches),
        Value::Text(error.map(str::to_owned)),
        Value::Text(Some(task_id.to_owned())),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_outside_letters_digits_and_underscore_are_refused() {
        assert!(identifier("t", "wh_fb_ex_02").is_ok());
        for bad in ["", "a b", "x;drop", "1abc", "naïve", &"a".repeat(65)] {
            let e = identifier("target_table", bad).unwrap_err();
            assert!(e.message.starts_with("target_table:"), "{e}");
        }
    }

    #[test]
    fn statements_use_each_dialects_quotes_and_placeholders() {
        assert!(
            Dialect::MySql
                .produce("`out`.", "r", 2)
                .contains("IN (?, ?)")
        );
        assert!(
            Dialect::Postgres
                .produce("", "r", 2)
                .contains("IN ($1, $2)")
        );
        assert!(
            Dialect::Postgres
                .update_state("")
                .ends_with("task_id = $15")
        );
        assert!(
            Dialect::Sqlite
                .insert_state("")
                .starts_with("INSERT OR IGNORE INTO \"state\"")
        );
    }
}
