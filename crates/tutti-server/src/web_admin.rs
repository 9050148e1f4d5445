//! Administration pages, on the same rules as the API they call:
//!
//! - `/admin` (installation admins): every user with their account role,
//!   enable or disable, a form to make a user (with a first password), and
//!   every workspace;
//! - `/workspaces/{ws}/settings` (the workspace's admins and requesters):
//!   members with their roles, adding and removing members, how people
//!   join (invitation or open sign-up), and invitations, whose link is
//!   shown once;
//! - `POST /workspaces`: a requester makes a workspace.
//!
//! Each form posts back with the visitor's CSRF value and lands on the page
//! again with what happened on top.

use crate::AppState;
use crate::api::users::{CreateUser, UpdateUser};
use crate::api::workspaces::{CreateInvitation, CreateWorkspace, SetMember, UpdateWorkspace};
use crate::auth::PeerAddr;
use crate::error::{ApiError, ApiJson, ApiPath};
use crate::web::{Visitor, error_page, escape_html, page_for, with_security_headers};
use crate::web_account::{CONFIRM_FIELD, confirm_identity};
use crate::web_results::date_text;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;
use std::fmt::Write as _;
use tutti_domain::ids::WorkspaceId;
use tutti_domain::role::Role;
use tutti_store::{Registration, User};

/// The administration routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin", get(admin))
        .route("/admin/users", post(create_user))
        .route("/admin/users/{id}", post(update_user))
        .route("/workspaces", post(create_workspace))
        .route("/workspaces/{ws}/settings", get(settings))
        .route("/workspaces/{ws}/members", post(set_member))
        .route(
            "/workspaces/{ws}/members/{user}/remove",
            post(remove_member),
        )
        .route("/workspaces/{ws}/registration", post(set_registration))
        .route("/workspaces/{ws}/invitations", post(invite))
}

/// A line on top of a page: what a form did, or why it did not.
fn outcome(r: &Result<String, ApiError>) -> String {
    match r {
        Ok(text) => format!("<div class=\"card notice\" role=\"status\">{text}</div>"),
        Err(e) => format!(
            "<p class=\"card error\" role=\"alert\">{}{}</p>",
            e.field
                .as_deref()
                .map(|f| format!("{}: ", escape_html(f)))
                .unwrap_or_default(),
            escape_html(&e.message)
        ),
    }
}

fn status_of(r: &Result<String, ApiError>) -> StatusCode {
    match r {
        Ok(_) => StatusCode::OK,
        Err(e) => e.status,
    }
}

fn role_options(selected: Role) -> String {
    let mut s = String::new();
    for r in Role::ALL {
        let _ = write!(
            s,
            "<option value=\"{r}\"{}>{r}</option>",
            if r == selected { " selected" } else { "" }
        );
    }
    s
}

async fn admin_page(state: &AppState, v: &Visitor, note: &str, status: StatusCode) -> Response {
    if let Err(e) = v.caller.require_admin() {
        return error_page(e);
    }
    let users: Vec<User> = match state.store.list_users(None, 1000).await {
        Ok(u) => u,
        Err(e) => return error_page(e.into()),
    };
    let workspaces = match state.store.list_workspaces(None, None, 1000).await {
        Ok(w) => w,
        Err(e) => return error_page(e.into()),
    };
    let csrf = v.csrf();
    let mut body = format!(
        "<h1>Administration</h1>{note}<h2>Make a user</h2>\
         <form method=\"post\" action=\"/admin/users\" class=\"card stack\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <label>Name <input name=\"name\" required maxlength=\"64\"></label>\
         <label>Name shown to others <input name=\"display_name\" maxlength=\"200\"></label>\
         <label>Account role <select name=\"role\">{}</select></label>\
         <label>First password (at least 10 characters; they can change it) <input name=\"password\" type=\"password\" autocomplete=\"new-password\" minlength=\"10\"></label>\
         {CONFIRM_FIELD}<button type=\"submit\">Make user</button></form>\
         <h2>Users</h2><table><thead><tr><th>Name</th><th>Shown as</th><th>Account role</th><th>Status</th><th></th></tr></thead><tbody>",
        role_options(Role::Worker)
    );
    for u in &users {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td><form method=\"post\" action=\"/admin/users/{id}\" class=\"inline\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><select name=\"role\" aria-label=\"Account role of {}\">{}</select>\
             <input name=\"confirm\" type=\"password\" placeholder=\"Your password\" aria-label=\"Your password, to confirm\" required>\
             <button class=\"link\">Save</button></form></td><td>{}</td><td>\
             <form method=\"post\" action=\"/admin/users/{id}\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
             <input type=\"hidden\" name=\"disabled\" value=\"{}\"><button class=\"link{}\">{}</button></form></td></tr>",
            escape_html(&u.name),
            escape_html(&u.display_name),
            escape_html(&u.name),
            role_options(u.role),
            if u.disabled { "disabled" } else { "active" },
            !u.disabled,
            if u.disabled { "" } else { " danger" },
            if u.disabled { "Enable" } else { "Disable" },
            id = u.id.0
        );
    }
    body.push_str("</tbody></table><h2>Workspaces</h2>");
    if workspaces.is_empty() {
        body.push_str("<p class=\"muted\">No workspaces yet; make one from <a href=\"/\">your jobs page</a>.</p>");
    } else {
        body.push_str(
            "<table><thead><tr><th>Workspace</th><th>Joining</th><th>Made</th></tr></thead><tbody>",
        );
        for w in &workspaces {
            let _ = write!(
                body,
                "<tr><td><a href=\"/workspaces/{}/settings\">{}</a></td><td>{}</td><td>{}</td></tr>",
                w.id.0,
                escape_html(&w.name),
                w.registration.as_str(),
                date_text(w.created_at)
            );
        }
        body.push_str("</tbody></table>");
    }
    with_security_headers((status, page_for(v, "Administration", &body)).into_response())
}

async fn admin(State(state): State<AppState>, v: Visitor) -> Response {
    admin_page(&state, &v, "", StatusCode::OK).await
}

#[derive(Deserialize)]
struct NewUserForm {
    csrf: String,
    name: String,
    display_name: Option<String>,
    role: Role,
    password: Option<String>,
    /// The admin's own password, typed again.
    confirm: Option<String>,
}

async fn create_user(
    State(state): State<AppState>,
    PeerAddr(peer): PeerAddr,
    v: Visitor,
    Form(f): Form<NewUserForm>,
) -> Response {
    let done = async {
        v.check_csrf(&f.csrf)?;
        confirm_identity(&state, &v, peer, f.confirm.as_deref()).await?;
        let password = f.password.filter(|p| !p.is_empty());
        if let Some(p) = &password {
            crate::auth::check_new_password("password", p)?;
        }
        let (_, axum::Json(user)) = crate::api::users::create_user(
            State(state.clone()),
            v.caller.clone(),
            ApiJson(CreateUser {
                name: f.name.trim().to_owned(),
                display_name: f.display_name,
                role: Some(f.role),
            }),
        )
        .await?;
        if let Some(p) = password {
            let phc = crate::auth::hash_password(p).await?;
            state.store.set_password(user.id, Some(&phc)).await?;
        }
        Ok(format!(
            "The user <b>{}</b> is made. Add them to a workspace from its settings.",
            escape_html(&user.name)
        ))
    }
    .await;
    let note = outcome(&done);
    admin_page(&state, &v, &note, status_of(&done)).await
}

#[derive(Deserialize)]
struct UserChangeForm {
    csrf: String,
    role: Option<Role>,
    disabled: Option<bool>,
    /// The admin's own password, typed again (for a role change).
    confirm: Option<String>,
}

async fn update_user(
    State(state): State<AppState>,
    PeerAddr(peer): PeerAddr,
    v: Visitor,
    Path(id): Path<String>,
    Form(f): Form<UserChangeForm>,
) -> Response {
    let done = async {
        v.check_csrf(&f.csrf)?;
        if f.role.is_some() {
            confirm_identity(&state, &v, peer, f.confirm.as_deref()).await?;
        }
        let id = id.parse::<i64>().map_err(|_| ApiError::not_found("user"))?;
        let axum::Json(user) = crate::api::users::update_user(
            State(state.clone()),
            v.caller.clone(),
            ApiPath(id),
            ApiJson(UpdateUser {
                disabled: f.disabled,
                role: f.role,
            }),
        )
        .await?;
        Ok(format!(
            "<b>{}</b> is now {}, account role {}.",
            escape_html(&user.name),
            if user.disabled { "disabled" } else { "active" },
            user.role
        ))
    }
    .await;
    let note = outcome(&done);
    admin_page(&state, &v, &note, status_of(&done)).await
}

#[derive(Deserialize)]
struct NameForm {
    csrf: String,
    name: String,
}

async fn create_workspace(
    State(state): State<AppState>,
    v: Visitor,
    Form(f): Form<NameForm>,
) -> Response {
    let done = async {
        v.check_csrf(&f.csrf)?;
        crate::api::workspaces::create_workspace(
            State(state.clone()),
            v.caller.clone(),
            ApiJson(CreateWorkspace { name: f.name }),
        )
        .await
    }
    .await;
    match done {
        Ok((_, axum::Json(w))) => {
            Redirect::to(&format!("/workspaces/{}/settings", w.workspace.id.0)).into_response()
        }
        Err(e) => error_page(e),
    }
}

async fn settings_page(
    state: &AppState,
    v: &Visitor,
    ws: &str,
    note: &str,
    status: StatusCode,
) -> Response {
    let Ok(id) = ws.parse::<i64>() else {
        return error_page(ApiError::not_found("workspace"));
    };
    let ws = WorkspaceId(id);
    let shown = async {
        let mine = v.caller.role_in(state, ws).await?;
        if !mine.manages_jobs() {
            return Err(ApiError::forbidden(
                "only a workspace's admins and requesters see its members and settings",
            ));
        }
        let w = state
            .store
            .get_workspace(ws)
            .await?
            .ok_or_else(|| ApiError::not_found("workspace"))?;
        let members = state.store.list_members(ws).await?;
        let invitations = state.store.list_invitations(ws).await?;
        Ok((mine, w, members, invitations))
    }
    .await;
    let (mine, w, members, invitations) = match shown {
        Ok(s) => s,
        Err(e) => return error_page(e),
    };
    let csrf = v.csrf();
    let mut body = format!(
        "<h1>{} · members and settings</h1>{note}<h2>Members</h2>\
         <table class=\"members\"><thead><tr><th>Name</th><th>Role here</th><th></th></tr></thead><tbody>",
        escape_html(&w.name)
    );
    for m in &members {
        let _ = write!(
            body,
            "<tr><td>{}</td><td><form method=\"post\" action=\"/workspaces/{id}/members\" class=\"inline\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><input type=\"hidden\" name=\"name\" value=\"{}\">\
             <select name=\"role\" aria-label=\"Role of {}\">{}</select>\
             <input name=\"confirm\" type=\"password\" placeholder=\"Your password\" aria-label=\"Your password, to confirm\" required>\
             <button class=\"link\">Save</button></form></td>\
             <td><form method=\"post\" action=\"/workspaces/{id}/members/{}/remove\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
             <button class=\"link danger\">Remove</button></form></td></tr>",
            escape_html(&m.name),
            escape_html(&m.name),
            escape_html(&m.name),
            role_options(m.role),
            m.user_id.0,
            id = id
        );
    }
    let _ = write!(
        body,
        "</tbody></table><form method=\"post\" action=\"/workspaces/{id}/members\" class=\"inline\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <input name=\"name\" placeholder=\"Name of an existing user\" required maxlength=\"64\">\
         <select name=\"role\" aria-label=\"Role\">{}</select>\
         <input name=\"confirm\" type=\"password\" placeholder=\"Your password\" aria-label=\"Your password, to confirm\" required>\
         <button type=\"submit\">Add member</button></form>\
         <h2>Invitations</h2><p class=\"muted\">An invitation link lets one person make an account and join here \
         with the role you choose. Send it privately; it is shown once.</p>\
         <form method=\"post\" action=\"/workspaces/{id}/invitations\" class=\"inline\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <label>Role <select name=\"role\">{}</select></label>\
         <label>Valid for <input name=\"days\" type=\"number\" min=\"1\" max=\"90\" value=\"7\" style=\"width:5rem;flex:0\"> days</label>\
         <button type=\"submit\">Make an invitation link</button></form>",
        role_options(Role::Worker),
        role_options(Role::Worker)
    );
    if !invitations.is_empty() {
        body.push_str("<table><thead><tr><th>Role</th><th>Made</th><th>Expires</th><th>Status</th></tr></thead><tbody>");
        let now = tutti_store::now();
        for i in &invitations {
            let status = match i.used_by {
                Some(_) => "used",
                None if i.expires_at <= now => "expired",
                None => "waiting",
            };
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{status}</td></tr>",
                i.role,
                date_text(i.created_at),
                date_text(i.expires_at)
            );
        }
        body.push_str("</tbody></table>");
    }
    if mine == Role::Admin {
        let open = w.registration == Registration::Open;
        let _ = write!(
            body,
            "<h2>Joining</h2><form method=\"post\" action=\"/workspaces/{id}/registration\" class=\"card stack\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
             <label><span><input type=\"radio\" name=\"registration\" value=\"invite\"{}> By invitation only</span></label>\
             <label><span><input type=\"radio\" name=\"registration\" value=\"open\"{}> Open: anyone may sign up at <code>/signup</code> and joins as a worker</span></label>\
             <button type=\"submit\">Save</button></form>",
            if open { "" } else { " checked" },
            if open { " checked" } else { "" }
        );
    }
    with_security_headers((status, page_for(v, &w.name, &body)).into_response())
}

async fn settings(State(state): State<AppState>, v: Visitor, Path(ws): Path<String>) -> Response {
    settings_page(&state, &v, &ws, "", StatusCode::OK).await
}

fn ws_id(ws: &str) -> Result<i64, ApiError> {
    ws.parse::<i64>()
        .map_err(|_| ApiError::not_found("workspace"))
}

#[derive(Deserialize)]
struct MemberForm {
    csrf: String,
    name: String,
    role: Role,
    /// The visitor's own password, typed again.
    confirm: Option<String>,
}

async fn set_member(
    State(state): State<AppState>,
    PeerAddr(peer): PeerAddr,
    v: Visitor,
    Path(ws): Path<String>,
    Form(f): Form<MemberForm>,
) -> Response {
    let done = async {
        v.check_csrf(&f.csrf)?;
        confirm_identity(&state, &v, peer, f.confirm.as_deref()).await?;
        let id = ws_id(&ws)?;
        let user = state
            .store
            .get_user_by_name(f.name.trim())
            .await?
            .ok_or_else(|| ApiError::not_found("user").with_field("name"))?;
        let _member = crate::api::workspaces::set_member(
            State(state.clone()),
            v.caller.clone(),
            ApiPath((id, user.id.0)),
            ApiJson(SetMember { role: f.role }),
        )
        .await?;
        Ok(format!(
            "<b>{}</b> is a {} here.",
            escape_html(&user.name),
            f.role
        ))
    }
    .await;
    let note = outcome(&done);
    settings_page(&state, &v, &ws, &note, status_of(&done)).await
}

async fn remove_member(
    State(state): State<AppState>,
    v: Visitor,
    Path((ws, user)): Path<(String, String)>,
    Form(f): Form<crate::web_account::CsrfForm>,
) -> Response {
    let done = async {
        v.check_csrf(&f.csrf)?;
        let id = ws_id(&ws)?;
        let user = user
            .parse::<i64>()
            .map_err(|_| ApiError::not_found("member"))?;
        crate::api::workspaces::remove_member(
            State(state.clone()),
            v.caller.clone(),
            ApiPath((id, user)),
        )
        .await?;
        Ok("The member is removed.".to_owned())
    }
    .await;
    let note = outcome(&done);
    settings_page(&state, &v, &ws, &note, status_of(&done)).await
}

#[derive(Deserialize)]
struct RegistrationForm {
    csrf: String,
    registration: Registration,
}

async fn set_registration(
    State(state): State<AppState>,
    v: Visitor,
    Path(ws): Path<String>,
    Form(f): Form<RegistrationForm>,
) -> Response {
    let done = async {
        v.check_csrf(&f.csrf)?;
        let id = ws_id(&ws)?;
        let _workspace = crate::api::workspaces::update_workspace(
            State(state.clone()),
            v.caller.clone(),
            ApiPath(id),
            ApiJson(UpdateWorkspace {
                registration: Some(f.registration),
            }),
        )
        .await?;
        Ok(match f.registration {
            Registration::Open => "Anyone may now sign up here, as a worker.".to_owned(),
            Registration::Invite => "New members now join by invitation only.".to_owned(),
        })
    }
    .await;
    let note = outcome(&done);
    settings_page(&state, &v, &ws, &note, status_of(&done)).await
}

#[derive(Deserialize)]
struct InviteForm {
    csrf: String,
    role: Role,
    days: Option<String>,
}

async fn invite(
    State(state): State<AppState>,
    v: Visitor,
    Path(ws): Path<String>,
    Form(f): Form<InviteForm>,
) -> Response {
    let done = async {
        v.check_csrf(&f.csrf)?;
        let id = ws_id(&ws)?;
        let days = match f.days.as_deref().map(str::trim).filter(|d| !d.is_empty()) {
            Some(d) => Some(d.parse::<u32>().map_err(|_| {
                ApiError::from(tutti_domain::FieldError::new("days", "must be a whole number of days, 1-90"))
            })?),
            None => None,
        };
        let (_, axum::Json(inv)) = crate::api::workspaces::create_invitation(
            State(state.clone()),
            v.caller.clone(),
            ApiPath(id),
            ApiJson(CreateInvitation {
                role: Some(f.role),
                days,
            }),
        )
        .await?;
        Ok(format!(
            "<p>Send this link to the person you invite (as a {}); it works once, until {}, and is not shown again:</p>\
             <p><code class=\"secret\" id=\"invitation-link\">{}</code></p>",
            inv.invitation.role,
            date_text(inv.invitation.expires_at),
            escape_html(&inv.path)
        ))
    }
    .await;
    let note = outcome(&done);
    let status = match &done {
        Ok(_) => StatusCode::CREATED,
        Err(e) => e.status,
    };
    settings_page(&state, &v, &ws, &note, status).await
}
