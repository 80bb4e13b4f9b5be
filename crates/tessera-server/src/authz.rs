//! Authorisation as a type: a handler that names `Authorized<perm::ViewTasks>` (API) or
//! `Authorized<perm::ViewTasks, SignedIn>` (dashboard) among its arguments is only called once
//! the policy has allowed that action, and receives the [`Scope`] every tenant store method
//! requires. Forgetting the check leaves the handler without a `Scope`, which does not compile.
//!
//! Handlers whose action depends on the request (a page that shows more to a Manager) call
//! [`ApiCaller::authorize`] / [`SignedIn::authorize`] instead; both return the same `Scope`.

use std::marker::PhantomData;

use axum::{
    extract::FromRequestParts,
    http::request::Parts,
    response::{IntoResponse, Response},
};
use tessera_core::Scope;

use crate::{api::auth::ApiCaller, api::wire::ApiError, state::AppState, web::SignedIn};

pub use tessera_core::policy::{perm, Permission};

/// A caller (`C`: [`ApiCaller`] or [`SignedIn`]) the policy allowed to perform `P` in
/// `scope`, their own team in their current mode.
pub struct Authorized<P, C = ApiCaller> {
    pub caller: C,
    pub scope: Scope,
    permission: PhantomData<fn() -> P>,
}

impl<P: Permission + 'static> FromRequestParts<AppState> for Authorized<P, ApiCaller> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let caller = ApiCaller::from_request_parts(parts, state).await?;
        let scope = caller.authorize(P::ACTION)?;
        Ok(Self {
            caller,
            scope,
            permission: PhantomData,
        })
    }
}

impl<P: Permission + 'static> FromRequestParts<AppState> for Authorized<P, SignedIn> {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let caller = SignedIn::from_request_parts(parts, state).await?;
        let scope = caller
            .authorize(P::ACTION)
            .map_err(IntoResponse::into_response)?;
        Ok(Self {
            caller,
            scope,
            permission: PhantomData,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// Request code gets its `Scope` from the policy only: the operator elevation (the CLI's and
    /// tests' elevation) must not appear anywhere in the server crate.
    #[test]
    fn the_server_never_elevates_to_an_operator_scope() {
        let needle = concat!("Scope::", "operator");
        let mut offenders = Vec::new();
        let mut dirs = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("src")];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "rs")
                    && std::fs::read_to_string(&path).unwrap().contains(needle)
                {
                    offenders.push(path.display().to_string());
                }
            }
        }
        assert!(
            offenders.is_empty(),
            "{needle} in request code: {offenders:?}"
        );
    }
}
