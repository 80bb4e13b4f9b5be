//! Signed-in sessions: a random cookie token whose SHA-256 digest keys a database row.

use axum::{
    extract::FromRequestParts,
    http::{header, request::Parts, HeaderValue},
    response::{IntoResponse, Redirect, Response},
};
use tessera_core::{can, Action, Actor, Mode, Scope};
use tessera_store::User;

use crate::{
    crypto::{random_token, token_digest},
    state::AppState,
    web::{read_flash, CsrfToken, WebError, WebResult},
};

pub const SESSION_COOKIE: &str = "tessera_session";

/// Marks a request that came in under the `/test/…` prefix: the page is a test-mode page.
#[derive(Debug, Clone, Copy)]
pub struct TestUrl;

/// The dashboard pages that show one mode's data. Test-mode pages live under `/test/…` (as in
/// Stripe's dashboard), so a link or a bookmark says which mode it shows.
pub const MODE_SCOPED: [&str; 4] = ["/projects", "/batches", "/tasks", "/callbacks"];

/// Whether `path` is one of the [`MODE_SCOPED`] pages.
pub fn is_mode_scoped(path: &str) -> bool {
    MODE_SCOPED.iter().any(|prefix| {
        path.strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

/// `path` as a page of `mode`: test-mode pages carry the `/test` prefix.
pub fn in_mode(path: &str, mode: Mode) -> String {
    let bare = path
        .strip_prefix("/test")
        .filter(|rest| rest.is_empty() || rest.starts_with('/'))
        .unwrap_or(path);
    match mode {
        Mode::Test if is_mode_scoped(bare) => format!("/test{bare}"),
        _ if bare.is_empty() => "/".to_owned(),
        _ => bare.to_owned(),
    }
}

/// The signed-in person making this request, with what the pages around them need.
pub struct SignedIn {
    pub user: User,
    pub actor: Actor,
    pub team_name: Option<String>,
    pub session_hash: String,
    pub csrf: CsrfToken,
    pub flash: Option<super::Flash>,
    /// Which world the dashboard shows: test under `/test/…`, otherwise the mode this person
    /// opened last (kept with their account, so it follows them across browsers).
    pub mode: Mode,
    /// The mode remembered with the account (what a switch changes).
    pub stored_mode: Mode,
    /// Two-factor sign-in is on for them.
    pub two_factor_enabled: bool,
    /// Their team requires two-factor sign-in and they have not set it up: the dashboard
    /// offers nothing but the set-up (and signing out) until they do.
    pub must_set_up_two_factor: bool,
}

impl SignedIn {
    /// Asks the policy whether this person may perform `action` in their own team, and
    /// returns the scope (that team, in the dashboard's mode) the store needs for it.
    pub fn authorize(&self, action: Action) -> WebResult<Scope> {
        let team = self.user.team_id.as_deref().ok_or(WebError::Forbidden)?;
        Scope::authorized(&self.actor, action, team, self.mode).ok_or(WebError::Forbidden)
    }

    /// The scope of `action` in the mode the dashboard does not show: where an object that is
    /// "not found" here may be (the page then offers to switch instead of a dead end).
    pub fn other_mode_scope(&self, action: Action) -> Option<Scope> {
        let team = self.user.team_id.as_deref()?;
        Scope::authorized(&self.actor, action, team, self.mode.other())
    }

    /// Whether this person may perform `action` in their own team (what a page offers).
    pub fn may(&self, action: Action) -> bool {
        self.authorize(action).is_ok()
    }

    /// The labeling scope this person works in, if the policy lets them label: their team's
    /// queue (a team `labeler`) or every team's (platform workforce).
    pub fn labeler_scope(&self) -> Option<tessera_store::LabelerScope> {
        tessera_store::LabelerScope::authorized(&self.actor)
    }

    /// Asks the policy whether this person may label a task of `team_id`.
    pub fn authorize_labeling(&self, team_id: &str) -> WebResult<()> {
        if can(&self.actor, Action::LabelTasks, Some(team_id)) {
            Ok(())
        } else {
            Err(WebError::Forbidden)
        }
    }

    /// The live scope of `team_id` for a platform action on it (staff billing), as the policy
    /// grants it: staff act on any team, nobody else does.
    pub fn authorize_team(&self, action: Action, team_id: &str) -> WebResult<Scope> {
        Scope::authorized(&self.actor, action, team_id, tessera_core::Mode::Live)
            .ok_or(WebError::StaffOnly)
    }

    /// Asks the policy about a platform (staff) action.
    pub fn authorize_platform(&self, action: Action) -> WebResult<()> {
        if can(&self.actor, action, None) {
            Ok(())
        } else {
            Err(WebError::StaffOnly)
        }
    }
}

/// The actor the policy sees for `user`.
pub fn actor_for(user: &User) -> Actor {
    match (&user.team_id, user.role, user.is_staff) {
        (_, _, true) => Actor::Staff {
            user_id: user.id.clone(),
        },
        _ if user.is_workforce => Actor::Workforce {
            user_id: user.id.clone(),
        },
        (Some(team_id), Some(role), false) => Actor::TeamUser {
            user_id: user.id.clone(),
            team_id: team_id.clone(),
            role,
        },
        _ => Actor::Teamless {
            user_id: user.id.clone(),
        },
    }
}

pub(crate) async fn load(parts: &mut Parts, state: &AppState) -> WebResult<Option<SignedIn>> {
    let Some(token) = session_token(parts, state) else {
        return Ok(None);
    };
    let session_hash = token_digest(&token);
    let idle_ms = i64::try_from(state.config.session_idle_timeout.as_millis()).unwrap_or(i64::MAX);
    let Some(tessera_store::SessionUser {
        user,
        dashboard_mode,
        two_factor_enabled,
        team_requires_two_factor,
    }) = state.store.session_user(&session_hash, idle_ms).await?
    else {
        return Ok(None);
    };
    let team_name = match user.team_id.as_deref() {
        // Before any authorisation: the signed-in user's own team, named in the layout.
        Some(team_id) => Some(state.store.cross_tenant().get_team(team_id).await?.name),
        None => None,
    };
    let csrf = CsrfToken::from_request_parts(parts, state).await?;
    let test_url = parts.extensions.get::<TestUrl>().is_some();
    // The address says the mode: `/test/…` is test; a form sent to a live address of a mode
    // page acts live, whatever another tab opened since (GETs of such addresses are sent to
    // their `/test/` twin below when the person is in test mode).
    let mode = if test_url {
        Mode::Test
    } else if parts.method != axum::http::Method::GET && is_mode_scoped(parts.uri.path()) {
        Mode::Live
    } else {
        dashboard_mode
    };
    if test_url && dashboard_mode != Mode::Test {
        // Opening a test page is opening test mode: the person's next page follows it.
        state.store.set_dashboard_mode(&user.id, Mode::Test).await?;
    }
    Ok(Some(SignedIn {
        actor: actor_for(&user),
        user,
        team_name,
        session_hash,
        csrf,
        flash: read_flash(parts),
        mode,
        stored_mode: if test_url { Mode::Test } else { dashboard_mode },
        two_factor_enabled,
        must_set_up_two_factor: team_requires_two_factor && !two_factor_enabled,
    }))
}

/// Where a member whose team requires two-factor sign-in sets it up; the only dashboard
/// page open to them until they have.
pub const TWO_FACTOR_SETUP_PATH: &str = "/profile/two-factor";

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match load(parts, state).await {
            Ok(Some(signed_in))
                if signed_in.must_set_up_two_factor
                    && !parts.uri.path().starts_with(TWO_FACTOR_SETUP_PATH) =>
            {
                Err(super::redirect_with_warning(
                    TWO_FACTOR_SETUP_PATH,
                    "Your team requires two-factor authentication: set it up to continue.",
                ))
            }
            Ok(Some(signed_in)) => {
                // A live address of a page whose person is in test mode: show it as a test page,
                // at its `/test/…` address.
                let test_url = parts.extensions.get::<TestUrl>().is_some();
                if parts.method == axum::http::Method::GET
                    && !test_url
                    && signed_in.mode == Mode::Test
                    && is_mode_scoped(parts.uri.path())
                {
                    let target = match parts.uri.query() {
                        Some(query) => format!("/test{}?{query}", parts.uri.path()),
                        None => format!("/test{}", parts.uri.path()),
                    };
                    return Err(Redirect::to(&target).into_response());
                }
                Ok(signed_in)
            }
            // A form sent without a session: sign-in comes back to the page, not to the form's
            // address (which answers POST only); the page's script restores the draft.
            Ok(None) if parts.method != axum::http::Method::GET => {
                Err(Redirect::to("/login").into_response())
            }
            Ok(None) => {
                // Under `/test/…` the router sees the path without its prefix.
                let next = parts
                    .extensions
                    .get::<axum::extract::OriginalUri>()
                    .map_or_else(|| parts.uri.path(), |original| original.0.path());
                let target: String =
                    url::form_urlencoded::byte_serialize(next.as_bytes()).collect();
                Err(Redirect::to(&format!("/login?next={target}")).into_response())
            }
            Err(err) => Err(err.into_response()),
        }
    }
}

/// Maybe signed in (login and sign-up pages, the invitation page).
pub struct Viewer(pub Option<SignedIn>);

impl FromRequestParts<AppState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        load(parts, state)
            .await
            .map(Viewer)
            .map_err(IntoResponse::into_response)
    }
}

/// The session cookie's token, if the request carries one (valid or not).
pub fn session_token(parts: &Parts, state: &AppState) -> Option<String> {
    let jar = axum_extra::extract::CookieJar::from_headers(&parts.headers);
    jar.get(&state.config.cookie_name(SESSION_COOKIE))
        .map(|c| c.value().to_owned())
        .filter(|v| !v.is_empty())
}

/// Starts a session for `user_id` and returns the `Set-Cookie` headers to send: the session
/// cookie, and a fresh CSRF cookie (tokens from before the sign-in stop working).
pub async fn start(
    state: &AppState,
    user_id: &str,
    ip: &str,
    user_agent: &str,
) -> WebResult<Vec<HeaderValue>> {
    let token = random_token();
    let ttl = state.config.session_ttl;
    let expires_at =
        tessera_store::now_ms() + i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 2);
    let user_agent: String = user_agent.chars().take(300).collect();
    state
        .store
        .create_session(&token_digest(&token), user_id, expires_at, ip, &user_agent)
        .await?;
    let secure = if state.config.secure_cookies() {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{}={token}; Path=/; Max-Age={}; HttpOnly; SameSite=Lax{secure}",
        state.config.cookie_name(SESSION_COOKIE),
        ttl.as_secs()
    );
    let session = HeaderValue::from_str(&cookie).map_err(|e| WebError::Internal(e.into()))?;
    Ok(vec![session, crate::web::csrf::fresh_cookie(state)])
}

/// A `Set-Cookie` header that removes the session cookie.
pub fn clear_cookie(state: &AppState) -> (header::HeaderName, HeaderValue) {
    let secure = if state.config.secure_cookies() {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax{secure}",
        state.config.cookie_name(SESSION_COOKIE)
    );
    (
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).expect("cookie names are header-safe"),
    )
}
