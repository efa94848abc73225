//! Management API auth: `Authorization: Bearer <access token>` and `New-Api-User: <user id>`,
//! which must name the token's owner.

use super::ManageError;
use crate::domain::secrets::hash_secret;
use crate::state::AppState;
use crate::store::{Role, User};
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

/// A signed-in user of the management API.
pub struct ApiUser(pub User);

/// A signed-in admin.
pub struct Admin;

impl FromRequestParts<AppState> for ApiUser {
    type Rejection = ManageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ManageError> {
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
        };
        let token = header(AUTHORIZATION.as_str())
            .map(|v| v.strip_prefix("Bearer ").unwrap_or(v).trim())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ManageError::Unauthorized("missing access token".to_string()))?;
        let claimed: i64 = header("new-api-user")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| {
                ManageError::Unauthorized("missing or invalid New-Api-User header".to_string())
            })?;
        let user = state
            .store
            .user_by_token_hash(&hash_secret(token))
            .await?
            .filter(|u| u.id == claimed)
            .ok_or_else(|| {
                ManageError::Unauthorized("access token and New-Api-User do not match".to_string())
            })?;
        if !user.enabled {
            return Err(ManageError::Unauthorized("user is disabled".to_string()));
        }
        Ok(ApiUser(user))
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ManageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ManageError> {
        let ApiUser(user) = ApiUser::from_request_parts(parts, state).await?;
        if user.role != Role::Admin {
            return Err(ManageError::Forbidden("this needs an admin".to_string()));
        }
        Ok(Admin)
    }
}
