//! The OpenAPI document, generated from the handlers' annotations, served
//! at `/api/openapi.json`, and the interactive page at `/docs` (Swagger UI,
//! its assets embedded in the binary).

use crate::AppState;
use crate::api;
use axum::Router;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

/// Tutti's API.
#[derive(OpenApi)]
#[openapi(
    info(title = "Tutti API", description = "Human-in-the-loop data work: jobs, items, the worker loop, results, label quality, workflow runs."),
    paths(
        api::users::create_user, api::users::list_users, api::users::me, api::users::update_user,
        api::users::create_token, api::users::list_tokens, api::users::revoke_token,
        api::workspaces::create_workspace, api::workspaces::list_workspaces, api::workspaces::get_workspace,
        api::workspaces::list_members, api::workspaces::set_member, api::workspaces::remove_member,
        api::workspaces::update_workspace, api::workspaces::create_invitation, api::workspaces::list_invitations,
        api::jobs::create_job, api::jobs::list_jobs, api::jobs::get_job, api::jobs::update_job, api::jobs::import_items,
        api::results::results, api::results::export, api::results::summary,
        api::quality::aggregate, api::quality::aggregation, api::quality::workers,
        api::tasks::create_task, api::tasks::task_list, api::tasks::check_status, api::tasks::sample_result,
        api::runs::create_run, api::runs::list_runs, api::runs::get_run, api::runs::table_rows,
        api::runs::output, api::runs::cancel_run, api::runs::retry_node,
        api::runs::start_simulation, api::runs::get_simulation, api::runs::model_results,
        api::work::next, api::work::get_assignment, api::work::submit, api::work::skip, api::work::release, api::work::undo, api::work::my_jobs,
    ),
    modifiers(&BearerAuth, &CommonErrors),
    tags(
        (name = "tasks", description = "Bulk keyword and rule labeling (the Audience task API)"),
        (name = "users", description = "Accounts and API tokens"),
        (name = "workspaces", description = "Team boundaries and their members"),
        (name = "jobs", description = "Human labeling jobs and their items"),
        (name = "work", description = "The worker loop: next, submit, skip, release, undo"),
        (name = "results", description = "Labels and answers"),
        (name = "quality", description = "Re-aggregation and worker quality"),
        (name = "runs", description = "Workflow runs: start, follow, sample, download, cancel, retry"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The answers every route of a kind can give, documented on each: 401
/// and 403 on a route that needs a token, 400 where a body or query may be
/// unreadable, 422 where a body's field may be refused, and 404 where the
/// path names something (a job, a run, a task) that may not exist or not
/// be the caller's. A route's own
/// description of one of these is kept.
struct CommonErrors;

impl Modify for CommonErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::path::ParameterIn;
        use utoipa::openapi::{Ref, ResponseBuilder, content::ContentBuilder};
        let error = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build()
        };
        for (path, item) in openapi.paths.paths.iter_mut() {
            let tasks = path.starts_with("/api/tasks");
            let ops = [
                item.get.as_mut(),
                item.post.as_mut(),
                item.put.as_mut(),
                item.patch.as_mut(),
                item.delete.as_mut(),
            ];
            for op in ops.into_iter().flatten() {
                let params = op.parameters.as_deref().unwrap_or_default();
                let in_path = path.contains('{');
                let in_query = params
                    .iter()
                    .any(|p| matches!(p, utoipa::openapi::RefOr::T(p) if matches!(p.parameter_in, ParameterIn::Query)));
                let body = op.request_body.is_some();
                let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
                let responses = &mut op.responses.responses;
                // The task API answers in its own (Audience) error shape.
                let mut add = |code: &str, description: &str| {
                    responses.entry(code.to_owned()).or_insert_with(|| {
                        if tasks {
                            ResponseBuilder::new()
                                .description(description)
                                .build()
                                .into()
                        } else {
                            error(description).into()
                        }
                    });
                };
                if secured {
                    add(
                        "401",
                        "no token, or one unknown, revoked or of a disabled user",
                    );
                    add("403", "the caller's role does not allow this here");
                }
                if body || in_query {
                    add(
                        "400",
                        "the body or the query cannot be read (the message says where)",
                    );
                }
                if body {
                    add(
                        "422",
                        "a field of the body is not acceptable (the field is named)",
                    );
                }
                if in_path || tasks {
                    add(
                        "404",
                        "not found, not the caller's, or (bulk labeling) not configured here",
                    );
                }
            }
        }
    }
}

/// `/api/openapi.json` and `/docs`.
pub fn routes() -> Router<AppState> {
    Router::new().merge(SwaggerUi::new("/docs").url("/api/openapi.json", ApiDoc::openapi()))
}
