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
use tessera_core::{Action, Scope};

use crate::{api::auth::ApiCaller, api::wire::ApiError, state::AppState, web::SignedIn};

/// An action named as a type, so a handler's signature says what it is allowed to do.
pub trait Permission {
    const ACTION: Action;
}

/// One marker type per [`Action`] a route can perform.
pub mod perm {
    use super::{Action, Permission};

    macro_rules! permissions {
        ($($name:ident),* $(,)?) => {$(
            #[doc = concat!("Permission to perform [`Action::", stringify!($name), "`].")]
            pub struct $name;
            impl Permission for $name {
                const ACTION: Action = Action::$name;
            }
        )*};
    }

    permissions!(
        ViewTeam,
        InviteMember,
        ResendInvitation,
        RevokeInvitation,
        RemoveMember,
        ChangeMemberRole,
        EditTeamDetails,
        ViewAuditLog,
        ViewTasks,
        AuditTasks,
        EditProjects,
        ManageApiKeys,
        ViewCallbacks,
        SendCallbacks,
    );
}

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
