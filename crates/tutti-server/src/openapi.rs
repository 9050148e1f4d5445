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
    modifiers(&BearerAuth),
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

/// `/api/openapi.json` and `/docs`.
pub fn routes() -> Router<AppState> {
    Router::new().merge(SwaggerUi::new("/docs").url("/api/openapi.json", ApiDoc::openapi()))
}
