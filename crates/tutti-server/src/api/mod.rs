//! The JSON API under `/api/v1`. Every call but the health check needs a
//! bearer token; every list pages with `?limit=&cursor=` and answers
//! `{ "items": [...], "next_cursor": ... }`.

pub mod jobs;
pub mod quality;
pub mod results;
pub mod runs;
pub mod tasks;
pub mod users;
pub mod work;
pub mod workspaces;

use crate::AppState;
use crate::error::ApiError;
use axum::Router;
use axum::routing::{delete, get, post, put};
use serde::{Deserialize, Serialize};

/// All API routes. `max_upload` bounds the one JSON body that carries
/// files (a new run's).
pub fn routes(max_upload: usize) -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/users",
            post(users::create_user).get(users::list_users),
        )
        .route("/api/v1/users/me", get(users::me))
        .route(
            "/api/v1/users/{id}",
            axum::routing::patch(users::update_user),
        )
        .route(
            "/api/v1/tokens",
            post(users::create_token).get(users::list_tokens),
        )
        .route("/api/v1/tokens/{id}", delete(users::revoke_token))
        .route(
            "/api/v1/workspaces",
            post(workspaces::create_workspace).get(workspaces::list_workspaces),
        )
        .route(
            "/api/v1/workspaces/{ws}",
            get(workspaces::get_workspace).patch(workspaces::update_workspace),
        )
        .route(
            "/api/v1/workspaces/{ws}/invitations",
            post(workspaces::create_invitation).get(workspaces::list_invitations),
        )
        .route(
            "/api/v1/workspaces/{ws}/members",
            get(workspaces::list_members),
        )
        .route(
            "/api/v1/workspaces/{ws}/members/{user}",
            put(workspaces::set_member).delete(workspaces::remove_member),
        )
        .route(
            "/api/v1/workspaces/{ws}/jobs",
            post(jobs::create_job).get(jobs::list_jobs),
        )
        .route(
            "/api/v1/jobs/{id}",
            get(jobs::get_job).patch(jobs::update_job),
        )
        .route("/api/v1/jobs/{id}/items", post(jobs::import_items))
        .route("/api/v1/jobs/{id}/results", get(results::results))
        .route("/api/v1/jobs/{id}/export", get(results::export))
        .route("/api/v1/jobs/{id}/summary", get(results::summary))
        .route(
            "/api/v1/jobs/{id}/aggregate",
            post(quality::aggregate).get(quality::aggregation),
        )
        .route("/api/v1/jobs/{id}/workers", get(quality::workers))
        .route(
            "/api/v1/workspaces/{ws}/runs",
            post(runs::create_run)
                .layer(axum::extract::DefaultBodyLimit::max(max_upload))
                .get(runs::list_runs),
        )
        .route(
            "/api/tasks/",
            post(tasks::create_task).get(tasks::task_list),
        )
        .route("/api/tasks", post(tasks::create_task).get(tasks::task_list))
        .route("/api/tasks/{task_id}", get(tasks::check_status))
        .route("/api/tasks/{task_id}/sample/", get(tasks::sample_result))
        .route("/api/tasks/{task_id}/sample", get(tasks::sample_result))
        .route("/api/v1/runs/{id}", get(runs::get_run))
        .route("/api/v1/runs/{id}/tables/{name}", get(runs::table_rows))
        .route("/api/v1/runs/{id}/outputs/{file}", get(runs::output))
        .route("/api/v1/runs/{id}/cancel", post(runs::cancel_run))
        .route(
            "/api/v1/runs/{id}/simulation",
            post(runs::start_simulation).get(runs::get_simulation),
        )
        .route(
            "/api/v1/runs/{id}/nodes/{index}/retry",
            post(runs::retry_node),
        )
        .route(
            "/api/v1/runs/{id}/nodes/{index}/batches/{batch}/results",
            post(runs::model_results),
        )
        .route("/api/v1/jobs/{id}/next", post(work::next))
        .route("/api/v1/assignments/{id}", get(work::get_assignment))
        .route("/api/v1/assignments/{id}/submit", post(work::submit))
        .route("/api/v1/assignments/{id}/skip", post(work::skip))
        .route("/api/v1/assignments/{id}/release", post(work::release))
        .route("/api/v1/assignments/{id}/undo", post(work::undo))
        .route("/api/v1/me/jobs", get(work::my_jobs))
}

/// Default page size.
pub const DEFAULT_LIMIT: u32 = 100;
/// Largest page size.
pub const MAX_LIMIT: u32 = 1000;

/// Paging parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// Items per page (1-1000, default 100).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl PageQuery {
    /// The checked limit and cursor.
    pub fn parse(&self) -> Result<(u32, Option<i64>), ApiError> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::new(
                axum::http::StatusCode::BAD_REQUEST,
                "bad_query",
                format!("limit must be between 1 and {MAX_LIMIT}"),
            )
            .with_field("limit"));
        }
        let cursor = match &self.cursor {
            None => None,
            Some(c) if c.is_empty() => None,
            Some(c) => Some(c.parse::<i64>().ok().filter(|v| *v >= 0).ok_or_else(|| {
                ApiError::new(
                    axum::http::StatusCode::BAD_REQUEST,
                    "bad_query",
                    "cursor must be the next_cursor of a previous page",
                )
                .with_field("cursor")
            })?),
        };
        Ok((limit, cursor))
    }
}

/// One page of a list.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// A page whose cursor is `key` of its last item when it is full.
    pub fn of(items: Vec<T>, limit: u32, key: impl Fn(&T) -> i64) -> Self {
        let next_cursor = if items.len() as u32 == limit {
            items.last().map(|i| key(i).to_string())
        } else {
            None
        };
        Self { items, next_cursor }
    }
}
