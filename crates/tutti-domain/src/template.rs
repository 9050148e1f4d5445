//! `${column}` placeholders, as in Cymphony's questions and layouts: each is
//! replaced by the value of that column of the task's row.

use serde_json::{Map, Value};

/// The text of a row value as a person should see it: strings without
/// quotes, nulls as nothing, everything else in its JSON form.
pub fn value_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Escapes text for HTML element content and attribute values.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Fills every `${name}` in `template` with the row's value of `name`, passing
/// each value through `escape` (HTML escaping for pages, identity for JSON).
/// A placeholder naming a column the row lacks is left as it was, so a typo
/// shows instead of silently vanishing.
pub fn render(template: &str, row: &Map<String, Value>, escape: impl Fn(&str) -> String) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find('}') {
            Some(end) => {
                let name = &after[..end];
                match row.get(name) {
                    Some(v) => out.push_str(&escape(&value_text(v))),
                    None => out.push_str(&escape(&rest[start..start + 3 + end])),
                }
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&escape(&rest[start..]));
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// The column names a template refers to, in order of first use.
pub fn placeholders(template: &str) -> Vec<&str> {
    let mut names = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        let name = &after[..end];
        if !names.contains(&name) {
            names.push(name);
        }
        rest = &after[end + 1..];
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn placeholders_are_filled_from_the_row() {
        let r = row(json!({"name": "Ada", "age": 36}));
        assert_eq!(
            render("Is ${name} (${age}) a person?", &r, str::to_owned),
            "Is Ada (36) a person?"
        );
    }

    #[test]
    fn an_unknown_placeholder_stays_visible() {
        let r = row(json!({"name": "Ada"}));
        assert_eq!(render("${nme}!", &r, str::to_owned), "${nme}!");
    }

    #[test]
    fn values_pass_through_the_escape_function() {
        let r = row(json!({"x": "<b>"}));
        let out = render("<p>${x}</p>", &r, |s| s.replace('<', "&lt;"));
        assert_eq!(out, "<p>&lt;b></p>");
    }

    #[test]
    fn an_unclosed_placeholder_is_kept_as_text() {
        let r = row(json!({}));
        assert_eq!(render("a ${b", &r, str::to_owned), "a ${b");
    }

    #[test]
    fn placeholders_are_listed_once_each() {
        assert_eq!(placeholders("${a} ${b} ${a}"), vec!["a", "b"]);
    }
}
