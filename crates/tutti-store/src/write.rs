//! Writes described as data, so each backend can send them its own way:
//! PostgreSQL runs them one by one inside its transaction; SQLite sends a
//! whole transaction (`BEGIN; …; COMMIT`) to its writer thread in one
//! round trip, which is most of what a write costs there.
//!
//! Each write names the row and the values it was computed from in its
//! `WHERE`, and must change exactly one row; otherwise the unit of work is
//! rolled back as contended and run again. Both backends read under
//! exclusive access (SQLite's single writer, PostgreSQL's row locks), so
//! this never fires in normal operation: it turns a broken assumption into
//! a retry instead of a silently lost answer.

/// How often a unit of work is tried before the store gives up.
pub(crate) const MAX_ATTEMPTS: usize = 100;

/// A bound value.
#[derive(Debug, Clone)]
pub(crate) enum Val {
    I64(i64),
    OptI64(Option<i64>),
    Text(String),
    OptText(Option<String>),
    OptF64(Option<f64>),
}

/// One statement with `$1…$n` parameters and their values. Every write
/// must change exactly one row (its `WHERE` names the row and the values it
/// was read with), or the whole unit of work is abandoned as contended;
/// only [`Write::derived`] ones may change any number.
#[derive(Debug)]
pub(crate) struct Write {
    pub sql: &'static str,
    pub vals: Vec<Val>,
    /// An `INSERT` whose new row id the caller needs.
    pub returns_id: bool,
    /// Whether it must change exactly one row.
    pub exact: bool,
    /// For a write that applies only under a condition known when it is
    /// planned ([`Write::derived_when`]): the condition. Its statement
    /// ends with a flag parameter bound to it, so a group of such writes
    /// has the same text whichever apply (and SQLite finds it prepared);
    /// a backend that sends statements one by one skips the ones that do
    /// not apply.
    pub when: Option<bool>,
}

impl Write {
    pub fn new(sql: &'static str, vals: Vec<Val>) -> Self {
        Self {
            sql,
            vals,
            returns_id: false,
            exact: true,
            when: None,
        }
    }

    pub fn returning_id(sql: &'static str, vals: Vec<Val>) -> Self {
        Self {
            sql,
            vals,
            returns_id: true,
            exact: true,
            when: None,
        }
    }

    /// A write of figures derived from rows the unit of work has written
    /// (counts kept up to date), which changes as many rows as it finds.
    pub fn derived(sql: &'static str, vals: Vec<Val>) -> Self {
        Self {
            sql,
            vals,
            returns_id: false,
            exact: false,
            when: None,
        }
    }

    /// A [`Write::derived`] that changes nothing unless `when`: `sql`'s
    /// last parameter is the flag (`… AND $n <> 0`), bound after `vals`.
    pub fn derived_when(sql: &'static str, mut vals: Vec<Val>, when: bool) -> Self {
        vals.push(Val::I64(i64::from(when)));
        Self {
            sql,
            vals,
            returns_id: false,
            exact: false,
            when: Some(when),
        }
    }
}

/// `sql` with every `$N` parameter shifted to `$(N + offset)`, so that
/// statements can be joined into one text with one list of values.
pub(crate) fn renumber(sql: &str, offset: usize) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut chars = sql.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        let mut n = String::new();
        while let Some(&(_, d)) = chars.peek() {
            if !d.is_ascii_digit() {
                break;
            }
            n.push(d);
            chars.next();
        }
        match n.parse::<usize>() {
            Ok(v) => {
                out.push('$');
                out.push_str(&(v + offset).to_string());
            }
            Err(_) => {
                out.push('$');
                out.push_str(&n);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_shifted_by_the_offset() {
        assert_eq!(
            renumber("a = $1 AND b = $12 OR c = $1", 3),
            "a = $4 AND b = $15 OR c = $4"
        );
        assert_eq!(renumber("no params", 5), "no params");
    }
}
