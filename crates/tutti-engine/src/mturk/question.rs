//! The page a Mechanical Turk worker answers a task on, and the answers
//! that come back.
//!
//! A HIT carries an `HTMLQuestion`: a whole HTML page in a CDATA section.
//! Its form posts to Mechanical Turk's `externalSubmit` with the
//! `assignmentId` from the page's address; in preview (before a worker
//! accepts) the address says `ASSIGNMENT_ID_NOT_AVAILABLE` and the button
//! stays disabled. Row values are HTML-escaped wherever they are filled
//! in; the requester's own instructions and layout are used as written.
//! The answer comes back as a `QuestionFormAnswers` document with one
//! `Answer` per form field; the choice is the field named [`FIELD`].

use serde_json::{Map, Value};
use tutti_domain::job::JobConfig;
use tutti_domain::template::{escape_html, render, value_text};

/// The form field that carries the worker's choice.
pub const FIELD: &str = "answer";

const HTML_QUESTION_NS: &str =
    "http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2011-11-11/HTMLQuestion.xsd";

/// The `HTMLQuestion` document for one task of `job`.
pub fn html_question(job: &JobConfig, row: &Map<String, Value>, submit_url: &str) -> String {
    let page = page(job, row, submit_url);
    // A CDATA section ends at the first `]]>`; one inside the page is split
    // across two sections.
    let cdata = page.replace("]]>", "]]]]><![CDATA[>");
    format!(
        "<HTMLQuestion xmlns=\"{HTML_QUESTION_NS}\"><HTMLContent><![CDATA[{cdata}]]></HTMLContent>\
         <FrameHeight>0</FrameHeight></HTMLQuestion>"
    )
}

fn page(job: &JobConfig, row: &Map<String, Value>, submit_url: &str) -> String {
    let item = match &job.layout {
        Some(layout) => render(layout, row, escape_html),
        None => {
            let mut t = String::from("<table class=\"row\">");
            for (k, v) in row {
                if k == "_id" {
                    continue;
                }
                t.push_str(&format!(
                    "<tr><th>{}</th><td>{}</td></tr>",
                    escape_html(k),
                    escape_html(&value_text(v))
                ));
            }
            t.push_str("</table>");
            t
        }
    };
    let question = render(&job.question, row, escape_html);
    let choices = if job.free_text || job.answers.is_empty() {
        format!("<textarea name=\"{FIELD}\" rows=\"3\" required></textarea>")
    } else {
        job.answers
            .iter()
            .map(|a| {
                let a = escape_html(a);
                format!(
                    "<label class=\"choice\"><input type=\"radio\" name=\"{FIELD}\" value=\"{a}\" required> {a}</label>"
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let long = if job.long_instructions.trim().is_empty() {
        String::new()
    } else {
        format!(
            "<details><summary>Full instructions</summary>{}</details>",
            job.long_instructions
        )
    };
    format!(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 52rem; margin: 1rem auto; padding: 0 1rem; line-height: 1.45; }}
table.row {{ border-collapse: collapse; margin: .75rem 0; }}
table.row th, table.row td {{ border: 1px solid #ccc; padding: .3rem .6rem; text-align: left; vertical-align: top; }}
.question {{ font-weight: 600; margin: 1rem 0 .5rem; }}
.choice {{ display: block; padding: .35rem 0; }}
button {{ margin-top: 1rem; padding: .5rem 1.5rem; font-size: 1rem; }}
</style></head>
<body>
<form name="mturk_form" method="post" id="mturk_form" action="{submit}">
<input type="hidden" name="assignmentId" id="assignmentId" value="">
<div class="instructions">{short}</div>
{long}
<div class="item">{item}</div>
<p class="question">{question}</p>
{choices}
<p><button type="submit" id="submitButton">Submit</button></p>
</form>
<script>
(function () {{
  var params = new URLSearchParams(window.location.search);
  var id = params.get('assignmentId') || '';
  document.getElementById('assignmentId').value = id;
  var to = params.get('turkSubmitTo');
  if (to) {{ document.getElementById('mturk_form').action = to.replace(/\/$/, '') + '/mturk/externalSubmit'; }}
  if (id === '' || id === 'ASSIGNMENT_ID_NOT_AVAILABLE') {{
    var b = document.getElementById('submitButton');
    b.disabled = true;
    b.textContent = 'Accept the HIT to answer';
  }}
}})();
</script>
</body></html>"#,
        title = escape_html(&job.name),
        submit = escape_html(submit_url),
        short = job.short_instructions,
    )
}

/// The value of form field `field` in a `QuestionFormAnswers` document,
/// with XML entities decoded; `None` when the field is absent.
pub fn answer_field(xml: &str, field: &str) -> Option<String> {
    let mut rest = xml;
    while let Some(start) = rest.find("<Answer>") {
        let after = &rest[start + "<Answer>".len()..];
        let end = after.find("</Answer>")?;
        let block = &after[..end];
        rest = &after[end..];
        let id = element(block, "QuestionIdentifier").map(|s| decode(s.trim()));
        if id.as_deref() == Some(field) {
            return element(block, "FreeText")
                .map(decode)
                .or(Some(String::new()));
        }
    }
    None
}

fn element<'a>(block: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = block.find(&open)? + open.len();
    let end = block[start..].find(&close)? + start;
    Some(&block[start..end])
}

/// Decodes XML's five named entities, numeric references and CDATA
/// sections.
fn decode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find(['&', '<']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(body) = tail.strip_prefix("<![CDATA[") {
            let end = body.find("]]>").unwrap_or(body.len());
            out.push_str(&body[..end]);
            rest = body.get(end + 3..).unwrap_or("");
            continue;
        }
        if let Some(after) = tail.strip_prefix('<') {
            out.push('<');
            rest = after;
            continue;
        }
        let Some(semi) = tail.find(';').filter(|&j| j <= 10) else {
            out.push('&');
            rest = &tail[1..];
            continue;
        };
        let name = &tail[1..semi];
        let decoded = match name {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            n if n.starts_with("#x") || n.starts_with("#X") => u32::from_str_radix(&n[2..], 16)
                .ok()
                .and_then(char::from_u32),
            n if n.starts_with('#') => n[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &tail[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// A `QuestionFormAnswers` document with one field per pair, as Mechanical
/// Turk writes a submitted form (used by the local server).
pub fn answers_xml(fields: &[(&str, &str)]) -> String {
    let mut xml = String::from(
        "<?xml version=\"1.0\" encoding=\"ASCII\"?><QuestionFormAnswers xmlns=\"http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2005-10-01/QuestionFormAnswers.xsd\">",
    );
    for (k, v) in fields {
        xml.push_str(&format!(
            "<Answer><QuestionIdentifier>{}</QuestionIdentifier><FreeText>{}</FreeText></Answer>",
            xml_escape(k),
            xml_escape(v)
        ));
    }
    xml.push_str("</QuestionFormAnswers>");
    xml
}

/// Escapes text for XML, non-ASCII as numeric references (the documents
/// Mechanical Turk writes declare ASCII).
fn xml_escape(s: &str) -> String {
    // HTML's escapes are XML's too (`&#39;` for the apostrophe).
    let mut out = String::with_capacity(s.len());
    for c in escape_html(s).chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            out.push_str(&format!("&#{};", u32::from(c)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tutti_domain::job::JobSpec;

    fn job(layout: Option<&str>) -> JobConfig {
        let mut spec: JobSpec = serde_json::from_value(serde_json::json!({
            "name": "People", "question": "Is ${name} a person?",
            "answers": ["Yes", "No & maybe"], "short_instructions": "<b>Read</b> carefully.",
            "policy": {"k": 2, "n": 3}
        }))
        .unwrap();
        spec.layout = layout.map(str::to_owned);
        JobConfig::parse(spec).unwrap()
    }

    fn row(name: &str) -> Map<String, Value> {
        serde_json::json!({"_id": 7, "name": name})
            .as_object()
            .unwrap()
            .clone()
    }

    #[test]
    fn row_values_are_escaped_and_instructions_kept_as_written() {
        let q = html_question(
            &job(None),
            &row("<script>alert(1)</script>"),
            "https://x/mturk/externalSubmit",
        );
        assert!(q.starts_with("<HTMLQuestion xmlns="), "{q}");
        assert!(!q.contains("<script>alert(1)"), "{q}");
        assert!(q.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{q}");
        assert!(q.contains("<b>Read</b> carefully."), "{q}");
        assert!(q.contains("value=\"No &amp; maybe\""), "{q}");
        assert!(q.contains("name=\"answer\""), "{q}");
    }

    #[test]
    fn a_cdata_end_in_the_layout_does_not_end_the_section_early() {
        // Row values are escaped, so only the requester's own HTML can hold
        // a literal `]]>`.
        let q = html_question(
            &job(Some("<p>${name}</p><!-- ]]> -->")),
            &row("a]]>b"),
            "https://x",
        );
        assert!(q.contains("a]]&gt;b"), "{q}");
        // The only real ends are the split one and the last.
        assert_eq!(q.matches("]]>").count(), 2, "{q}");
        assert!(q.contains("]]]]><![CDATA[>"), "{q}");
    }

    #[test]
    fn answers_round_trip_through_the_answer_document() {
        let xml = answers_xml(&[("other", "x"), ("answer", "No & maybe <é>")]);
        assert_eq!(
            answer_field(&xml, "answer").as_deref(),
            Some("No & maybe <é>")
        );
        assert_eq!(answer_field(&xml, "other").as_deref(), Some("x"));
        assert_eq!(answer_field(&xml, "missing"), None);
        assert_eq!(answer_field("not xml at all", "answer"), None);
    }

    #[test]
    fn a_document_as_mechanical_turk_writes_it_is_read() {
        let xml = "<?xml version=\"1.0\" encoding=\"ASCII\"?>\n<QuestionFormAnswers xmlns=\"http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2005-10-01/QuestionFormAnswers.xsd\">\n<Answer>\n<QuestionIdentifier>answer</QuestionIdentifier>\n<FreeText>Yes</FreeText>\n</Answer>\n</QuestionFormAnswers>";
        assert_eq!(answer_field(xml, "answer").as_deref(), Some("Yes"));
    }
}
