//! The native workflow spec, in JSON: named nodes with typed parameters
//! and explicit inputs and outputs, compiled to the same [`Workflow`] as a
//! `.cy` program.
//!
//! ```json
//! {"nodes": [
//!   {"op": "read_table", "file": "people.csv", "outputs": ["T"]},
//!   {"op": "sample", "inputs": ["T"], "n": 100, "seed": 7, "outputs": ["S"]},
//!   {"op": "human_label", "inputs": ["S"], "outputs": ["answers", "labels"],
//!    "question": "Is ${name} a person?", "answers": ["Yes", "No"], "k": 2, "n": 3},
//!   {"op": "sql", "inputs": ["S", "labels"], "outputs": ["D"],
//!    "query": "SELECT S.* FROM S JOIN labels ON S._id = labels._id WHERE labels.label = 'Yes'"},
//!   {"op": "write_table", "inputs": ["D"], "file": "persons.csv"}
//! ]}
//! ```
//!
//! A document that is not valid JSON is refused with its line and column; a
//! node with a missing, unknown or ill-typed field, or a graph error, with
//! the node's path (`nodes[3]`, `nodes[3].inputs[1]`).

use super::{
    Crowd, HumanCompare, HumanLabel, KeywordLabel, ModelCall, Node, Op, Span, Workflow,
    WorkflowError,
};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Doc {
    nodes: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
enum SpecNode {
    #[serde(alias = "rule_label")]
    KeywordLabel {
        inputs: Vec<String>,
        outputs: Vec<String>,
        patterns: String,
        column: String,
        whole_word: Option<bool>,
        id_column: Option<String>,
        source_column: Option<String>,
        author_column: Option<String>,
        time_column: Option<String>,
    },
    ReadTable {
        file: String,
        outputs: Vec<String>,
    },
    ReadRun {
        run: i64,
        table: String,
        outputs: Vec<String>,
    },
    HumanCompare {
        inputs: Vec<String>,
        outputs: Vec<String>,
        criterion: String,
        left: String,
        right: String,
        left_id: String,
        right_id: String,
        tie: Option<bool>,
        scale: Option<u32>,
        k: u32,
        n: u32,
        instructions: Option<String>,
        layout: Option<String>,
        time_limit_secs: Option<u32>,
    },
    Aggregate {
        inputs: Vec<String>,
        outputs: Vec<String>,
        method: String,
        k: Option<u32>,
    },
    ReadDatabase {
        database: String,
        query: String,
        #[serde(default)]
        params: Vec<serde_json::Value>,
        outputs: Vec<String>,
    },
    WriteDatabase {
        inputs: Vec<String>,
        database: String,
        table: String,
    },
    Webhook {
        inputs: Vec<String>,
        url: String,
        batch_size: Option<u32>,
    },
    Sample {
        inputs: Vec<String>,
        outputs: Vec<String>,
        n: u64,
        seed: Option<u64>,
    },
    Sql {
        inputs: Vec<String>,
        outputs: Vec<String>,
        query: String,
    },
    WriteTable {
        inputs: Vec<String>,
        file: String,
    },
    HumanLabel {
        inputs: Vec<String>,
        outputs: Vec<String>,
        question: String,
        answers: Vec<String>,
        k: u32,
        n: u32,
        l: Option<u32>,
        m: Option<u32>,
        instructions: Option<String>,
        layout: Option<String>,
        time_limit_secs: Option<u32>,
        #[serde(default)]
        crowd: Option<String>,
    },
    ModelCall {
        inputs: Vec<String>,
        outputs: Vec<String>,
        url: String,
        fields: Vec<String>,
        #[serde(default)]
        columns: Vec<String>,
        batch_size: Option<u32>,
        timeout_secs: Option<u32>,
        retries: Option<u32>,
        mode: Option<String>,
    },
}

fn count(
    path: &str,
    what: &str,
    list: &[String],
    want: std::ops::RangeInclusive<usize>,
) -> Result<(), WorkflowError> {
    if !want.contains(&list.len()) {
        let expected = if want.start() == want.end() {
            want.start().to_string()
        } else if *want.end() == usize::MAX {
            format!("at least {}", want.start())
        } else {
            format!("{} to {}", want.start(), want.end())
        };
        return Err(WorkflowError::field(
            format!("{path}.{what}"),
            format!("must list {expected} tables, not {}", list.len()),
        ));
    }
    if let Some(bad) = list.iter().position(|v| !is_name(v)) {
        return Err(WorkflowError::field(
            format!("{path}.{what}[{bad}]"),
            "a table name is letters, digits and _, not starting with a digit",
        ));
    }
    Ok(())
}

fn is_name(s: &str) -> bool {
    s.chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_alphanumeric() || c == '_')
}

/// Parses and checks a workflow spec written in YAML: the same document
/// as the JSON spec, in YAML's syntax.
pub fn parse_yaml(src: &str) -> Result<Workflow, WorkflowError> {
    let value: serde_json::Value = serde_yaml::from_str(src).map_err(|e| {
        let span = e.location().map(|l| Span {
            line: l.line() as u32,
            column: l.column() as u32,
        });
        WorkflowError {
            span,
            field: None,
            message: e
                .to_string()
                .split(" at line ")
                .next()
                .unwrap_or_default()
                .to_owned(),
        }
    })?;
    let doc: Doc =
        serde_json::from_value(value).map_err(|e| WorkflowError::field("nodes", e.to_string()))?;
    compile(doc)
}

/// Parses and checks a JSON workflow spec.
pub fn parse(src: &str) -> Result<Workflow, WorkflowError> {
    let doc: Doc = serde_json::from_str(src).map_err(|e| WorkflowError {
        span: Some(Span {
            line: e.line() as u32,
            column: e.column() as u32,
        }),
        field: None,
        message: e
            .to_string()
            .split(" at line ")
            .next()
            .unwrap_or_default()
            .to_owned(),
    })?;
    compile(doc)
}

fn compile(doc: Doc) -> Result<Workflow, WorkflowError> {
    let mut nodes = Vec::with_capacity(doc.nodes.len());
    for (i, n) in doc.nodes.into_iter().enumerate() {
        let path = format!("nodes[{i}]");
        let n: SpecNode = serde_json::from_value(n)
            .map_err(|e| WorkflowError::field(path.clone(), e.to_string()))?;
        let (op, inputs, outputs) = match n {
            SpecNode::HumanCompare {
                inputs,
                outputs,
                criterion,
                left,
                right,
                left_id,
                right_id,
                tie,
                scale,
                k,
                n,
                instructions,
                layout,
                time_limit_secs,
            } => {
                count(&path, "inputs", &inputs, 1..=1)?;
                count(&path, "outputs", &outputs, 2..=2)?;
                nonempty(&path, "criterion", &criterion)?;
                for (what, v) in [
                    ("left", &left),
                    ("right", &right),
                    ("left_id", &left_id),
                    ("right_id", &right_id),
                ] {
                    nonempty(&path, what, v)?;
                }
                if k == 0 || k > n {
                    return Err(WorkflowError::field(
                        format!("{path}.k"),
                        format!("must be at least 1 and at most n ({n})"),
                    ));
                }
                if let Some(s) = scale
                    && !(1..=crate::job::MAX_SCALE).contains(&s)
                {
                    return Err(WorkflowError::field(
                        format!("{path}.scale"),
                        format!("must be between 1 and {}", crate::job::MAX_SCALE),
                    ));
                }
                let c = HumanCompare {
                    criterion,
                    left,
                    right,
                    left_id,
                    right_id,
                    // A graded 0 is a tie.
                    tie: tie.unwrap_or(scale.is_some()),
                    scale,
                    k,
                    n,
                    instructions,
                    layout,
                    time_limit_secs,
                };
                (Op::HumanCompare(Box::new(c)), inputs, outputs)
            }
            SpecNode::KeywordLabel {
                inputs,
                outputs,
                patterns,
                column,
                whole_word,
                id_column,
                source_column,
                author_column,
                time_column,
            } => {
                count(&path, "inputs", &inputs, 1..=1)?;
                count(&path, "outputs", &outputs, 1..=2)?;
                nonempty(&path, "patterns", &patterns)?;
                let name = |field: &str, v: Option<String>, default: &str| {
                    let v = v.unwrap_or_else(|| default.to_owned());
                    let ok = !v.is_empty()
                        && v.len() <= 64
                        && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                        && !v.as_bytes()[0].is_ascii_digit();
                    if ok {
                        Ok(v)
                    } else {
                        Err(WorkflowError::field(
                            format!("{path}.{field}"),
                            format!("{v:?} is not a column name; use letters, digits and _"),
                        ))
                    }
                };
                let k = KeywordLabel {
                    patterns,
                    column: name("column", Some(column), "")?,
                    whole_word: whole_word.unwrap_or(false),
                    id_column: name("id_column", id_column, "id")?,
                    source_column: name("source_column", source_column, "source")?,
                    author_column: name("author_column", author_column, "author_name")?,
                    time_column: name("time_column", time_column, "create_time")?,
                };
                (Op::KeywordLabel(Box::new(k)), inputs, outputs)
            }
            SpecNode::Aggregate {
                inputs,
                outputs,
                method,
                k,
            } => {
                count(&path, "inputs", &inputs, 1..=1)?;
                count(&path, "outputs", &outputs, 1..=1)?;
                if method.parse::<tutti_aggregate::Method>().is_err() {
                    return Err(WorkflowError::field(
                        format!("{path}.method"),
                        format!(
                            "unknown method {method:?}; use mv, kofn, wmv, ds, onecoin, glad, mace, wawa or zbs"
                        ),
                    ));
                }
                if method == "wmv" {
                    return Err(WorkflowError::field(
                        format!("{path}.method"),
                        "wmv needs per-worker weights, which a workflow step cannot give; use ds or glad",
                    ));
                }
                let k = k.unwrap_or(2);
                if k == 0 {
                    return Err(WorkflowError::field(
                        format!("{path}.k"),
                        "must be at least 1",
                    ));
                }
                (Op::Aggregate { method, k }, inputs, outputs)
            }
            SpecNode::ReadDatabase {
                database,
                query,
                params,
                outputs,
            } => {
                count(&path, "outputs", &outputs, 1..=1)?;
                nonempty(&path, "database", &database)?;
                nonempty(&path, "query", &query)?;
                if let Some(bad) = params.iter().position(|p| {
                    !(p.is_string() || p.is_number() || p.is_boolean() || p.is_null())
                }) {
                    return Err(WorkflowError::field(
                        format!("{path}.params[{bad}]"),
                        "must be text, a number, true/false or null",
                    ));
                }
                (
                    Op::ReadDatabase {
                        database,
                        query,
                        params,
                    },
                    vec![],
                    outputs,
                )
            }
            SpecNode::WriteDatabase {
                inputs,
                database,
                table,
            } => {
                count(&path, "inputs", &inputs, 1..=1)?;
                nonempty(&path, "database", &database)?;
                if !is_name(&table) {
                    return Err(WorkflowError::field(
                        format!("{path}.table"),
                        "a table name is letters, digits and _, not starting with a digit",
                    ));
                }
                (Op::WriteDatabase { database, table }, inputs, vec![])
            }
            SpecNode::Webhook {
                inputs,
                url,
                batch_size,
            } => {
                count(&path, "inputs", &inputs, 1..=1)?;
                if !(url.starts_with("http://")
                    || url.starts_with("https://")
                    || url.starts_with("${"))
                {
                    return Err(WorkflowError::field(
                        format!("{path}.url"),
                        "must be an http:// or https:// URL (or start with a ${parameter})",
                    ));
                }
                let batch_size = batch_size.unwrap_or(1000);
                if !(1..=100_000).contains(&batch_size) {
                    return Err(WorkflowError::field(
                        format!("{path}.batch_size"),
                        "must be between 1 and 100000",
                    ));
                }
                (Op::Webhook { url, batch_size }, inputs, vec![])
            }
            SpecNode::ReadRun {
                run,
                table,
                outputs,
            } => {
                count(&path, "outputs", &outputs, 1..=1)?;
                nonempty(&path, "table", &table)?;
                if run < 1 {
                    return Err(WorkflowError::field(
                        format!("{path}.run"),
                        "must be a run's id",
                    ));
                }
                (Op::ReadRun { run, table }, vec![], outputs)
            }
            SpecNode::ReadTable { file, outputs } => {
                count(&path, "outputs", &outputs, 1..=1)?;
                nonempty(&path, "file", &file)?;
                (Op::ReadTable { file }, vec![], outputs)
            }
            SpecNode::Sample {
                inputs,
                outputs,
                n,
                seed,
            } => {
                count(&path, "inputs", &inputs, 1..=1)?;
                count(&path, "outputs", &outputs, 1..=1)?;
                if n == 0 {
                    return Err(WorkflowError::field(
                        format!("{path}.n"),
                        "must be at least 1",
                    ));
                }
                (Op::Sample { n, seed }, inputs, outputs)
            }
            SpecNode::Sql {
                inputs,
                outputs,
                query,
            } => {
                count(&path, "inputs", &inputs, 1..=usize::MAX)?;
                count(&path, "outputs", &outputs, 1..=1)?;
                nonempty(&path, "query", &query)?;
                (Op::Sql { query }, inputs, outputs)
            }
            SpecNode::WriteTable { inputs, file } => {
                count(&path, "inputs", &inputs, 1..=1)?;
                nonempty(&path, "file", &file)?;
                (Op::WriteTable { file }, inputs, vec![])
            }
            SpecNode::ModelCall {
                inputs,
                outputs,
                url,
                fields,
                columns,
                batch_size,
                timeout_secs,
                retries,
                mode,
            } => {
                count(&path, "inputs", &inputs, 1..=1)?;
                count(&path, "outputs", &outputs, 1..=1)?;
                let callback = match mode.as_deref() {
                    None | Some("inline") => false,
                    Some("callback") => true,
                    Some(other) => {
                        return Err(WorkflowError::field(
                            format!("{path}.mode"),
                            format!("unknown mode {other:?}; use inline or callback"),
                        ));
                    }
                };
                if !(url.starts_with("http://")
                    || url.starts_with("https://")
                    || url.starts_with("${"))
                {
                    return Err(WorkflowError::field(
                        format!("{path}.url"),
                        "must be an http:// or https:// URL (or start with a ${parameter})",
                    ));
                }
                if fields.is_empty() {
                    return Err(WorkflowError::field(
                        format!("{path}.fields"),
                        "must name at least one result field to keep",
                    ));
                }
                for (what, list) in [("fields", &fields), ("columns", &columns)] {
                    if let Some(bad) = list.iter().position(|f| f.trim().is_empty()) {
                        return Err(WorkflowError::field(
                            format!("{path}.{what}[{bad}]"),
                            "must not be empty",
                        ));
                    }
                }
                let batch_size = batch_size.unwrap_or(100);
                if !(1..=10_000).contains(&batch_size) {
                    return Err(WorkflowError::field(
                        format!("{path}.batch_size"),
                        "must be between 1 and 10000",
                    ));
                }
                let timeout_secs = timeout_secs.unwrap_or(30);
                if !(1..=3600).contains(&timeout_secs) {
                    return Err(WorkflowError::field(
                        format!("{path}.timeout_secs"),
                        "must be between 1 and 3600",
                    ));
                }
                let retries = retries.unwrap_or(3);
                if retries > 20 {
                    return Err(WorkflowError::field(
                        format!("{path}.retries"),
                        "must be at most 20",
                    ));
                }
                let call = ModelCall {
                    url,
                    fields,
                    columns,
                    batch_size,
                    timeout_secs,
                    retries,
                    callback,
                };
                (Op::ModelCall(Box::new(call)), inputs, outputs)
            }
            SpecNode::HumanLabel {
                inputs,
                outputs,
                question,
                answers,
                k,
                n,
                l,
                m,
                instructions,
                layout,
                time_limit_secs,
                crowd,
            } => {
                count(&path, "inputs", &inputs, 1..=1)?;
                count(&path, "outputs", &outputs, 2..=2)?;
                nonempty(&path, "question", &question)?;
                if answers.is_empty() {
                    return Err(WorkflowError::field(
                        format!("{path}.answers"),
                        "must list at least one answer",
                    ));
                }
                if k == 0 || k > n {
                    return Err(WorkflowError::field(
                        format!("{path}.k"),
                        format!("must be at least 1 and at most n ({n})"),
                    ));
                }
                let stewards = match (l, m) {
                    (None, None) => None,
                    (Some(l), Some(m)) if l >= 1 && l <= m => Some((l, m)),
                    (Some(_), Some(m)) => {
                        return Err(WorkflowError::field(
                            format!("{path}.l"),
                            format!("must be at least 1 and at most m ({m})"),
                        ));
                    }
                    (Some(_), None) => {
                        return Err(WorkflowError::field(
                            format!("{path}.m"),
                            "is required with l",
                        ));
                    }
                    (None, Some(_)) => {
                        return Err(WorkflowError::field(
                            format!("{path}.l"),
                            "is required with m",
                        ));
                    }
                };
                let crowd = match crowd.as_deref() {
                    None | Some("in_house") => Crowd::InHouse,
                    Some("mechanical_turk") => Crowd::MechanicalTurk,
                    Some(other) => {
                        return Err(WorkflowError::field(
                            format!("{path}.crowd"),
                            format!("unknown crowd {other:?}; use in_house or mechanical_turk"),
                        ));
                    }
                };
                let human = HumanLabel {
                    crowd,
                    instructions,
                    layout,
                    question,
                    answers,
                    free_text: false,
                    hit: None,
                    k,
                    n,
                    stewards,
                    time_limit_secs,
                };
                (Op::HumanLabel(Box::new(human)), inputs, outputs)
            }
        };
        nodes.push(Node {
            op,
            inputs,
            outputs,
            span: None,
        });
    }
    Workflow::check_graph(&nodes, |i, input| match input {
        Some(j) => WorkflowError::field(format!("nodes[{i}].inputs[{j}]"), ""),
        None => WorkflowError::field(format!("nodes[{i}]"), ""),
    })?;
    super::canonical_inputs(&mut nodes);
    Ok(Workflow { nodes })
}

fn nonempty(path: &str, field: &str, value: &str) -> Result<(), WorkflowError> {
    if value.trim().is_empty() {
        return Err(WorkflowError::field(
            format!("{path}.{field}"),
            "must not be empty",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &str = r#"{"nodes": [
  {"op": "read_table", "file": "people.csv", "outputs": ["T"]},
  {"op": "sample", "inputs": ["T"], "n": 100, "outputs": ["S"]},
  {"op": "human_label", "inputs": ["S"], "outputs": ["B", "C"], "question": "Is ${name} a person?",
   "answers": ["Yes", "No"], "k": 2, "n": 3, "instructions": "instructions.html", "layout": "layout.html",
   "time_limit_secs": 3600},
  {"op": "sql", "inputs": ["S", "C"], "outputs": ["D"],
   "query": "SELECT S.* FROM S JOIN C ON S._id = C._id WHERE C.label = 'Yes'"},
  {"op": "write_table", "inputs": ["D"], "file": "persons.csv"}
]}"#;

    #[test]
    fn the_spec_and_the_program_compile_to_the_same_workflow() {
        let from_spec = parse(SPEC).unwrap();
        let from_cy = super::super::cy::parse(
            r#"T = read_table("people.csv");
S = sample_random(T, n=100);
(B, C) = 3a_kn(S, "instructions.html", "layout.html", k=2, n=3,
               question="Is ${name} a person?", answers=["Yes","No"], annotation_time_limit=3600);
D = exec_sql(S, C, query="SELECT S.* FROM S JOIN C ON S._id = C._id WHERE C.label = 'Yes'");
write_table(D, file="persons.csv");"#,
        )
        .unwrap();
        let strip = |w: Workflow| -> Vec<Node> {
            w.nodes
                .into_iter()
                .map(|n| Node { span: None, ..n })
                .collect()
        };
        assert_eq!(strip(from_spec), strip(from_cy));
    }

    #[test]
    fn bad_documents_name_the_line_or_the_field() {
        let e = parse("{\"nodes\": [\n  {\"op\": \"read_table\", \"file\": \"a.csv\",\n   \"outputs\": [\"T\"] \"x\": 1}\n]}")
            .unwrap_err();
        assert_eq!(
            e.span,
            Some(Span {
                line: 3,
                column: 21
            }),
            "{e}"
        );
        let e = parse("{\"nodes\": [{\"op\": \"read_table\", \"file\": \"a.csv\", \"outputs\": [\"T\"], \"extra\": 1}]}")
            .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("nodes[0]"), "{e}");
        assert!(e.message.contains("extra"), "{e}");
        let e = parse("{\"nodes\": [{\"op\": \"teleport\"}]}").unwrap_err();
        assert!(e.message.contains("teleport"), "{e}");
        let cases = [
            (
                r#"{"nodes": [{"op": "read_table", "file": "a.csv", "outputs": ["T"]},
                {"op": "sql", "inputs": ["T", "X"], "outputs": ["U"], "query": "SELECT 1"}]}"#,
                "nodes[1].inputs[1]",
                "X is not defined",
            ),
            (
                r#"{"nodes": [{"op": "read_table", "file": "a.csv", "outputs": ["T"]},
                {"op": "sample", "inputs": ["T"], "outputs": ["U"], "n": 0}]}"#,
                "nodes[1].n",
                "at least 1",
            ),
            (
                r#"{"nodes": [{"op": "read_table", "file": "a.csv", "outputs": ["T", "U"]}]}"#,
                "nodes[0].outputs",
                "1 tables",
            ),
            (
                r#"{"nodes": [{"op": "read_table", "file": "a.csv", "outputs": ["T"]},
                {"op": "human_label", "inputs": ["T"], "outputs": ["A", "B"], "question": "q", "answers": ["y"], "k": 3, "n": 2}]}"#,
                "nodes[1].k",
                "at most n",
            ),
            (
                r#"{"nodes": [{"op": "read_table", "file": "a.csv", "outputs": ["1T"]}]}"#,
                "nodes[0].outputs[0]",
                "table name",
            ),
            (r#"{"nodes": []}"#, "nodes[0]", "empty"),
        ];
        for (src, field, needle) in cases {
            let e = parse(src).unwrap_err();
            assert_eq!(e.field.as_deref(), Some(field), "{e}");
            assert!(e.message.contains(needle), "{e}");
        }
    }
}
