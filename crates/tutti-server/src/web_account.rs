//! Accounts on the web pages: sign in with a name and password (or with an
//! API token), sign up by invitation or to a workspace open for sign-up,
//! sign out, change one's password, and make or revoke one's API tokens.
//!
//! A sign-in makes a session: a random token of kind `session`, stored
//! only as its SHA-256 like every token, sent back in an HttpOnly,
//! SameSite=Strict cookie (Secure behind https) and expiring after
//! [`SESSION_DAYS`]. Signing out revokes it. Forms of signed-in pages carry
//! a CSRF value derived from the session; the sign-in and sign-up forms,
//! which have no session yet, use a double-submit cookie instead. Sign-ins
//! are limited per address, and failures for a name make the next try from
//! that address wait longer and longer ([`crate::auth::SignInLimits`]).

use crate::AppState;
use crate::api::users::parse_user_name;
use crate::auth::{
    PeerAddr, authenticate, check_new_password, hash_password, new_token, token_hash,
    verify_password,
};
use crate::error::ApiError;
use crate::web::{
    COOKIE, SignIn, Visitor, cookie, error_page, escape_html, local_path, page, page_for, sentence,
    with_security_headers,
};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;
use std::fmt::Write as _;
use tutti_domain::FieldError;
use tutti_domain::ids::{TokenId, WorkspaceId};
use tutti_domain::role::Role;
use tutti_store::{Joining, NewUser, StoreError, TokenKind};

/// How long a sign-in lasts.
pub const SESSION_DAYS: i64 = 14;
/// The double-submit cookie of the forms that have no session yet.
const FORM_COOKIE: &str = "tutti_form";

/// The account routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/signup", get(signup_form).post(signup))
        .route("/account", get(account))
        .route("/account/password", post(change_password))
        .route("/account/tokens", post(create_token))
        .route("/account/tokens/{id}/revoke", post(revoke_token))
}

/// Whether the visitor reached us over https (directly or through a proxy
/// that says so), so cookies may be marked Secure.
fn over_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

fn set_cookie(r: &mut Response, name: &str, value: &str, max_age: i64, secure: bool) {
    let secure = if secure { "; Secure" } else { "" };
    let c = format!("{name}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{secure}");
    if let Ok(v) = HeaderValue::from_str(&c) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// The double-submit value for a form without a session: the visitor's
/// cookie if they have one, else a new one to set.
fn form_value(headers: &HeaderMap) -> (String, bool) {
    match cookie(headers, FORM_COOKIE).filter(|v| v.len() == 70) {
        Some(v) => (v, false),
        None => (new_token(), true),
    }
}

fn form_page(headers: &HeaderMap, status: StatusCode, title: &str, body: &str) -> Response {
    let (value, fresh) = form_value(headers);
    let body = body.replace("{form}", &value);
    let mut r = (status, page(title, &body)).into_response();
    if fresh {
        set_cookie(&mut r, FORM_COOKIE, &value, 86_400, over_https(headers));
    }
    with_security_headers(r)
}

/// 403 unless the posted value matches the visitor's form cookie.
fn check_form(headers: &HeaderMap, posted: &str) -> Result<(), ApiError> {
    match cookie(headers, FORM_COOKIE) {
        Some(v) if v == posted => Ok(()),
        _ => Err(ApiError::forbidden(
            "this form is out of date or came from another site; reload the page and try again",
        )),
    }
}

/// Starts a session for `user` and sends them to `to`.
async fn start_session(
    state: &AppState,
    headers: &HeaderMap,
    user: &tutti_store::User,
    to: &str,
) -> Response {
    let token = new_token();
    let now = tutti_store::now();
    let expires = now.plus_secs(u32::try_from(SESSION_DAYS * 86_400).unwrap_or(u32::MAX));
    if let Err(e) = state
        .store
        .create_session(user.id, &token_hash(&token), now, expires)
        .await
    {
        return error_page(e.into());
    }
    let mut r = Redirect::to(to).into_response();
    set_cookie(
        &mut r,
        COOKIE,
        &token,
        SESSION_DAYS * 86_400,
        over_https(headers),
    );
    r
}

const LOGIN_FORM: &str = "<form method=\"post\" action=\"/login\" class=\"card stack\">\
    <input type=\"hidden\" name=\"form\" value=\"{form}\"><input type=\"hidden\" name=\"next\" value=\"{next}\">\
    <label>Name <input name=\"name\" autocomplete=\"username\" required autofocus></label>\
    <label>Password <input name=\"password\" type=\"password\" autocomplete=\"current-password\" required></label>\
    <button type=\"submit\">Sign in</button></form>\
    <details><summary>Sign in with an API token instead</summary>\
    <form method=\"post\" action=\"/login\" class=\"stack\"><input type=\"hidden\" name=\"form\" value=\"{form}\">\
    <input type=\"hidden\" name=\"next\" value=\"{next}\">\
    <label>API token <input name=\"token\" type=\"password\" autocomplete=\"off\" required></label>\
    <button type=\"submit\">Sign in with the token</button></form></details>\
    <p class=\"muted\">No account yet? <a href=\"/signup\">Sign up</a> with an invitation or to an open workspace.</p>";

#[derive(Deserialize)]
struct LoginQuery {
    /// The page to go to once signed in.
    next: Option<String>,
    /// Set when a form was posted without a session: it was not carried out.
    lost: Option<String>,
}

/// Where a sign-in sends the visitor: `next` if it is a page of this site.
fn after_sign_in(next: Option<&str>) -> String {
    next.filter(|n| local_path(n)).unwrap_or("/").to_owned()
}

/// The sign-in form, coming back to `next`, with the name typed kept.
fn login_body(next: &str, name: &str) -> String {
    let mut form = LOGIN_FORM.replace("{next}", &escape_html(next));
    if !name.is_empty() {
        form = form.replacen(
            "name=\"name\" autocomplete",
            &format!("name=\"name\" value=\"{}\" autocomplete", escape_html(name)),
            1,
        );
    }
    form
}

async fn login_form(
    visitor: Result<Visitor, SignIn>,
    headers: HeaderMap,
    Query(q): Query<LoginQuery>,
) -> Response {
    let next = after_sign_in(q.next.as_deref());
    if visitor.is_ok() {
        return Redirect::to(&next).into_response();
    }
    let lost = if q.lost.is_some() {
        "<p class=\"error\" role=\"alert\">You were signed out, so what you last sent was <b>not saved</b>. \
         Sign in to go back to the page and send it again.</p>"
    } else {
        ""
    };
    let body = format!("<h1>Sign in</h1>{lost}{}", login_body(&next, ""));
    form_page(&headers, StatusCode::OK, "Sign in", &body)
}

#[derive(Deserialize)]
struct LoginForm {
    form: String,
    name: Option<String>,
    password: Option<String>,
    token: Option<String>,
    next: Option<String>,
}

fn login_failed(
    headers: &HeaderMap,
    status: StatusCode,
    message: &str,
    next: &str,
    name: &str,
) -> Response {
    let body = format!(
        "<h1>Sign in</h1><p class=\"error\" role=\"alert\">{}</p>{}",
        escape_html(message),
        login_body(next, name)
    );
    form_page(headers, status, "Sign in", &body)
}

async fn login(
    State(state): State<AppState>,
    PeerAddr(peer): PeerAddr,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let next = after_sign_in(form.next.as_deref());
    let name = form.name.clone().unwrap_or_default().trim().to_owned();
    let failed =
        |status: StatusCode, message: &str| login_failed(&headers, status, message, &next, &name);
    if let Err(e) = check_form(&headers, &form.form) {
        return failed(e.status, &e.message);
    }
    let limits = &state.caches.logins;
    if let Err(wait) = limits.take(peer) {
        return failed(
            StatusCode::TOO_MANY_REQUESTS,
            &format!("Too many sign-ins from your address; wait {wait} seconds and try again."),
        );
    }
    if let Some(token) = form.token.as_deref().map(str::trim) {
        // An API token signs in as it is; signing out forgets the cookie
        // but leaves the token working for the API.
        if authenticate(&state, token).await.is_err() {
            return failed(
                StatusCode::UNAUTHORIZED,
                "That token is unknown or revoked.",
            );
        }
        let mut r = Redirect::to(&next).into_response();
        set_cookie(&mut r, COOKIE, token, 30 * 86_400, over_https(&headers));
        return r;
    }
    let password = form.password.unwrap_or_default();
    if name.is_empty() || password.is_empty() {
        return failed(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Enter your name and your password.",
        );
    }
    if let Err(wait) = limits.wait(&name, peer) {
        return failed(
            StatusCode::TOO_MANY_REQUESTS,
            &format!(
                "Several sign-ins for this name failed from your address; wait {wait} seconds and try again."
            ),
        );
    }
    let found = match state.store.password_of(&name).await {
        Ok(f) => f,
        Err(e) => return error_page(e.into()),
    };
    let (user, stored) = match found {
        Some((u, h)) if !u.disabled => (Some(u), h),
        _ => (None, None),
    };
    match verify_password(password, stored).await {
        Ok(true) => {}
        Ok(false) => {
            limits.failed(&name, peer);
            return failed(
                StatusCode::UNAUTHORIZED,
                "That name and password do not match an account.",
            );
        }
        Err(e) => return failed(e.status, &format!("{}.", sentence(&e.message))),
    }
    let Some(user) = user else {
        return failed(
            StatusCode::UNAUTHORIZED,
            "That name and password do not match an account.",
        );
    };
    limits.succeeded(&name, peer);
    start_session(&state, &headers, &user, &next).await
}

/// The field of forms for admin-grade actions (making a user, changing
/// roles) in which the visitor types their password again.
pub(crate) const CONFIRM_FIELD: &str = "<label>Your password, to confirm \
    <input name=\"confirm\" type=\"password\" autocomplete=\"current-password\" required></label>";

/// Checks that the visitor typed their own password (or, for an account
/// without one, one of its API tokens) into a form for an admin-grade
/// action: a session alone, or a page acting through it, is not enough.
/// Failures count against the name as sign-in failures do.
pub(crate) async fn confirm_identity(
    state: &AppState,
    v: &Visitor,
    peer: Option<std::net::IpAddr>,
    posted: Option<&str>,
) -> Result<(), ApiError> {
    let posted = posted.unwrap_or_default();
    let refused = || {
        ApiError::forbidden("type your own password again to confirm this").with_field("confirm")
    };
    if posted.is_empty() {
        return Err(refused());
    }
    let name = &v.caller.0.name;
    let stored = state.store.password_of(name).await?.and_then(|(_, h)| h);
    if stored.is_none() {
        let owner = authenticate(state, posted.trim()).await.ok();
        return match owner {
            Some(u) if u.id == v.caller.0.id => Ok(()),
            _ => Err(refused()),
        };
    }
    if let Err(wait) = state.caches.logins.wait(name, peer) {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_tries",
            format!("several tries failed; wait {wait} seconds and try again"),
        ));
    }
    if verify_password(posted.to_owned(), stored).await? {
        state.caches.logins.succeeded(name, peer);
        Ok(())
    } else {
        state.caches.logins.failed(name, peer);
        Err(refused())
    }
}

#[derive(Deserialize)]
pub(crate) struct CsrfForm {
    pub(crate) csrf: String,
}

async fn logout(
    State(state): State<AppState>,
    visitor: Result<Visitor, SignIn>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Ok(v) = visitor {
        if let Err(e) = v.check_csrf(&form.csrf) {
            return error_page(e);
        }
        let hash = token_hash(v.token());
        let now = tutti_store::now();
        // Only a session ends here; an API token used to sign in keeps
        // working for the API.
        if let Err(e) = state.store.revoke_session_hash(&hash, now).await {
            return error_page(e.into());
        }
        state.caches.tokens.remove(&hash);
    }
    let mut r = Redirect::to("/login").into_response();
    set_cookie(&mut r, COOKIE, "", 0, over_https(&headers));
    r
}

#[derive(Deserialize)]
struct SignupQuery {
    invite: Option<String>,
}

/// What a sign-up form is for.
enum Target {
    Invitation {
        secret: String,
        ws_name: String,
        role: Role,
    },
    Open(Vec<tutti_store::Workspace>),
    Closed,
}

async fn signup_target(state: &AppState, invite: Option<&str>) -> Result<Target, ApiError> {
    if let Some(secret) = invite.map(str::trim).filter(|s| !s.is_empty()) {
        let inv = state.store.invitation_by_hash(&token_hash(secret)).await?;
        let now = tutti_store::now();
        let Some(inv) = inv.filter(|i| i.used_by.is_none() && i.expires_at > now) else {
            return Err(ApiError::not_found("invitation").with_field("invite"));
        };
        let ws = state
            .store
            .get_workspace(inv.workspace_id)
            .await?
            .ok_or_else(|| ApiError::not_found("workspace"))?;
        return Ok(Target::Invitation {
            secret: secret.to_owned(),
            ws_name: ws.name,
            role: inv.role,
        });
    }
    let open = state.store.open_workspaces().await?;
    Ok(if open.is_empty() {
        Target::Closed
    } else {
        Target::Open(open)
    })
}

fn signup_body(target: &Target, problem: Option<&str>, name: &str, display: &str) -> String {
    let mut body = String::from("<h1>Sign up</h1>");
    if let Some(p) = problem {
        let _ = write!(
            body,
            "<p class=\"error\" role=\"alert\">{}</p>",
            escape_html(p)
        );
    }
    let join = match target {
        Target::Closed => {
            body.push_str(
                "<p class=\"card\">New accounts join a workspace, and no workspace here takes sign-ups \
                 without an invitation. Ask a workspace admin for an invitation link, \
                 or <a href=\"/login\">sign in</a> if you have an account.</p>",
            );
            return body;
        }
        Target::Invitation {
            secret,
            ws_name,
            role,
        } => format!(
            "<p>You are invited to <b>{}</b> as a {role}.</p><input type=\"hidden\" name=\"invite\" value=\"{}\">",
            escape_html(ws_name),
            escape_html(secret)
        ),
        Target::Open(list) => {
            let mut s = String::from("<label>Workspace <select name=\"workspace\" required>");
            for w in list {
                let _ = write!(
                    s,
                    "<option value=\"{}\">{}</option>",
                    w.id.0,
                    escape_html(&w.name)
                );
            }
            s.push_str("</select></label>");
            s
        }
    };
    let _ = write!(
        body,
        "<form method=\"post\" action=\"/signup\" class=\"card stack\">\
         <input type=\"hidden\" name=\"form\" value=\"{{form}}\">{join}\
         <label>Name (letters, digits, . _ -) <input name=\"name\" value=\"{}\" autocomplete=\"username\" required maxlength=\"64\" pattern=\"[A-Za-z0-9._\\-]+\"></label>\
         <label>Name shown to others <input name=\"display_name\" value=\"{}\" maxlength=\"200\"></label>\
         <label>Password (at least 10 characters) <input name=\"password\" type=\"password\" autocomplete=\"new-password\" required minlength=\"10\"></label>\
         <label>Password again <input name=\"password2\" type=\"password\" autocomplete=\"new-password\" required minlength=\"10\"></label>\
         <button type=\"submit\">Create my account</button></form>\
         <p class=\"muted\">Already have an account? <a href=\"/login\">Sign in</a>.</p>",
        escape_html(name),
        escape_html(display)
    );
    body
}

async fn signup_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<SignupQuery>,
) -> Response {
    match signup_target(&state, q.invite.as_deref()).await {
        Ok(t) => form_page(
            &headers,
            StatusCode::OK,
            "Sign up",
            &signup_body(&t, None, "", ""),
        ),
        Err(e) if e.status == StatusCode::NOT_FOUND => {
            let body = "<h1>This invitation does not work</h1><p class=\"card\">It is unknown, \
                already used or expired. Ask the workspace admin who sent it for a new one.</p>\
                <p><a href=\"/login\">Sign in</a> if you already have an account.</p>";
            with_security_headers((StatusCode::NOT_FOUND, page("Sign up", body)).into_response())
        }
        Err(e) => error_page(e),
    }
}

#[derive(Deserialize)]
struct SignupForm {
    form: String,
    invite: Option<String>,
    workspace: Option<String>,
    name: String,
    display_name: Option<String>,
    password: String,
    password2: String,
}

async fn signup(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<SignupForm>,
) -> Response {
    let target = match signup_target(&state, f.invite.as_deref()).await {
        Ok(t) => t,
        Err(e) => return error_page(e),
    };
    let display = f.display_name.clone().unwrap_or_default();
    let again = |status: StatusCode, problem: &str| {
        form_page(
            &headers,
            status,
            "Sign up",
            &signup_body(&target, Some(problem), &f.name, &display),
        )
    };
    if let Err(e) = check_form(&headers, &f.form) {
        return again(e.status, &e.message);
    }
    let joining = match &target {
        Target::Closed => {
            return again(StatusCode::FORBIDDEN, "Sign-up needs an invitation here.");
        }
        Target::Invitation { .. } => None,
        Target::Open(list) => {
            let chosen = f.workspace.as_deref().and_then(|w| w.parse::<i64>().ok());
            match chosen.filter(|id| list.iter().any(|w| w.id.0 == *id)) {
                Some(id) => Some(WorkspaceId(id)),
                None => return again(StatusCode::UNPROCESSABLE_ENTITY, "Choose a workspace."),
            }
        }
    };
    let name = match parse_user_name(f.name.trim()) {
        Ok(n) => n,
        Err(e) => {
            return again(
                StatusCode::UNPROCESSABLE_ENTITY,
                &format!("The name {}.", e.message),
            );
        }
    };
    if let Err(e) = check_new_password("password", &f.password) {
        return again(
            StatusCode::UNPROCESSABLE_ENTITY,
            &format!("Password: {}.", e.message),
        );
    }
    if f.password != f.password2 {
        return again(
            StatusCode::UNPROCESSABLE_ENTITY,
            "The two passwords differ; type the same one twice.",
        );
    }
    let display_name = Some(display.trim().to_owned())
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| name.clone());
    if display_name.chars().count() > 200 {
        return again(
            StatusCode::UNPROCESSABLE_ENTITY,
            "The name shown to others is longer than 200 characters.",
        );
    }
    let new = NewUser {
        name,
        display_name,
        role: Role::Worker,
    };
    let phc = match hash_password(f.password.clone()).await {
        Ok(h) => h,
        Err(e) => return error_page(e),
    };
    let invite_hash = f.invite.as_deref().map(|s| token_hash(s.trim()));
    let how = match (&invite_hash, joining) {
        (Some(h), _) => Joining::Invitation(h),
        (None, Some(ws)) => Joining::Open(ws),
        (None, None) => return again(StatusCode::UNPROCESSABLE_ENTITY, "Choose a workspace."),
    };
    match state
        .store
        .sign_up(&new, &phc, how, tutti_store::now())
        .await
    {
        Ok((user, _, _)) => start_session(&state, &headers, &user, "/").await,
        Err(StoreError::Conflict(FieldError { message, .. })) => {
            again(StatusCode::CONFLICT, &format!("{}.", sentence(&message)))
        }
        Err(e) => error_page(e.into()),
    }
}

/// The account page, with `notice` on top (a success or a problem).
async fn account_page(state: &AppState, v: &Visitor, notice: &str, status: StatusCode) -> Response {
    let tokens = match state.store.list_tokens(v.caller.0.id).await {
        Ok(t) => t,
        Err(e) => return error_page(e.into()),
    };
    let has_password = match state.store.password_of(&v.caller.0.name).await {
        Ok(found) => found.is_some_and(|(_, h)| h.is_some()),
        Err(e) => return error_page(e.into()),
    };
    let proof = if has_password {
        "<label>Current password <input name=\"current\" type=\"password\" autocomplete=\"current-password\" required></label>"
    } else {
        "<label>You have no password yet: paste one of your API tokens to show the account is yours \
         <input name=\"token\" type=\"password\" autocomplete=\"off\" required></label>"
    };
    let csrf = v.csrf();
    let u = &v.caller.0;
    let mut body = format!(
        "<h1>Your account</h1>{notice}<p class=\"card\">Signed in as <b>{}</b> ({}), account role {}.</p>\
         <h2>{}</h2>\
         <form method=\"post\" action=\"/account/password\" class=\"card stack\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">{proof}\
         <label>New password (at least 10 characters) <input name=\"password\" type=\"password\" autocomplete=\"new-password\" required minlength=\"10\"></label>\
         <label>New password again <input name=\"password2\" type=\"password\" autocomplete=\"new-password\" required minlength=\"10\"></label>\
         <button type=\"submit\">Change password</button></form>\
         <h2>API tokens</h2>\
         <p class=\"muted\">For scripts and the command line: send one as <code>Authorization: Bearer &lt;token&gt;</code>. \
         See <a href=\"/docs\">the API</a>.</p>\
         <form method=\"post\" action=\"/account/tokens\" class=\"inline\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <input name=\"name\" placeholder=\"What the token is for\" required maxlength=\"100\">\
         <button type=\"submit\">Make a token</button></form>",
        escape_html(&u.display_name),
        escape_html(&u.name),
        u.role,
        if has_password {
            "Change your password"
        } else {
            "Set a password for signing in"
        }
    );
    let live: Vec<_> = tokens
        .iter()
        .filter(|t| t.revoked_at.is_none() && t.kind == TokenKind::Api)
        .collect();
    if live.is_empty() {
        body.push_str("<p class=\"muted\">You have no API tokens.</p>");
    } else {
        body.push_str("<table><thead><tr><th>Token</th><th>Made</th><th></th></tr></thead><tbody>");
        for t in live {
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{}</td><td><form method=\"post\" action=\"/account/tokens/{}/revoke\">\
                 <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><button class=\"link danger\">Revoke</button></form></td></tr>",
                escape_html(&t.name),
                crate::web_results::date_text(t.created_at),
                t.id.0
            );
        }
        body.push_str("</tbody></table>");
    }
    let sessions = tokens
        .iter()
        .filter(|t| {
            t.kind == TokenKind::Session
                && t.revoked_at.is_none()
                && t.expires_at.is_some_and(|e| e > tutti_store::now())
        })
        .count();
    let _ = write!(
        body,
        "<p class=\"muted\">You are signed in on {sessions} browser{}.</p>",
        if sessions == 1 { "" } else { "s" }
    );
    with_security_headers((status, page_for(v, "Your account", &body)).into_response())
}

async fn account(State(state): State<AppState>, v: Visitor) -> Response {
    account_page(&state, &v, "", StatusCode::OK).await
}

fn notice(ok: bool, text: &str) -> String {
    format!(
        "<p class=\"card {}\" role=\"{}\">{}</p>",
        if ok { "notice" } else { "error" },
        if ok { "status" } else { "alert" },
        escape_html(text)
    )
}

async fn refused(state: &AppState, v: &Visitor, text: &str) -> Response {
    let n = notice(false, text);
    account_page(state, v, &n, StatusCode::UNPROCESSABLE_ENTITY).await
}

#[derive(Deserialize)]
struct PasswordForm {
    csrf: String,
    current: Option<String>,
    /// For a first password: one of the account's API tokens.
    token: Option<String>,
    password: String,
    password2: String,
}

/// Changing a password needs the current one; setting a first one needs
/// one of the account's API tokens, so that a session alone (or a page
/// acting through it) cannot fix a password on an account.
async fn change_password(
    State(state): State<AppState>,
    PeerAddr(peer): PeerAddr,
    v: Visitor,
    Form(f): Form<PasswordForm>,
) -> Response {
    if let Err(e) = v.check_csrf(&f.csrf) {
        return error_page(e);
    }
    let stored = match state.store.password_of(&v.caller.0.name).await {
        Ok(Some((_, h))) => h,
        Ok(None) => return error_page(ApiError::not_found("user")),
        Err(e) => return error_page(e.into()),
    };
    let name = &v.caller.0.name;
    if stored.is_some() {
        if let Err(wait) = state.caches.logins.wait(name, peer) {
            return refused(
                &state,
                &v,
                &format!("Several tries failed; wait {wait} seconds and try again."),
            )
            .await;
        }
        match verify_password(f.current.clone().unwrap_or_default(), stored).await {
            Ok(true) => state.caches.logins.succeeded(name, peer),
            Ok(false) => {
                state.caches.logins.failed(name, peer);
                return refused(&state, &v, "Your current password is not right.").await;
            }
            Err(e) => return refused(&state, &v, &format!("{}.", sentence(&e.message))).await,
        }
    } else {
        let token = f.token.as_deref().map(str::trim).unwrap_or_default();
        let owner = authenticate(&state, token).await.ok();
        if token.is_empty() || owner.is_none_or(|u| u.id != v.caller.0.id) {
            return refused(
                &state,
                &v,
                "To set a first password, paste one of your own API tokens.",
            )
            .await;
        }
    }
    if let Err(e) = check_new_password("password", &f.password) {
        return refused(&state, &v, &format!("New password: {}.", e.message)).await;
    }
    if f.password != f.password2 {
        return refused(
            &state,
            &v,
            "The two new passwords differ; type the same one twice.",
        )
        .await;
    }
    let phc = match hash_password(f.password.clone()).await {
        Ok(h) => h,
        Err(e) => return error_page(e),
    };
    let now = tutti_store::now();
    let done = async {
        state.store.set_password(v.caller.0.id, Some(&phc)).await?;
        // Other browsers signed in as this person are signed out.
        state
            .store
            .revoke_sessions(v.caller.0.id, &token_hash(v.token()), now)
            .await
    }
    .await;
    match done {
        Ok(_) => {
            state.caches.tokens.clear();
            account_page(
                &state,
                &v,
                &notice(
                    true,
                    "Your password is changed; other browsers were signed out.",
                ),
                StatusCode::OK,
            )
            .await
        }
        Err(e) => error_page(e.into()),
    }
}

#[derive(Deserialize)]
struct TokenForm {
    csrf: String,
    name: String,
}

async fn create_token(
    State(state): State<AppState>,
    v: Visitor,
    Form(f): Form<TokenForm>,
) -> Response {
    if let Err(e) = v.check_csrf(&f.csrf) {
        return error_page(e);
    }
    let name = f.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return account_page(
            &state,
            &v,
            &notice(false, "Name the token in 1-100 characters."),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    }
    let token = new_token();
    match state
        .store
        .create_token(v.caller.0.id, name, &token_hash(&token), tutti_store::now())
        .await
    {
        Ok(_) => {
            let shown = format!(
                "<div class=\"card notice\" role=\"status\"><p>Your new token <b>{}</b>; copy it now, it is not shown again:</p>\
                 <p><code class=\"secret\">{token}</code></p></div>",
                escape_html(name)
            );
            account_page(&state, &v, &shown, StatusCode::CREATED).await
        }
        Err(e) => error_page(e.into()),
    }
}

async fn revoke_token(
    State(state): State<AppState>,
    v: Visitor,
    Path(id): Path<String>,
    Form(f): Form<CsrfForm>,
) -> Response {
    if let Err(e) = v.check_csrf(&f.csrf) {
        return error_page(e);
    }
    let Ok(id) = id.parse::<i64>() else {
        return error_page(ApiError::not_found("token"));
    };
    let token = match state.store.get_token(TokenId(id)).await {
        Ok(Some(t)) if t.user_id == v.caller.0.id => t,
        Ok(_) => return error_page(ApiError::not_found("token")),
        Err(e) => return error_page(e.into()),
    };
    match state.store.revoke_token(token.id, tutti_store::now()).await {
        Ok(_) => {
            state.caches.tokens.clear();
            account_page(
                &state,
                &v,
                &notice(true, &format!("The token {} is revoked.", token.name)),
                StatusCode::OK,
            )
            .await
        }
        Err(e) => error_page(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_cookie_is_read_among_others_and_empty_ones_are_ignored() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; tutti_form=xyz; b="),
        );
        assert_eq!(cookie(&h, FORM_COOKIE).as_deref(), Some("xyz"));
        assert_eq!(cookie(&h, "b"), None);
    }

    #[test]
    fn a_posted_form_value_must_match_the_cookie() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("tutti_form=abc"));
        assert!(check_form(&h, "abc").is_ok());
        assert!(check_form(&h, "abd").is_err());
        assert!(check_form(&HeaderMap::new(), "").is_err());
    }

    #[test]
    fn cookies_are_secure_only_behind_https() {
        let mut h = HeaderMap::new();
        assert!(!over_https(&h));
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        assert!(over_https(&h));
    }
}
