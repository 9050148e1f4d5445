//! Users and tokens. Admins make users and may make and revoke tokens for
//! anyone; everyone may make and revoke their own.

use super::{Page, PageQuery};
use crate::AppState;
use crate::auth::{Caller, new_token, token_hash};
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use tutti_domain::FieldError;
use tutti_domain::ids::{TokenId, UserId};
use tutti_domain::role::Role;
use tutti_store::{NewUser, Token, User};

/// A new user.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    /// Login name: 1-64 letters, digits, `.`, `_` or `-`.
    pub name: String,
    /// Name shown to people (defaults to the login name).
    #[serde(default)]
    pub display_name: Option<String>,
    /// Account role (default `worker`).
    #[serde(default)]
    pub role: Option<Role>,
}

/// Parses a login name.
pub fn parse_user_name(name: &str) -> Result<String, FieldError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(name.to_owned())
    } else {
        Err(FieldError::new(
            "name",
            "must be 1-64 characters of letters, digits, '.', '_' or '-'",
        ))
    }
}

impl TryFrom<CreateUser> for NewUser {
    type Error = FieldError;

    fn try_from(c: CreateUser) -> Result<Self, FieldError> {
        let name = parse_user_name(&c.name)?;
        let display_name = c
            .display_name
            .map(|d| d.trim().to_owned())
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| name.clone());
        if display_name.chars().count() > 200 {
            return Err(FieldError::new(
                "display_name",
                "is longer than 200 characters",
            ));
        }
        Ok(NewUser {
            name,
            display_name,
            role: c.role.unwrap_or(Role::Worker),
        })
    }
}

/// Makes a user (admins only).
#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = CreateUser,
    responses((status = 201, body = User), (status = 409, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_user(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateUser>,
) -> Result<(StatusCode, Json<User>), ApiError> {
    caller.require_admin()?;
    let new = NewUser::try_from(body)?;
    let user = state.store.create_user(&new, tutti_store::now()).await?;
    Ok((StatusCode::CREATED, Json(user)))
}

/// Lists users (admins only).
#[utoipa::path(get, path = "/api/v1/users", tag = "users", params(PageQuery),
    responses((status = 200, body = Page<User>)), security(("bearer" = [])))]
pub async fn list_users(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> Result<Json<Page<User>>, ApiError> {
    caller.require_admin()?;
    let (limit, after) = page.parse()?;
    let users = state.store.list_users(after, limit).await?;
    Ok(Json(Page::of(users, limit, |u| u.id.0)))
}

/// The caller's own account.
#[utoipa::path(get, path = "/api/v1/users/me", tag = "users",
    responses((status = 200, body = User), (status = 401, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn me(caller: Caller) -> Json<User> {
    Json(caller.0)
}

/// Changes to a user.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    /// Disable (true) or enable (false) the account.
    pub disabled: Option<bool>,
    /// New account role.
    pub role: Option<Role>,
}

/// Disables, enables or changes the account role of a user (admins only).
#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users", request_body = UpdateUser,
    params(("id" = i64, Path, description = "user id")),
    responses((status = 200, body = User), (status = 404, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn update_user(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<UpdateUser>,
) -> Result<Json<User>, ApiError> {
    caller.require_admin()?;
    let id = UserId(id);
    if state.store.get_user(id).await?.is_none() {
        return Err(ApiError::not_found("user"));
    }
    if id == caller.0.id
        && (body.disabled == Some(true) || body.role.is_some_and(|r| r != Role::Admin))
    {
        return Err(ApiError::conflict(
            "self_lockout",
            "you cannot disable yourself or give up your own admin role; ask another admin",
        ));
    }
    if let Some(d) = body.disabled {
        state.store.set_user_disabled(id, d).await?;
    }
    if let Some(r) = body.role {
        state.store.set_user_role(id, r).await?;
    }
    state.caches.tokens.clear();
    let user = state
        .store
        .get_user(id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    Ok(Json(user))
}

/// A new token.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// What the token is for ("laptop", "labeling script").
    pub name: String,
    /// Whose token (admins only; default yourself).
    pub user_id: Option<UserId>,
}

/// A token just made: the only time its secret is shown.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NewToken {
    /// The token's record.
    #[serde(flatten)]
    pub info: Token,
    /// The secret; send it as `Authorization: Bearer <token>`. Not shown again.
    pub token: String,
}

/// Makes an API token.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "users", request_body = CreateToken,
    responses((status = 201, body = NewToken), (status = 403, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_token(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateToken>,
) -> Result<(StatusCode, Json<NewToken>), ApiError> {
    let user = body.user_id.unwrap_or(caller.0.id);
    if user != caller.0.id {
        caller.require_admin()?;
        if state.store.get_user(user).await?.is_none() {
            return Err(ApiError::not_found("user").with_field("user_id"));
        }
    }
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(FieldError::new("name", "must be 1-200 characters").into());
    }
    let (info, token) = issue_token(&state, user, name).await?;
    Ok((StatusCode::CREATED, Json(NewToken { info, token })))
}

/// Makes and stores a token, returning its record and its secret.
pub async fn issue_token(
    state: &AppState,
    user: UserId,
    name: &str,
) -> Result<(Token, String), ApiError> {
    let token = new_token();
    let info = state
        .store
        .create_token(user, name, &token_hash(&token), tutti_store::now())
        .await?;
    Ok((info, token))
}

/// Whose tokens to list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct TokenQuery {
    /// Another user's (admins only).
    pub user_id: Option<i64>,
}

/// Lists tokens (never their secrets).
#[utoipa::path(get, path = "/api/v1/tokens", tag = "users", params(TokenQuery),
    responses((status = 200, body = Page<Token>)), security(("bearer" = [])))]
pub async fn list_tokens(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<TokenQuery>,
) -> Result<Json<Page<Token>>, ApiError> {
    let user = q.user_id.map_or(caller.0.id, UserId);
    if user != caller.0.id {
        caller.require_admin()?;
    }
    let tokens = state.store.list_tokens(user).await?;
    Ok(Json(Page {
        items: tokens,
        next_cursor: None,
    }))
}

/// Revokes a token at once.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "users",
    params(("id" = i64, Path, description = "token id")),
    responses((status = 204), (status = 404, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn revoke_token(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, ApiError> {
    let token = state
        .store
        .get_token(TokenId(id))
        .await?
        .filter(|t| t.user_id == caller.0.id || caller.is_admin())
        .ok_or_else(|| ApiError::not_found("token"))?;
    if token.revoked_at.is_some() {
        return Err(ApiError::conflict(
            "already_revoked",
            "the token was already revoked",
        ));
    }
    state
        .store
        .revoke_token(token.id, tutti_store::now())
        .await?;
    state.caches.tokens.clear();
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names_are_short_and_plain() {
        assert!(parse_user_name("ada.l_2-x").is_ok());
        assert!(parse_user_name("").is_err());
        assert!(parse_user_name("a b").is_err());
        assert!(parse_user_name(&"a".repeat(65)).is_err());
    }
}
