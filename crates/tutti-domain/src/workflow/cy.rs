//! Cymphony's `.cy` language, read unchanged.
//!
//! A program is statements ending in `;`, with `/* … */` comments, of three
//! forms: `v = op(args);`, `(v1, v2) = op(args);` and `op(args);` (only
//! `write_table` has no output). Arguments are variables, `"string"`
//! literals, numbers, `[lists]` and `key=value` pairs. Operators:
//!
//! | operator | inputs | outputs | parameters |
//! | --- | --- | --- | --- |
//! | `read_table("x.csv")` | 0 | 1 | the file |
//! | `sample_random(T, n=K)` | 1 | 1 | `n`, optional `seed` |
//! | `exec_sql(T1, T2, query="SELECT …")` | 1 or more | 1 | `query` |
//! | `write_table(T, file="out.csv")` | 1 | 0 | `file` |
//! | `3a_kn(T, "instructions.html", "layout.html", k=, n=, question=, answers=[…], annotation_time_limit=)` | 1 | 2 | |
//! | `3a_knlm(…, l=, m=)` | 1 | 2 | stewards' agreement too |
//! | `3a_amt(…)` | 1 | 2 | as `3a_kn`, answered on Mechanical Turk |
//!
//! The first statement must read a table, and a variable must be defined
//! before it is used. Errors name the line and column.

use super::{Crowd, HumanLabel, Node, Op, Span, Workflow, WorkflowError};

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num(String),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Eq,
    Semi,
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("{s:?}"),
            Tok::Str(s) => format!("the string {s:?}"),
            Tok::Num(s) => format!("the number {s}"),
            Tok::LParen => "\"(\"".into(),
            Tok::RParen => "\")\"".into(),
            Tok::LBracket => "\"[\"".into(),
            Tok::RBracket => "\"]\"".into(),
            Tok::Comma => "\",\"".into(),
            Tok::Eq => "\"=\"".into(),
            Tok::Semi => "\";\"".into(),
        }
    }
}

fn lex(src: &str) -> Result<Vec<(Tok, Span)>, WorkflowError> {
    let mut out = Vec::new();
    let chars: Vec<char> = src.chars().collect();
    let (mut i, mut line, mut col) = (0usize, 1u32, 1u32);
    let advance = |i: &mut usize, line: &mut u32, col: &mut u32, c: char| {
        *i += 1;
        if c == '\n' {
            *line += 1;
            *col = 1;
        } else {
            *col += 1;
        }
    };
    while i < chars.len() {
        let c = chars[i];
        let span = Span { line, column: col };
        if c.is_whitespace() {
            advance(&mut i, &mut line, &mut col, c);
            continue;
        }
        if c == '/' && chars.get(i + 1) == Some(&'*') {
            advance(&mut i, &mut line, &mut col, '/');
            advance(&mut i, &mut line, &mut col, '*');
            loop {
                match chars.get(i) {
                    None => {
                        return Err(WorkflowError::at(span, "this comment is never closed (*/)"));
                    }
                    Some('*') if chars.get(i + 1) == Some(&'/') => {
                        advance(&mut i, &mut line, &mut col, '*');
                        advance(&mut i, &mut line, &mut col, '/');
                        break;
                    }
                    Some(&c) => advance(&mut i, &mut line, &mut col, c),
                }
            }
            continue;
        }
        let single = match c {
            '(' => Some(Tok::LParen),
            ')' => Some(Tok::RParen),
            '[' => Some(Tok::LBracket),
            ']' => Some(Tok::RBracket),
            ',' => Some(Tok::Comma),
            '=' => Some(Tok::Eq),
            ';' => Some(Tok::Semi),
            _ => None,
        };
        if let Some(t) = single {
            out.push((t, span));
            advance(&mut i, &mut line, &mut col, c);
            continue;
        }
        if c == '"' || c == '\'' {
            let quote = c;
            advance(&mut i, &mut line, &mut col, c);
            let mut s = String::new();
            loop {
                match chars.get(i) {
                    None => return Err(WorkflowError::at(span, "this string is never closed")),
                    Some(&q) if q == quote => {
                        advance(&mut i, &mut line, &mut col, q);
                        break;
                    }
                    Some('\\') => {
                        advance(&mut i, &mut line, &mut col, '\\');
                        let Some(&e) = chars.get(i) else {
                            return Err(WorkflowError::at(span, "this string is never closed"));
                        };
                        s.push(match e {
                            'n' => '\n',
                            't' => '\t',
                            other => other,
                        });
                        advance(&mut i, &mut line, &mut col, e);
                    }
                    Some(&c) => {
                        s.push(c);
                        advance(&mut i, &mut line, &mut col, c);
                    }
                }
            }
            out.push((Tok::Str(s), span));
            continue;
        }
        if c.is_alphanumeric() || c == '_' || c == '-' || c == '.' {
            let mut s = String::new();
            while let Some(&c) = chars.get(i) {
                if c.is_alphanumeric() || c == '_' || c == '.' || (c == '-' && s.is_empty()) {
                    s.push(c);
                    advance(&mut i, &mut line, &mut col, c);
                } else {
                    break;
                }
            }
            let numeric = s.trim_start_matches('-');
            let tok = if !numeric.is_empty()
                && numeric.chars().all(|c| c.is_ascii_digit() || c == '.')
                && numeric.chars().filter(|c| *c == '.').count() <= 1
            {
                Tok::Num(s)
            } else if s.starts_with('-') || s.contains('.') {
                return Err(WorkflowError::at(
                    span,
                    format!("{s:?} is neither a name nor a number"),
                ));
            } else {
                Tok::Ident(s)
            };
            out.push((tok, span));
            continue;
        }
        return Err(WorkflowError::at(
            span,
            format!("unexpected character {c:?}"),
        ));
    }
    Ok(out)
}

/// A value as written.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Var(String),
    Str(String),
    Num(String),
    List(Vec<(Value, Span)>),
}

#[derive(Debug)]
struct Call {
    op: String,
    op_span: Span,
    positional: Vec<(Value, Span)>,
    named: Vec<(String, Span, Value, Span)>,
    outputs: Vec<(String, Span)>,
    span: Span,
}

struct Parser {
    toks: Vec<(Tok, Span)>,
    pos: usize,
    end: Span,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|t| &t.0)
    }

    fn span(&self) -> Span {
        self.toks.get(self.pos).map_or(self.end, |t| t.1)
    }

    fn next(&mut self, wanted: &str) -> Result<(Tok, Span), WorkflowError> {
        match self.toks.get(self.pos) {
            Some(t) => {
                self.pos += 1;
                Ok(t.clone())
            }
            None => Err(WorkflowError::at(
                self.end,
                format!("the program ends where {wanted} was expected"),
            )),
        }
    }

    fn expect(&mut self, tok: Tok, wanted: &str) -> Result<Span, WorkflowError> {
        let (t, span) = self.next(wanted)?;
        if t == tok {
            Ok(span)
        } else {
            Err(WorkflowError::at(
                span,
                format!("expected {wanted}, found {}", t.describe()),
            ))
        }
    }

    fn ident(&mut self, wanted: &str) -> Result<(String, Span), WorkflowError> {
        match self.next(wanted)? {
            (Tok::Ident(s), span) => Ok((s, span)),
            (t, span) => Err(WorkflowError::at(
                span,
                format!("expected {wanted}, found {}", t.describe()),
            )),
        }
    }

    /// After an item: `true` on a comma (another item follows), `false`
    /// on `close`; anything else is an error naming `between`.
    fn more(&mut self, close: Tok, between: &str) -> Result<bool, WorkflowError> {
        let wanted = format!("\",\" or {}", close.describe());
        match self.next(&wanted)? {
            (Tok::Comma, _) => Ok(true),
            (t, _) if t == close => Ok(false),
            (t, s) => Err(WorkflowError::at(
                s,
                format!("expected {wanted} {between}, found {}", t.describe()),
            )),
        }
    }

    fn value(&mut self) -> Result<(Value, Span), WorkflowError> {
        let (t, span) = self.next("a value")?;
        let v = match t {
            Tok::Ident(s) => Value::Var(s),
            Tok::Str(s) => Value::Str(s),
            Tok::Num(s) => Value::Num(s),
            Tok::LBracket => {
                let mut items = Vec::new();
                if self.peek() == Some(&Tok::RBracket) {
                    self.pos += 1;
                } else {
                    loop {
                        items.push(self.value()?);
                        if !self.more(Tok::RBracket, "in the list")? {
                            break;
                        }
                    }
                }
                Value::List(items)
            }
            t => {
                return Err(WorkflowError::at(
                    span,
                    format!("expected a value, found {}", t.describe()),
                ));
            }
        };
        Ok((v, span))
    }

    fn statement(&mut self) -> Result<Call, WorkflowError> {
        let start = self.span();
        let mut outputs = Vec::new();
        let op;
        if self.peek() == Some(&Tok::LParen) {
            self.pos += 1;
            loop {
                outputs.push(self.ident("an output variable")?);
                if !self.more(Tok::RParen, "between outputs")? {
                    break;
                }
            }
            self.expect(Tok::Eq, "\"=\" after the outputs")?;
            op = self.ident("an operator")?;
        } else {
            let first = self.ident("a variable or an operator")?;
            if self.peek() == Some(&Tok::Eq) {
                self.pos += 1;
                outputs.push(first);
                op = self.ident("an operator")?;
            } else {
                op = first;
            }
        }
        self.expect(Tok::LParen, &format!("\"(\" after {}", op.0))?;
        let mut positional = Vec::new();
        let mut named: Vec<(String, Span, Value, Span)> = Vec::new();
        if self.peek() == Some(&Tok::RParen) {
            self.pos += 1;
        } else {
            loop {
                let is_named = matches!(self.peek(), Some(Tok::Ident(_)))
                    && self.toks.get(self.pos + 1).map(|t| &t.0) == Some(&Tok::Eq);
                if is_named {
                    let (key, key_span) = self.ident("a parameter name")?;
                    self.pos += 1;
                    let (v, vs) = self.value()?;
                    if named.iter().any(|(k, ..)| *k == key) {
                        return Err(WorkflowError::at(key_span, format!("{key} is given twice")));
                    }
                    named.push((key, key_span, v, vs));
                } else {
                    // As in Cymphony, an argument's shape says what it is
                    // (a variable is a table, a string a file), not its place.
                    positional.push(self.value()?);
                }
                if !self.more(Tok::RParen, "between arguments")? {
                    break;
                }
            }
        }
        self.expect(Tok::Semi, "\";\" at the end of the statement")?;
        Ok(Call {
            op: op.0,
            op_span: op.1,
            positional,
            named,
            outputs,
            span: start,
        })
    }
}

/// Parses and checks a `.cy` program.
pub fn parse(src: &str) -> Result<Workflow, WorkflowError> {
    let toks = lex(src)?;
    let end = {
        let lines = src.split('\n').count() as u32;
        let last = src.rsplit('\n').next().unwrap_or("");
        Span {
            line: lines.max(1),
            column: last.chars().count() as u32 + 1,
        }
    };
    let mut p = Parser { toks, pos: 0, end };
    let mut nodes = Vec::new();
    while p.pos < p.toks.len() {
        let call = p.statement()?;
        nodes.push(compile(call)?);
    }
    Workflow::check_graph(&nodes, |i, input| {
        let span = nodes
            .get(i)
            .and_then(|n| n.span)
            .unwrap_or(Span { line: 1, column: 1 });
        let _ = input;
        WorkflowError::at(span, "")
    })?;
    super::canonical_inputs(&mut nodes);
    Ok(Workflow { nodes })
}

struct Args {
    op: String,
    positional: Vec<(Value, Span)>,
    named: Vec<(String, Span, Value, Span)>,
    op_span: Span,
}

impl Args {
    fn take(&mut self, key: &str) -> Option<(Value, Span)> {
        let i = self.named.iter().position(|(k, ..)| k == key)?;
        let (_, _, v, s) = self.named.remove(i);
        Some((v, s))
    }

    fn string(&mut self, key: &str) -> Result<Option<String>, WorkflowError> {
        match self.take(key) {
            None => Ok(None),
            Some((Value::Str(s), _)) => Ok(Some(s)),
            Some((_, span)) => Err(WorkflowError::at(
                span,
                format!("{key} must be a \"string\""),
            )),
        }
    }

    fn required_string(&mut self, key: &str) -> Result<String, WorkflowError> {
        self.string(key)?.ok_or_else(|| {
            WorkflowError::at(self.op_span, format!("{} needs {key}=\"…\"", self.op))
        })
    }

    fn whole(&mut self, key: &str, min: u64) -> Result<Option<u64>, WorkflowError> {
        match self.take(key) {
            None => Ok(None),
            // Cymphony reads every value as text: k="2" is k=2.
            Some((Value::Num(n) | Value::Str(n), span)) => match n.trim().parse::<u64>() {
                Ok(v) if v >= min => Ok(Some(v)),
                _ => Err(WorkflowError::at(
                    span,
                    format!("{key} must be a whole number of at least {min}, not {n}"),
                )),
            },
            Some((_, span)) => Err(WorkflowError::at(
                span,
                format!("{key} must be a whole number of at least {min}"),
            )),
        }
    }

    fn required_whole(&mut self, key: &str, min: u64) -> Result<u64, WorkflowError> {
        self.whole(key, min)?
            .ok_or_else(|| WorkflowError::at(self.op_span, format!("{} needs {key}=…", self.op)))
    }

    fn small(&mut self, key: &str, min: u64) -> Result<u32, WorkflowError> {
        let span = self.named.iter().find(|(k, ..)| k == key).map(|n| n.3);
        let v = self.required_whole(key, min)?;
        u32::try_from(v).map_err(|_| {
            WorkflowError::at(span.unwrap_or(self.op_span), format!("{key} is too large"))
        })
    }

    fn strings(&mut self, key: &str) -> Result<Vec<String>, WorkflowError> {
        match self.take(key) {
            None => Err(WorkflowError::at(
                self.op_span,
                format!("{} needs {key}=[\"…\", …]", self.op),
            )),
            Some((Value::List(items), span)) => {
                let mut out = Vec::new();
                for (v, s) in items {
                    match v {
                        Value::Str(x) if !x.trim().is_empty() => {
                            if out.contains(&x) {
                                return Err(WorkflowError::at(s, format!("{x:?} is listed twice")));
                            }
                            out.push(x);
                        }
                        _ => {
                            return Err(WorkflowError::at(
                                s,
                                format!("{key} must list non-empty \"strings\""),
                            ));
                        }
                    }
                }
                if out.is_empty() {
                    return Err(WorkflowError::at(span, format!("{key} must not be empty")));
                }
                Ok(out)
            }
            Some((_, span)) => Err(WorkflowError::at(
                span,
                format!("{key} must be a [list] of \"strings\""),
            )),
        }
    }

    /// The first plain argument that names a table (a variable).
    fn table(&mut self, what: &str) -> Result<String, WorkflowError> {
        let Some(i) = self
            .positional
            .iter()
            .position(|(v, _)| matches!(v, Value::Var(_)))
        else {
            return Err(match self.positional.first() {
                Some((_, span)) => {
                    WorkflowError::at(*span, format!("expected {what} (a variable)"))
                }
                None => WorkflowError::at(self.op_span, format!("{} needs {what}", self.op)),
            });
        };
        match self.positional.remove(i) {
            (Value::Var(v), _) => Ok(v),
            _ => unreachable!("position found a variable"),
        }
    }

    /// The first plain argument that names a file (a string), if any.
    fn optional_file(&mut self, what: &str) -> Result<Option<String>, WorkflowError> {
        let Some(i) = self
            .positional
            .iter()
            .position(|(v, _)| matches!(v, Value::Str(_)))
        else {
            return Ok(None);
        };
        match self.positional.remove(i) {
            (Value::Str(s), _) if !s.trim().is_empty() => Ok(Some(s)),
            (_, span) => Err(WorkflowError::at(
                span,
                format!("expected {what} (a \"file name\")"),
            )),
        }
    }

    fn file(&mut self, what: &str) -> Result<String, WorkflowError> {
        match self.optional_file(what)? {
            Some(f) => Ok(f),
            None => Err(match self.positional.first() {
                Some((_, span)) => {
                    WorkflowError::at(*span, format!("expected {what} (a \"file name\")"))
                }
                None => WorkflowError::at(self.op_span, format!("{} needs {what}", self.op)),
            }),
        }
    }

    /// `key=free_text` (bare or quoted), Cymphony's typed answers.
    fn is_free_text(&self, key: &str) -> bool {
        self.named.iter().any(|(k, _, v, _)| {
            k == key && matches!(v, Value::Var(x) | Value::Str(x) if x == "free_text")
        })
    }

    /// Refuses anything not taken.
    fn done(self) -> Result<(), WorkflowError> {
        if let Some((_, span)) = self.positional.first() {
            return Err(WorkflowError::at(
                *span,
                format!("{} takes no more arguments here", self.op),
            ));
        }
        if let Some((key, span, ..)) = self.named.first() {
            return Err(WorkflowError::at(
                *span,
                format!("{} has no parameter {key}", self.op),
            ));
        }
        Ok(())
    }
}

fn outputs(call: &Call, want: usize) -> Result<Vec<String>, WorkflowError> {
    if call.outputs.len() != want {
        let said = match want {
            0 => format!(
                "{} has no output; write it as a statement of its own",
                call.op
            ),
            1 => format!("{} has one output: write v = {}(…);", call.op, call.op),
            n => format!(
                "{} has {n} outputs (per-worker answers and labels): write (answers, labels) = {}(…);",
                call.op, call.op
            ),
        };
        return Err(WorkflowError::at(call.span, said));
    }
    Ok(call.outputs.iter().map(|o| o.0.clone()).collect())
}

/// `3a_amt`'s HIT parameters, as Cymphony names them. `publish_to_sandbox`
/// and `tasks_per_hit` are read and checked: where HITs go is the
/// server's Mechanical Turk endpoint, and Tutti posts one task per HIT.
fn hit_settings(a: &mut Args) -> Result<crate::job::HitSettings, WorkflowError> {
    let op_span = a.op_span;
    let flag = |a: &mut Args, key: &str| -> Result<bool, WorkflowError> {
        match a.take(key) {
            None => Ok(false),
            Some((Value::Var(v) | Value::Str(v) | Value::Num(v), span)) => {
                match v.to_ascii_lowercase().as_str() {
                    "true" | "1" | "yes" => Ok(true),
                    "false" | "0" | "no" => Ok(false),
                    _ => Err(WorkflowError::at(
                        span,
                        format!("{key} must be True or False"),
                    )),
                }
            }
            Some((_, span)) => Err(WorkflowError::at(
                span,
                format!("{key} must be True or False"),
            )),
        }
    };
    let text = |a: &mut Args, key: &str| -> Result<Option<String>, WorkflowError> {
        match a.take(key) {
            None => Ok(None),
            Some((Value::Str(s) | Value::Num(s) | Value::Var(s), _)) => Ok(Some(s)),
            Some((Value::List(items), span)) => {
                let mut words = Vec::new();
                for (v, s) in items {
                    match v {
                        Value::Str(w) | Value::Var(w) | Value::Num(w) => words.push(w),
                        Value::List(_) => {
                            return Err(WorkflowError::at(s, format!("{key} lists words")));
                        }
                    }
                }
                if words.is_empty() {
                    return Err(WorkflowError::at(span, format!("{key} must not be empty")));
                }
                Ok(Some(words.join(", ")))
            }
        }
    };
    let _sandbox = flag(a, "publish_to_sandbox")?;
    if let Some(n) = a.whole("tasks_per_hit", 1)?
        && n != 1
    {
        return Err(WorkflowError::at(
            op_span,
            format!("tasks_per_hit={n}: Tutti posts one task per HIT (tasks_per_hit=1)"),
        ));
    }
    let reward = text(a, "reward_per_hit")?;
    if let Some(r) = &reward
        && !r.parse::<f64>().is_ok_and(|v| v.is_finite() && v >= 0.0)
    {
        return Err(WorkflowError::at(
            op_span,
            format!("reward_per_hit must be an amount in US dollars, not {r:?}"),
        ));
    }
    let locations = match text(a, "workers_from_location")? {
        None => Vec::new(),
        Some(l) => l
            .split(',')
            .map(|c| c.trim().to_ascii_uppercase())
            .filter(|c| !c.is_empty())
            .collect(),
    };
    let percent = |a: &mut Args, key: &str| -> Result<Option<u64>, WorkflowError> {
        match a.whole(key, 0)? {
            Some(p) if p > 100 => Err(WorkflowError::at(
                op_span,
                format!("{key} is a percentage, 0-100"),
            )),
            p => Ok(p),
        }
    };
    Ok(crate::job::HitSettings {
        title: text(a, "title")?,
        description: text(a, "description")?,
        keywords: text(a, "keywords")?,
        reward,
        lifetime_secs: a.whole("lifetime", 1)?,
        auto_approval_secs: a.whole("auto_approve_and_pay_workers_in", 0)?,
        masters: flag(a, "workers_are_masters")?,
        locations,
        min_hits_approved: a.whole("workers_with_min_hits_approved", 0)?,
        max_hits_approved: a.whole("workers_with_max_hits_approved", 0)?,
        min_approval_rate: percent(a, "workers_with_min_approval_rate")?,
        max_approval_rate: percent(a, "workers_with_max_approval_rate")?,
    })
}

fn compile(call: Call) -> Result<Node, WorkflowError> {
    let span = call.span;
    let mut a = Args {
        op: call.op.clone(),
        positional: call.positional.clone(),
        named: call.named.clone(),
        op_span: call.op_span,
    };
    let (op, inputs, outs) = match call.op.as_str() {
        "read_table" => {
            let file = a.file("the file to read")?;
            (Op::ReadTable { file }, vec![], outputs(&call, 1)?)
        }
        "sample_random" => {
            let t = a.table("the table to sample")?;
            let n = a.required_whole("n", 0)?;
            let seed = a.whole("seed", 0)?;
            (Op::Sample { n, seed }, vec![t], outputs(&call, 1)?)
        }
        "exec_sql" => {
            // Cymphony lets a query read no table at all.
            let mut tables = Vec::new();
            while a.positional.iter().any(|(v, _)| matches!(v, Value::Var(_))) {
                tables.push(a.table("a table")?);
            }
            let query = a.required_string("query")?;
            if query.trim().is_empty() {
                return Err(WorkflowError::at(call.op_span, "query must not be empty"));
            }
            (Op::Sql { query }, tables, outputs(&call, 1)?)
        }
        "write_table" => {
            let t = a.table("the table to write")?;
            let file = match a.string("file")? {
                Some(f) => f,
                None => a.file("file=\"…\"")?,
            };
            // Cymphony ignores a name given to write_table's result; so
            // does Tutti (the name stays undefined).
            (Op::WriteTable { file }, vec![t], Vec::new())
        }
        "3a_kn" | "3a_knlm" | "3a_amt" => {
            let t = a.table("the table to label")?;
            // The instructions file, then the layout file, which may be
            // left out: the row's columns are then shown as a table. (The
            // runner tells the two apart by what they hold, as Cymphony
            // does, whichever comes first.)
            let instructions = a.file("the instructions file")?;
            let layout = a.optional_file("the layout file")?;
            let k = a.small("k", 1)?;
            let n = a.small("n", 1)?;
            if k > n {
                return Err(WorkflowError::at(
                    call.op_span,
                    format!("k ({k}) must not be greater than n ({n})"),
                ));
            }
            let stewards = if call.op == "3a_knlm" {
                let l = a.small("l", 1)?;
                let m = a.small("m", 1)?;
                if l > m {
                    return Err(WorkflowError::at(
                        call.op_span,
                        format!("l ({l}) must not be greater than m ({m})"),
                    ));
                }
                Some((l, m))
            } else {
                None
            };
            let question = a.required_string("question")?;
            let free_text = a.is_free_text("answers");
            let answers = if free_text {
                a.take("answers");
                Vec::new()
            } else {
                a.strings("answers")?
            };
            let time_limit_secs = a
                .whole("annotation_time_limit", 1)?
                .map(|v| u32::try_from(v).unwrap_or(u32::MAX));
            let (crowd, hit) = if call.op == "3a_amt" {
                (Crowd::MechanicalTurk, Some(hit_settings(&mut a)?))
            } else {
                (Crowd::InHouse, None)
            };
            let human = HumanLabel {
                crowd,
                instructions: Some(instructions),
                layout,
                question,
                answers,
                free_text,
                hit,
                k,
                n,
                stewards,
                time_limit_secs,
            };
            (Op::HumanLabel(Box::new(human)), vec![t], outputs(&call, 2)?)
        }
        other => {
            return Err(WorkflowError::at(
                call.op_span,
                format!(
                    "unknown operator {other}; the operators are read_table, sample_random, exec_sql, \
                     write_table, 3a_kn, 3a_knlm and 3a_amt"
                ),
            ));
        }
    };
    a.done()?;
    Ok(Node {
        op,
        inputs,
        outputs: outs,
        span: Some(span),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"/* Persons: ask in-house workers, keep the yeses. */
T = read_table("people.csv");
S = sample_random(T, n=100);
(B, C) = 3a_kn(S, "instructions.html", "layout.html", k=2, n=3,
               question="Is ${name} a person?", answers=["Yes","No"], annotation_time_limit=3600);
D = exec_sql(S, C, query="SELECT S.* FROM S JOIN C ON S._id = C._id WHERE C.label = 'Yes'");
write_table(D, file="persons.csv");
"#;

    #[test]
    fn inputs_take_the_spelling_of_the_step_that_made_them_and_files_are_written_once() {
        let w =
            parse("Tab = read_table(\"a.csv\");\nU = exec_sql(tab, query=\"SELECT 1\");").unwrap();
        assert_eq!(w.nodes[1].inputs, ["Tab"]);
        let e = parse("T = read_table(\"a.csv\");\nwrite_table(T, file=\"o.csv\");\nwrite_table(T, file=\"o.csv\");")
            .unwrap_err();
        assert_eq!(e.span.map(|s| s.line), Some(3));
        assert!(e.message.contains("already written"), "{e}");
    }

    #[test]
    fn cymphonys_example_program_compiles_to_five_nodes() {
        let w = parse(EXAMPLE).unwrap();
        let ops: Vec<&str> = w.nodes.iter().map(|n| n.op.name()).collect();
        assert_eq!(
            ops,
            ["read_table", "sample", "human_label", "sql", "write_table"]
        );
        assert_eq!(w.nodes[2].outputs, ["B", "C"]);
        assert_eq!(w.nodes[3].inputs, ["S", "C"]);
        match &w.nodes[2].op {
            Op::HumanLabel(h) => {
                assert_eq!((h.k, h.n, h.time_limit_secs), (2, 3, Some(3600)));
                assert_eq!(h.answers, ["Yes", "No"]);
                assert_eq!(h.crowd, Crowd::InHouse);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(w.nodes[2].span, Some(Span { line: 4, column: 1 }));
        assert_eq!(
            w.input_files(),
            ["people.csv", "instructions.html", "layout.html"]
        );
    }

    fn error(src: &str) -> (u32, u32, String) {
        let e = parse(src).unwrap_err();
        let s = e.span.expect("a program error has a place");
        (s.line, s.column, e.message)
    }

    #[test]
    fn syntax_errors_name_their_line_and_column() {
        let (l, c, m) = error("T = read_table(\"a.csv\")\nU = sample_random(T, n=1);");
        assert_eq!((l, c), (2, 1), "{m}");
        assert!(m.contains("\";\""), "{m}");
        let (l, c, m) = error("T = read_table(\"a.csv);\n");
        assert_eq!((l, c), (1, 16), "{m}");
        let (l, c, m) = error("/* never closed\nT = read_table(\"a.csv\");");
        assert_eq!((l, c), (1, 1), "{m}");
        let (l, c, m) = error("T = read_table(\"a.csv\");\nU = exec_sql(T, query=\"x\" @);");
        assert_eq!((l, c), (2, 27), "{m}");
    }

    #[test]
    fn a_program_is_checked_whole_before_it_runs() {
        let cases = [
            (
                "T = read_table(\"a.csv\");\nU = magic(T);",
                (2, 5),
                "unknown operator magic",
            ),
            (
                "T = read_table(\"a.csv\");\nU = sample_random(X, n=3);",
                (2, 1),
                "X is not defined",
            ),
            (
                "S = sample_random(T, n=3);",
                (1, 1),
                "must start by reading a table",
            ),
            (
                "T = read_table(\"a.csv\");\nT = sample_random(T, n=3);",
                (2, 1),
                "already defined",
            ),
            (
                "T = read_table(\"a.csv\");\nU = sample_random(T, n=many);",
                (2, 24),
                "whole number",
            ),
            (
                "T = read_table(\"a.csv\");\nU = sample_random(T, n=3, size=4);",
                (2, 27),
                "no parameter size",
            ),
            (
                "T = read_table(\"a.csv\");\nB = 3a_kn(T, \"i.html\", \"l.html\", k=2, n=3, question=\"q\", answers=[\"Y\"]);",
                (2, 1),
                "2 outputs",
            ),
            (
                "T = read_table(\"a.csv\");\n(A, B) = 3a_kn(T, \"i.html\", \"l.html\", k=4, n=3, question=\"q\", answers=[\"Y\"]);",
                (2, 10),
                "must not be greater",
            ),
            (
                "T = read_table(\"a.csv\");\n(A, B) = 3a_knlm(T, \"i.html\", \"l.html\", k=1, n=3, question=\"q\", answers=[\"Y\"]);",
                (2, 10),
                "needs l=",
            ),
            (
                "T = read_table(\"a.csv\");\nwrite_table(T);",
                (2, 1),
                "file",
            ),
            (
                "T = read_table(\"a.csv\");\n(A, B) = 3a_kn(T, k=1, n=1, question=\"q\", answers=[\"Y\"]);",
                (2, 10),
                "needs the instructions file",
            ),
            (
                "T = read_table(\"a.csv\");\n(A, B) = 3a_amt(T, \"i.html\", k=1, n=1, question=\"q\", answers=[\"Y\"], tasks_per_hit=3);",
                (2, 10),
                "one task per HIT",
            ),
            (
                "T = read_table(\"a.csv\");\n(A, B) = 3a_kn(T, \"i.html\", k=1, n=1, question=\"q\", answers=[\"Y\"], colour=\"red\");",
                (2, 68),
                "no parameter colour",
            ),
            ("", (1, 1), "empty"),
        ];
        for (src, (line, column), needle) in cases {
            let (l, c, m) = error(src);
            assert!(m.contains(needle), "{src:?}: {m}");
            assert_eq!((l, c), (line, column), "{src:?}: {m}");
        }
    }

    fn human(src: &str) -> HumanLabel {
        let w = parse(src).unwrap_or_else(|e| panic!("{src}: {e}"));
        match w.nodes.into_iter().find_map(|n| match n.op {
            Op::HumanLabel(h) => Some(*h),
            _ => None,
        }) {
            Some(h) => h,
            None => panic!("no human step in {src}"),
        }
    }

    #[test]
    fn a_human_step_without_a_layout_file_is_taken_as_cymphony_takes_it() {
        for op in ["3a_kn", "3a_amt"] {
            let h = human(&format!(
                "T = read_table(\"t.csv\");\n(A, L) = {op}(T, \"instructions.html\", k=1, n=1, question=\"Ok?\", answers=[\"Yes\", \"No\"]);"
            ));
            assert_eq!(h.instructions.as_deref(), Some("instructions.html"));
            assert_eq!(h.layout, None);
        }
        let h = human(
            "T = read_table(\"t.csv\");\n(A, L) = 3a_knlm(T, \"i.html\", k=1, n=1, l=1, m=1, question=\"Ok?\", answers=[\"Yes\"]);",
        );
        assert_eq!((h.layout, h.stewards), (None, Some((1, 1))));
    }

    #[test]
    fn arguments_count_by_their_shape_in_any_order() {
        // Files before the table, named arguments before plain ones.
        let h = human(
            "T = read_table(\"t.csv\");\n(A, L) = 3a_kn(k=1, n=2, \"i.html\", question=\"Ok?\", T, answers=[\"Yes\"], \"l.html\");",
        );
        assert_eq!(h.instructions.as_deref(), Some("i.html"));
        assert_eq!(h.layout.as_deref(), Some("l.html"));
        assert_eq!((h.k, h.n), (1, 2));
    }

    #[test]
    fn quoted_numbers_count_as_numbers() {
        let h = human(
            "T = read_table(\"t.csv\");\n(A, L) = 3a_kn(T, \"i.html\", k=\"2\", n=\"3\", annotation_time_limit=\"600\", question=\"Ok?\", answers=[\"Yes\"]);",
        );
        assert_eq!((h.k, h.n, h.time_limit_secs), (2, 3, Some(600)));
    }

    #[test]
    fn free_text_answers_are_typed() {
        for answers in ["free_text", "\"free_text\""] {
            let h = human(&format!(
                "T = read_table(\"t.csv\");\n(A, L) = 3a_kn(T, \"i.html\", k=1, n=1, question=\"Name it\", answers={answers});"
            ));
            assert!(h.free_text, "{answers}");
            assert!(h.answers.is_empty());
        }
    }

    #[test]
    fn a_query_may_read_no_table_and_a_sample_may_be_empty() {
        let w = parse(
            "T = read_table(\"t.csv\");\nU = exec_sql(query=\"SELECT 1 AS one\");\nS = sample_random(T, n=0);",
        )
        .unwrap();
        assert!(w.nodes[1].inputs.is_empty());
        assert!(matches!(w.nodes[2].op, Op::Sample { n: 0, .. }));
    }

    #[test]
    fn a_name_given_to_write_tables_result_is_ignored() {
        let w = parse("T = read_table(\"t.csv\");\nU = write_table(T, file=\"o.csv\");").unwrap();
        assert!(w.nodes[1].outputs.is_empty());
        let e = parse("T = read_table(\"t.csv\");\nU = write_table(T, file=\"o.csv\");\nV = sample_random(U, n=1);")
            .unwrap_err();
        assert!(e.message.contains("U is not defined"), "{e}");
    }

    #[test]
    fn mechanical_turk_steps_carry_their_hit_parameters() {
        let h = human(
            "T = read_table(\"t.csv\");\n(A, L) = 3a_amt(T, \"i.html\", k=1, n=3, question=\"Ok?\", answers=[\"Yes\", \"No\"], \
             title=\"Find persons\", description=\"Say whether a name is a person\", keywords=\"names, people\", \
             lifetime=86400, reward_per_hit=0.05, publish_to_sandbox=True, tasks_per_hit=1, \
             auto_approve_and_pay_workers_in=3600, workers_are_masters=False, workers_from_location=\"US, ca\", \
             workers_with_min_hits_approved=100, workers_with_min_approval_rate=95);",
        );
        let hit = h.hit.expect("HIT settings");
        assert_eq!(hit.title.as_deref(), Some("Find persons"));
        assert_eq!(hit.keywords.as_deref(), Some("names, people"));
        assert_eq!(hit.reward.as_deref(), Some("0.05"));
        assert_eq!(hit.lifetime_secs, Some(86400));
        assert_eq!(hit.auto_approval_secs, Some(3600));
        assert!(!hit.masters);
        assert_eq!(hit.locations, ["US", "CA"]);
        assert_eq!(hit.min_hits_approved, Some(100));
        assert_eq!(hit.min_approval_rate, Some(95));
        let e = parse(
            "T = read_table(\"t.csv\");\n(A, L) = 3a_amt(T, \"i.html\", k=1, n=1, question=\"q\", answers=[\"Y\"], workers_with_min_approval_rate=101);",
        )
        .unwrap_err();
        assert!(e.message.contains("percentage"), "{e}");
    }

    #[test]
    fn steward_and_crowd_operators_carry_their_settings() {
        let w = parse(
            "T = read_table('t.csv');\n\
             (A, L) = 3a_knlm(T, \"i.html\", \"l.html\", k=2, n=3, l=1, m=1, question=\"q\", answers=[\"a\", \"b\"]);\n\
             (A2, L2) = 3a_amt(T, \"i.html\", \"l.html\", k=1, n=1, question=\"q\", answers=[\"a\"]);",
        )
        .unwrap();
        match (&w.nodes[1].op, &w.nodes[2].op) {
            (Op::HumanLabel(s), Op::HumanLabel(c)) => {
                assert_eq!(s.stewards, Some((1, 1)));
                assert_eq!(c.crowd, Crowd::MechanicalTurk);
            }
            other => panic!("{other:?}"),
        }
    }
}
