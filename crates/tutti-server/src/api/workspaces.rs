//! Workspaces and their members. Admins and requesters of the installation
//! create workspaces (and become their admins); a workspace's admins and
//! requesters manage its members, but only its admins may make admins.

use super::{Page, PageQuery};
use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use tutti_domain::FieldError;
use tutti_domain::ids::{UserId, WorkspaceId};
use tutti_domain::role::Role;
use tutti_store::{Member, Workspace};

/// A new workspace.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWorkspace {
    /// Its name.
    pub name: String,
}

/// A workspace with the caller's role in it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WorkspaceView {
    /// The workspace.
    #[serde(flatten)]
    pub workspace: Workspace,
    /// The caller's role.
    pub my_role: Role,
}

/// Creates a workspace; the caller becomes its admin.
#[utoipa::path(post, path = "/api/v1/workspaces", tag = "workspaces", request_body = CreateWorkspace,
    responses((status = 201, body = WorkspaceView), (status = 403, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_workspace(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateWorkspace>,
) -> Result<(StatusCode, Json<WorkspaceView>), ApiError> {
    if !matches!(caller.0.role, Role::Admin | Role::Requester) {
        return Err(ApiError::forbidden(
            "only admins and requesters create workspaces; ask an admin to change your account role",
        ));
    }
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(FieldError::new("name", "must be 1-200 characters").into());
    }
    let ws = state
        .store
        .create_workspace(name, caller.0.id, tutti_store::now())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(WorkspaceView {
            workspace: ws,
            my_role: Role::Admin,
        }),
    ))
}

/// Lists the caller's workspaces (an admin's: all of them).
#[utoipa::path(get, path = "/api/v1/workspaces", tag = "workspaces", params(PageQuery),
    responses((status = 200, body = Page<WorkspaceView>)), security(("bearer" = [])))]
pub async fn list_workspaces(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> Result<Json<Page<WorkspaceView>>, ApiError> {
    let (limit, after) = page.parse()?;
    let member = (!caller.is_admin()).then_some(caller.0.id);
    let list = state.store.list_workspaces(member, after, limit).await?;
    let mut items = Vec::with_capacity(list.len());
    for ws in list {
        let my_role = caller.role_in(&state, ws.id).await?;
        items.push(WorkspaceView {
            workspace: ws,
            my_role,
        });
    }
    Ok(Json(Page::of(items, limit, |w| w.workspace.id.0)))
}

/// A workspace.
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}", tag = "workspaces",
    params(("ws" = i64, Path, description = "workspace id")),
    responses((status = 200, body = WorkspaceView), (status = 404, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_workspace(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(ws): ApiPath<i64>,
) -> Result<Json<WorkspaceView>, ApiError> {
    let ws = WorkspaceId(ws);
    let my_role = caller.role_in(&state, ws).await?;
    let workspace = state
        .store
        .get_workspace(ws)
        .await?
        .ok_or_else(|| ApiError::not_found("workspace"))?;
    Ok(Json(WorkspaceView { workspace, my_role }))
}

/// A workspace's members (any member may see who else is in it).
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}/members", tag = "workspaces",
    params(("ws" = i64, Path, description = "workspace id")),
    responses((status = 200, body = Page<Member>), (status = 404, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_members(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(ws): ApiPath<i64>,
) -> Result<Json<Page<Member>>, ApiError> {
    let ws = WorkspaceId(ws);
    caller.role_in(&state, ws).await?;
    Ok(Json(Page {
        items: state.store.list_members(ws).await?,
        next_cursor: None,
    }))
}

/// A member's role.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetMember {
    /// Their role in the workspace.
    pub role: Role,
}

async fn may_manage_members(
    state: &AppState,
    caller: &Caller,
    ws: WorkspaceId,
    granting: Option<Role>,
    target: UserId,
) -> Result<(), ApiError> {
    let mine = caller.role_in(state, ws).await?;
    if !mine.manages_jobs() {
        return Err(ApiError::forbidden(
            "only a workspace's admins and requesters manage its members",
        ));
    }
    if mine != Role::Admin {
        let theirs = state.store.role_in(ws, target).await?;
        if granting == Some(Role::Admin) || theirs == Some(Role::Admin) {
            return Err(ApiError::forbidden(
                "only a workspace's admins may make or change admins",
            ));
        }
    }
    Ok(())
}

/// Adds a member or changes their role.
#[utoipa::path(put, path = "/api/v1/workspaces/{ws}/members/{user}", tag = "workspaces", request_body = SetMember,
    params(("ws" = i64, Path, description = "workspace id"), ("user" = i64, Path, description = "user id")),
    responses((status = 200, body = Member), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn set_member(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((ws, user)): ApiPath<(i64, i64)>,
    ApiJson(body): ApiJson<SetMember>,
) -> Result<Json<Member>, ApiError> {
    let (ws, user) = (WorkspaceId(ws), UserId(user));
    may_manage_members(&state, &caller, ws, Some(body.role), user).await?;
    let target = state
        .store
        .get_user(user)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    state.store.set_member(ws, user, body.role).await?;
    state.caches.roles.remove(&(ws, user));
    Ok(Json(Member {
        user_id: user,
        name: target.name,
        role: body.role,
    }))
}

/// Removes a member.
#[utoipa::path(delete, path = "/api/v1/workspaces/{ws}/members/{user}", tag = "workspaces",
    params(("ws" = i64, Path, description = "workspace id"), ("user" = i64, Path, description = "user id")),
    responses((status = 204), (status = 404, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn remove_member(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((ws, user)): ApiPath<(i64, i64)>,
) -> Result<StatusCode, ApiError> {
    let (ws, user) = (WorkspaceId(ws), UserId(user));
    may_manage_members(&state, &caller, ws, None, user).await?;
    let removed = state.store.remove_member(ws, user).await?;
    state.caches.roles.remove(&(ws, user));
    if removed {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("member"))
    }
}

/// Changes to a workspace.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWorkspace {
    /// How people join: `invite` (only by invitation) or `open` (anyone
    /// may sign up on the web pages, as a worker).
    pub registration: Option<tutti_store::Registration>,
}

/// Changes how people join a workspace (its admins only).
#[utoipa::path(patch, path = "/api/v1/workspaces/{ws}", tag = "workspaces", request_body = UpdateWorkspace,
    params(("ws" = i64, Path, description = "workspace id")),
    responses((status = 200, body = Workspace), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn update_workspace(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(ws): ApiPath<i64>,
    ApiJson(body): ApiJson<UpdateWorkspace>,
) -> Result<Json<Workspace>, ApiError> {
    let ws = WorkspaceId(ws);
    if caller.role_in(&state, ws).await? != Role::Admin {
        return Err(ApiError::forbidden(
            "only a workspace's admins change its settings",
        ));
    }
    if let Some(r) = body.registration {
        state.store.set_registration(ws, r).await?;
    }
    let w = state
        .store
        .get_workspace(ws)
        .await?
        .ok_or_else(|| ApiError::not_found("workspace"))?;
    Ok(Json(w))
}

/// A new invitation.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateInvitation {
    /// The role the invited person gets (default `worker`).
    #[serde(default)]
    pub role: Option<Role>,
    /// Days it stays valid, 1-90 (default 7).
    #[serde(default)]
    pub days: Option<u32>,
}

/// An invitation with its secret, shown only now.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NewInvitation {
    /// The invitation.
    pub invitation: tutti_store::Invitation,
    /// The secret; whoever has it may sign up once.
    pub secret: String,
    /// Where to send the person: the sign-up page with the secret.
    pub path: String,
}

/// Makes an invitation to sign up into the workspace (its admins and
/// requesters; only admins invite admins).
#[utoipa::path(post, path = "/api/v1/workspaces/{ws}/invitations", tag = "workspaces", request_body = CreateInvitation,
    params(("ws" = i64, Path, description = "workspace id")),
    responses((status = 201, body = NewInvitation), (status = 403, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_invitation(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(ws): ApiPath<i64>,
    ApiJson(body): ApiJson<CreateInvitation>,
) -> Result<(StatusCode, Json<NewInvitation>), ApiError> {
    let ws = WorkspaceId(ws);
    let role = body.role.unwrap_or(Role::Worker);
    let days = body.days.unwrap_or(7);
    if !(1..=90).contains(&days) {
        return Err(FieldError::new("days", "must be 1-90").into());
    }
    let mine = caller.role_in(&state, ws).await?;
    if !mine.manages_jobs() || (role == Role::Admin && mine != Role::Admin) {
        return Err(ApiError::forbidden(
            "a workspace's admins invite anyone, its requesters all but admins",
        ));
    }
    let secret = crate::auth::new_token();
    let now = tutti_store::now();
    let invitation = state
        .store
        .create_invitation(
            ws,
            role,
            &crate::auth::token_hash(&secret),
            caller.0.id,
            now,
            now.plus_secs(days * 86_400),
        )
        .await?;
    let path = format!("/signup?invite={secret}");
    Ok((
        StatusCode::CREATED,
        Json(NewInvitation {
            invitation,
            secret,
            path,
        }),
    ))
}

/// A workspace's invitations, newest first (its admins and requesters).
#[utoipa::path(get, path = "/api/v1/workspaces/{ws}/invitations", tag = "workspaces",
    params(("ws" = i64, Path, description = "workspace id")),
    responses((status = 200, body = [tutti_store::Invitation]), (status = 403, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_invitations(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(ws): ApiPath<i64>,
) -> Result<Json<Vec<tutti_store::Invitation>>, ApiError> {
    let ws = WorkspaceId(ws);
    if !caller.role_in(&state, ws).await?.manages_jobs() {
        return Err(ApiError::forbidden(
            "only a workspace's admins and requesters see its invitations",
        ));
    }
    Ok(Json(state.store.list_invitations(ws).await?))
}
