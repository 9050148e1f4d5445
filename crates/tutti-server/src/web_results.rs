//! The requester's pages: their workspaces' jobs with progress, and a job's
//! results browser — a paged table with filters (state, label, confidence
//! range, worker, text search), the label distribution and confidence
//! histogram drawn as SVG on the server, and downloads of exactly what the
//! filter keeps. Rendered from the same store queries as the JSON API
//! (`/api/v1/jobs/{id}/results`, `/summary`, `/export`), with every row
//! value HTML-escaped.

use crate::AppState;
use crate::api::results::{ResultQuery, export_response};
use crate::error::ApiError;
use crate::web::{Visitor, error_page, escape_html, with_security_headers};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use std::fmt::Write as _;
use tutti_domain::ids::JobId;
use tutti_domain::role::Role;
use tutti_domain::template::value_text;
use tutti_store::{ResultSummary, TaskResult};

/// A time as people read it: `2026-11-23 15:40 UTC`.
pub(crate) fn date_text(t: tutti_domain::time::Timestamp) -> String {
    let iso = t.to_string();
    format!("{} {} UTC", &iso[..10], &iso[11..16])
}

/// Results per page of the browser.
const PAGE: u32 = 50;

/// The jobs of every workspace the visitor manages, with progress.
pub(crate) async fn jobs_section(state: &AppState, v: &Visitor) -> Result<String, ApiError> {
    let mut body = String::new();
    let workspaces = state
        .store
        .list_workspaces(Some(v.caller.0.id), None, 100)
        .await?;
    for ws in workspaces {
        let role = state.store.role_in(ws.id, v.caller.0.id).await?;
        if !role.is_some_and(|r| r.manages_jobs()) {
            continue;
        }
        let jobs = state.store.list_jobs(ws.id, None, 200).await?;
        let settings = if role == Some(Role::Admin) || v.caller.is_admin() {
            format!(
                " <a href=\"/workspaces/{}/settings\">Members and settings</a>",
                ws.id.0
            )
        } else {
            String::new()
        };
        let _ = write!(
            body,
            "<h2>{}</h2><p class=\"actions\"><a class=\"button\" href=\"/workspaces/{id}/jobs/new\">New job</a> \
             <a class=\"button\" href=\"/workspaces/{id}/runs/new\">Run a workflow</a> \
             <a href=\"/workspaces/{id}/runs\">Workflow runs</a>{settings}</p>",
            escape_html(&ws.name),
            id = ws.id.0
        );
        if jobs.is_empty() {
            body.push_str(
                "<p class=\"card\">No jobs yet. Make one with <b>New job</b> and upload a CSV of the rows \
                 people should label, or run a workflow that makes jobs.</p>",
            );
            continue;
        }
        body.push_str(
            "<table><thead><tr><th>Job</th><th>Tasks</th><th>Done</th><th>Progress</th><th></th></tr></thead><tbody>",
        );
        for j in jobs {
            // The state counts read the results index alone; the job's full
            // progress would also count every answer.
            let counts = state
                .store
                .results_summary(j.id, &tutti_store::ResultFilter::default())
                .await?;
            let n = |s: &str| counts.states.get(s).copied().unwrap_or(0);
            let done = n("labeled") + n("undecided");
            let tasks = done + n("open");
            let pct = if tasks > 0 { done * 100 / tasks } else { 0 };
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td><progress max=\"100\" value=\"{pct}\">{pct}%</progress> {pct}%</td>\
                 <td><a class=\"button\" href=\"/jobs/{}\">Results</a></td></tr>",
                escape_html(&j.config.name),
                tasks,
                done,
                j.id.0
            );
        }
        body.push_str("</tbody></table>");
    }
    Ok(body)
}

/// The query string of `q`'s filter (and `extra`), for links.
fn filter_query(q: &ResultQuery, extra: &[(&str, String)]) -> String {
    let mut pairs: Vec<(&str, String)> = Vec::new();
    for (k, v) in [
        ("state", &q.state),
        ("label", &q.label),
        ("min_confidence", &q.min_confidence),
        ("max_confidence", &q.max_confidence),
        ("worker", &q.worker),
        ("q", &q.q),
    ] {
        if let Some(v) = v.as_deref().filter(|v| !v.trim().is_empty()) {
            pairs.push((k, v.to_owned()));
        }
    }
    pairs.extend(extra.iter().cloned());
    serde_urlencoded::to_string(&pairs).unwrap_or_default()
}

/// A horizontal bar chart: one bar per (name, count).
fn bars_svg(title: &str, bars: &[(String, i64)]) -> String {
    let max = bars.iter().map(|b| b.1).max().unwrap_or(0).max(1);
    let row = 22;
    let height = 24 + row * bars.len().max(1);
    let mut svg = format!(
        "<figure class=\"chart\"><figcaption>{}</figcaption>\
         <svg role=\"img\" aria-label=\"{}\" viewBox=\"0 0 360 {height}\" width=\"360\" height=\"{height}\">",
        escape_html(title),
        escape_html(title)
    );
    if bars.is_empty() {
        svg.push_str("<text x=\"0\" y=\"16\" class=\"muted\">nothing yet</text>");
    }
    for (i, (name, n)) in bars.iter().enumerate() {
        let y = 8 + i * row;
        let w = (*n as f64 / max as f64 * 200.0).round() as i64;
        let _ = write!(
            svg,
            "<text x=\"0\" y=\"{}\" font-size=\"12\">{}</text>\
             <rect x=\"110\" y=\"{y}\" width=\"{w}\" height=\"16\" fill=\"#3b6fb6\"><title>{}: {n}</title></rect>\
             <text x=\"{}\" y=\"{}\" font-size=\"12\">{n}</text>",
            y + 12,
            escape_html(&name.chars().take(16).collect::<String>()),
            escape_html(name),
            116 + w,
            y + 12
        );
    }
    svg.push_str("</svg></figure>");
    svg
}

fn charts(summary: &ResultSummary) -> String {
    let mut labels: Vec<(String, i64)> = summary
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    for state in ["undecided", "open"] {
        if let Some(n) = summary.states.get(state) {
            labels.push((format!("({state})"), *n));
        }
    }
    let confidence: Vec<(String, i64)> = summary
        .confidence
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let lo = i as f64 / 10.0;
            (format!("{lo:.1}–{:.1}", lo + 0.1), *n)
        })
        .collect();
    format!(
        "<div class=\"charts\">{}{}</div>",
        bars_svg("Labels", &labels),
        bars_svg("Confidence", &confidence)
    )
}

fn select(name: &str, label: &str, options: &[(&str, &str)], current: Option<&str>) -> String {
    let mut s = format!("<label>{label} <select name=\"{name}\">");
    for (value, text) in options {
        let selected = if current == Some(*value) {
            " selected"
        } else {
            ""
        };
        let _ = write!(
            s,
            "<option value=\"{}\"{selected}>{}</option>",
            escape_html(value),
            escape_html(text)
        );
    }
    s.push_str("</select></label>");
    s
}

fn input(name: &str, label: &str, kind: &str, value: &Option<String>, extra: &str) -> String {
    format!(
        "<label>{label} <input name=\"{name}\" type=\"{kind}\" value=\"{}\" {extra}></label>",
        escape_html(value.as_deref().unwrap_or(""))
    )
}

fn results_table(rows: &[TaskResult]) -> String {
    let mut columns: Vec<&str> = Vec::new();
    for r in rows {
        for k in r.data.keys() {
            if k != "_id" && !columns.contains(&k.as_str()) && columns.len() < 8 {
                columns.push(k);
            }
        }
    }
    let mut t = String::from(
        "<table class=\"results\"><thead><tr><th>_id</th><th>Label</th><th>Confidence</th><th>Votes</th>",
    );
    for c in &columns {
        let _ = write!(t, "<th>{}</th>", escape_html(c));
    }
    t.push_str("</tr></thead><tbody>");
    for r in rows {
        let label = match r.state.as_str() {
            "labeled" => r.label.clone().unwrap_or_default(),
            other => format!("({other})"),
        };
        let votes = r
            .votes
            .0
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = write!(
            t,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
            r.seq,
            escape_html(&label),
            r.confidence.map(|c| format!("{c:.2}")).unwrap_or_default(),
            escape_html(&votes)
        );
        for c in &columns {
            let v = r.data.get(*c).map(value_text).unwrap_or_default();
            let _ = write!(t, "<td>{}</td>", escape_html(&v));
        }
        t.push_str("</tr>");
    }
    t.push_str("</tbody></table>");
    t
}

/// `GET /jobs/{id}`: the results browser.
pub(crate) async fn results_page(
    State(state): State<AppState>,
    v: Visitor,
    Path(job): Path<String>,
    Query(q): Query<ResultQuery>,
) -> Response {
    match render(&state, &v, &job, &q).await {
        Ok(r) => r,
        Err(e) => with_security_headers(error_page(e)),
    }
}

async fn render(
    state: &AppState,
    v: &Visitor,
    job: &str,
    q: &ResultQuery,
) -> Result<Response, ApiError> {
    let id = job.parse::<i64>().map_err(|_| ApiError::not_found("job"))?;
    let (job, _) = v.caller.job(state, JobId(id), true).await?;
    if q.format.is_some() || q.what.is_some() || q.limit.is_some() {
        return Err(ApiError::bad_request(
            "this page takes filters and a cursor; downloads are under /jobs/{id}/export",
        ));
    }
    let filter = q.filter(state).await?;
    let after = match q.cursor.as_deref().filter(|c| !c.is_empty()) {
        None => 0,
        Some(c) => c.parse::<i64>().map_err(|_| {
            ApiError::bad_request("cursor must come from a Next link").with_field("cursor")
        })?,
    };
    let everything = tutti_store::ResultFilter::default();
    let (rows, summary, all) = if filter == everything {
        // Unfiltered, the summary is the job's: count once.
        let (rows, all) = tokio::try_join!(
            state.store.results_filtered(job.id, &filter, after, PAGE),
            state.store.results_summary(job.id, &everything),
        )?;
        (rows, all.clone(), all)
    } else {
        tokio::try_join!(
            state.store.results_filtered(job.id, &filter, after, PAGE),
            state.store.results_summary(job.id, &filter),
            state.store.results_summary(job.id, &everything),
        )?
    };
    let c = &job.config;
    let mut body = format!(
        "<p><a href=\"/\">← Jobs</a></p><h1>{}</h1>\
         <p class=\"muted\">{} of {} tasks match · {} labeled · {} undecided · {} open · \
         <a href=\"/jobs/{id}/workers\">workers and activity</a> · <a href=\"/jobs/{id}/preview\">preview the task page</a></p>{}",
        escape_html(&c.name),
        summary.matching,
        all.matching,
        all.states.get("labeled").copied().unwrap_or(0),
        all.states.get("undecided").copied().unwrap_or(0),
        all.states.get("open").copied().unwrap_or(0),
        crate::web_jobs::import_form(job.id, v.csrf()),
        id = job.id.0,
    );
    // Filters.
    let mut label_options: Vec<(&str, &str)> = vec![("", "any")];
    label_options.extend(c.answers.iter().map(|a| (a.as_str(), a.as_str())));
    body.push_str("<form method=\"get\" class=\"filters card\">");
    body.push_str(&select(
        "state",
        "State",
        &[
            ("", "any"),
            ("labeled", "labeled"),
            ("undecided", "undecided"),
            ("open", "open"),
            ("closed", "closed"),
        ],
        q.state.as_deref(),
    ));
    body.push_str(&select(
        "label",
        "Label",
        &label_options,
        q.label.as_deref(),
    ));
    body.push_str(&input(
        "min_confidence",
        "Confidence from",
        "number",
        &q.min_confidence,
        "min=\"0\" max=\"1\" step=\"0.05\"",
    ));
    body.push_str(&input(
        "max_confidence",
        "to",
        "number",
        &q.max_confidence,
        "min=\"0\" max=\"1\" step=\"0.05\"",
    ));
    body.push_str(&input(
        "worker",
        "Worker",
        "text",
        &q.worker,
        "placeholder=\"user name\"",
    ));
    body.push_str(&input(
        "q",
        "Search",
        "search",
        &q.q,
        "placeholder=\"words or &quot;a phrase&quot;\" \
         title=\"Rows whose values hold every word, in any case; \
         a phrase in double quotes counts as one word\"",
    ));
    let _ = write!(
        body,
        "<button type=\"submit\">Filter</button> <a href=\"/jobs/{}\">Clear</a></form>",
        job.id.0
    );
    // Downloads of what the filter keeps.
    let _ = write!(
        body,
        "<p class=\"downloads\">Download: \
         <a id=\"export-csv\" href=\"/jobs/{id}/export?{csv}\">labels CSV</a> · \
         <a href=\"/jobs/{id}/export?{jsonl}\">labels JSON Lines</a> · \
         <a href=\"/jobs/{id}/export?{answers}\">answers CSV</a></p>",
        id = job.id.0,
        csv = escape_html(&filter_query(q, &[])),
        jsonl = escape_html(&filter_query(q, &[("format", "jsonl".into())])),
        answers = escape_html(&filter_query(q, &[("what", "answers".into())])),
    );
    body.push_str(&charts(&summary));
    if rows.is_empty() {
        body.push_str(if summary.matching == 0 && all.matching > 0 {
            "<p class=\"card\">No task matches this filter. <a href=\"?\">Clear it</a> to see every result.</p>"
        } else if all.matching == 0 {
            "<p class=\"card\">This job has no tasks yet: add rows with the form above (a CSV with a header row), or <code>POST /api/v1/jobs/{id}/items</code>.</p>"
        } else {
            "<p class=\"card\">No more results.</p>"
        });
    } else {
        body.push_str(&results_table(&rows));
        if rows.len() == PAGE as usize
            && let Some(last) = rows.last()
        {
            let _ = write!(
                body,
                "<p><a class=\"button\" rel=\"next\" href=\"/jobs/{}?{}\">Next page →</a></p>",
                job.id.0,
                escape_html(&filter_query(q, &[("cursor", last.seq.to_string())]))
            );
        }
    }
    Ok(with_security_headers(
        crate::web::page_for(v, &format!("Results · {}", c.name), &body).into_response(),
    ))
}

/// `GET /jobs/{id}/export`: the API's export, signed in by cookie.
pub(crate) async fn export(
    State(state): State<AppState>,
    v: Visitor,
    Path(job): Path<String>,
    Query(q): Query<ResultQuery>,
) -> Response {
    let Ok(id) = job.parse::<i64>() else {
        return with_security_headers(error_page(ApiError::not_found("job")));
    };
    match export_response(&state, &v.caller, JobId(id), &q).await {
        Ok(r) => r,
        Err(e) => with_security_headers(error_page(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_labels_are_escaped_and_bars_scale_to_the_largest() {
        let svg = bars_svg("Labels", &[("<b>".to_owned(), 5), ("No".to_owned(), 10)]);
        assert!(svg.contains("&lt;b&gt;"), "{svg}");
        assert!(!svg.contains("<b>"), "{svg}");
        assert!(svg.contains("width=\"100\""), "half the largest: {svg}");
        assert!(svg.contains("width=\"200\""), "{svg}");
    }

    #[test]
    fn links_keep_the_filter_and_drop_empty_fields() {
        let q = ResultQuery {
            label: Some("Yes".into()),
            q: Some("a b&c".into()),
            worker: Some(String::new()),
            ..ResultQuery::default()
        };
        assert_eq!(
            filter_query(&q, &[("cursor", "50".into())]),
            "label=Yes&q=a+b%26c&cursor=50"
        );
    }
}

/// A column chart over hours: one column per hour from the first to the
/// last with activity (at most the last 14 days), with `cumulative` also
/// drawn as a line.
fn hours_svg(title: &str, hours: &[(i64, i64)], cumulative: bool) -> String {
    const W: f64 = 560.0;
    const H: f64 = 160.0;
    let mut svg = format!(
        "<figure class=\"chart\"><figcaption>{}</figcaption>\
         <svg role=\"img\" aria-label=\"{}\" viewBox=\"0 0 {W} {}\" width=\"{W}\" height=\"{}\">",
        escape_html(title),
        escape_html(title),
        H + 24.0,
        H + 24.0
    );
    let (Some(first), Some(last)) = (hours.first(), hours.last()) else {
        svg.push_str("<text x=\"0\" y=\"16\" font-size=\"12\">nothing yet</text></svg></figure>");
        return svg;
    };
    let start = first.0.max(last.0 - 14 * 24 * 3_600_000);
    let span = ((last.0 - start) / 3_600_000 + 1) as usize;
    let mut per = vec![0i64; span];
    let mut before = 0i64;
    for (h, n) in hours {
        if *h < start {
            before += n;
        } else {
            per[((h - start) / 3_600_000) as usize] += n;
        }
    }
    let max = per.iter().copied().max().unwrap_or(0).max(1) as f64;
    let bw = W / span as f64;
    for (i, n) in per.iter().enumerate() {
        if *n == 0 {
            continue;
        }
        let h = *n as f64 / max * H;
        let when = date_text(tutti_domain::time::Timestamp(start + i as i64 * 3_600_000));
        let _ = write!(
            svg,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"#3b6fb6\"><title>{when}: {n}</title></rect>",
            i as f64 * bw,
            H - h,
            (bw - 1.0).max(1.0)
        );
    }
    if cumulative {
        let total: i64 = before + per.iter().sum::<i64>();
        let mut acc = before;
        let mut points = String::new();
        for (i, n) in per.iter().enumerate() {
            acc += n;
            let y = H - acc as f64 / total.max(1) as f64 * H;
            let _ = write!(points, "{:.1},{y:.1} ", (i as f64 + 0.5) * bw);
        }
        let _ = write!(
            svg,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"#c2410c\" stroke-width=\"2\"><title>running total, {total} at the end</title></polyline>",
            points.trim_end()
        );
    }
    let _ = write!(
        svg,
        "<text x=\"0\" y=\"{}\" font-size=\"11\">{}</text><text x=\"{W}\" y=\"{}\" font-size=\"11\" text-anchor=\"end\">{}</text></svg></figure>",
        H + 16.0,
        date_text(tutti_domain::time::Timestamp(start)),
        H + 16.0,
        date_text(tutti_domain::time::Timestamp(last.0))
    );
    svg
}

fn share(x: Option<f64>) -> String {
    x.map(|v| format!("{:.1}%", v * 100.0))
        .unwrap_or_else(|| "–".into())
}

/// `GET /jobs/{id}/workers`: the worker-quality table and the job's
/// activity over time.
pub(crate) async fn workers_page(
    State(state): State<AppState>,
    v: Visitor,
    Path(job): Path<String>,
) -> Response {
    let shown = async {
        let id = job.parse::<i64>().map_err(|_| ApiError::not_found("job"))?;
        let (job, _) = v.caller.job(&state, JobId(id), true).await?;
        // Both read the figures every write keeps: a row per worker and
        // per hour, however many answers the job has.
        let (workers, activity) = tokio::try_join!(
            state.store.worker_quality(job.id),
            state.store.job_activity(job.id)
        )?;
        Ok::<_, ApiError>((job, workers, activity))
    }
    .await;
    let (job, workers, activity) = match shown {
        Ok(s) => s,
        Err(e) => return with_security_headers(error_page(e)),
    };
    let answers: Vec<(i64, i64)> = activity.iter().map(|a| (a.hour.0, a.answers)).collect();
    let decided: Vec<(i64, i64)> = activity.iter().map(|a| (a.hour.0, a.decided)).collect();
    let mut body = format!(
        "<p><a href=\"/jobs/{id}\">← Results</a></p><h1>{} · workers and activity</h1>\
         <div class=\"charts\">{}{}</div><h2>Workers</h2>\
         <p class=\"downloads\"><a href=\"/jobs/{id}/workers.csv\">Download as CSV</a></p>",
        escape_html(&job.config.name),
        hours_svg("Answers per hour", &answers, false),
        hours_svg(
            "Tasks decided per hour (line: running total)",
            &decided,
            true
        ),
        id = job.id.0
    );
    if workers.is_empty() {
        body.push_str("<p class=\"card\">Nobody has answered yet. Workers see this job on their jobs page once they are members of its workspace.</p>");
    } else {
        body.push_str(
            "<table class=\"results\"><thead><tr><th>Worker</th><th>Answers</th><th>Skipped</th><th>Abandoned</th>\
             <th>Agreement with the label</th><th>Gold accuracy</th><th>Skill</th><th>Seconds per answer</th><th>Stopped</th></tr></thead><tbody>",
        );
        for w in &workers {
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} <span class=\"muted\">of {}</span></td>\
                 <td>{} <span class=\"muted\">({}/{})</span></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape_html(&w.worker_name),
                w.answers,
                w.skipped,
                w.abandoned,
                share(w.agreement),
                w.agreement_answers,
                share(w.gold_accuracy),
                w.gold_correct,
                w.gold_seen,
                w.skill
                    .map(|s| format!(
                        "{s:.3} <span class=\"muted\">{}</span>",
                        escape_html(w.skill_method.as_deref().unwrap_or(""))
                    ))
                    .unwrap_or_else(|| "–".into()),
                w.mean_seconds
                    .map(|s| format!("{s:.1}"))
                    .unwrap_or_else(|| "–".into()),
                w.stopped_at.map(date_text).unwrap_or_default()
            );
        }
        body.push_str("</tbody></table>");
    }
    with_security_headers(
        crate::web::page_for(&v, &format!("Workers · {}", job.config.name), &body).into_response(),
    )
}

/// `GET /jobs/{id}/workers.csv`: the worker-quality table as CSV.
pub(crate) async fn workers_csv(
    State(state): State<AppState>,
    v: Visitor,
    Path(job): Path<String>,
) -> Response {
    let Ok(id) = job.parse::<i64>() else {
        return error_page(ApiError::not_found("job"));
    };
    match crate::api::quality::workers(
        State(state.clone()),
        v.caller.clone(),
        crate::error::ApiPath(id),
        crate::error::ApiQuery(crate::api::quality::WorkersQuery {
            format: Some("csv".into()),
        }),
    )
    .await
    {
        Ok(r) => r,
        Err(e) => error_page(e),
    }
}

#[cfg(test)]
mod chart_tests {
    use super::*;

    #[test]
    fn an_hour_chart_has_a_column_per_busy_hour_and_a_total_line() {
        let h = 3_600_000;
        let svg = hours_svg("t", &[(10 * h, 4), (12 * h, 2)], true);
        assert_eq!(svg.matches("<rect").count(), 2);
        assert!(svg.contains("running total, 6 at the end"));
        assert!(hours_svg("t", &[], false).contains("nothing yet"));
    }
}
