//! CSRF protection for every state-changing dashboard request.
//!
//! Signed double-submit bound to the session: the browser holds a random `tessera_csrf`
//! cookie (HttpOnly, SameSite=Lax; `__Host-` prefixed under https); each form carries
//! `csrf_token = HMAC(key, cookie ‖ session)`. A cross-site page can neither read the cookies
//! nor compute the token, and a token obtained in another session (an attacker's own, planted
//! with a tossed cookie) does not verify in the victim's. The cookie is replaced at sign-in.
//! The check runs in middleware on every non-GET request outside the API, so no form can
//! forget it.

use axum::{
    body::Body,
    extract::{FromRequestParts, Request, State},
    http::{header, request::Parts, HeaderValue, Method},
    middleware::Next,
    response::{IntoResponse, Response},
};

use crate::{
    crypto::{mac, random_token, secure_eq},
    state::AppState,
    web::WebError,
};

const CSRF_COOKIE: &str = "tessera_csrf";
/// Largest dashboard form body accepted.
pub const MAX_FORM_BYTES: usize = 64 * 1024;
/// Largest labeling form body accepted: a labeler's response may be as large as the API
/// takes (1 MiB of JSON), and form encoding writes most JSON punctuation as `%XX` (up to three
/// bytes for one), plus room for the other fields.
pub const MAX_RESPONSE_FORM_BYTES: usize =
    3 * tessera_core::tasks::MAX_RESPONSE_BYTES + MAX_FORM_BYTES;

/// Routes whose form carries a labeler's response: they take [`MAX_RESPONSE_FORM_BYTES`], and
/// a larger form is not refused here but handed on, body emptied and unverified, marked
/// [`OversizedForm`], so the page comes back with the editor and a message instead of a dead
/// end. Their handlers must take the form through an extractor that checks the mark and
/// changes nothing for a marked request (see `labeling::Submitted`).
pub const RESPONSE_FORM_ROUTES: [&str; 2] = ["/label/{id}", "/label/{id}/extend"];

/// Marks a request to a [`RESPONSE_FORM_ROUTES`] route whose form was over the limit (so
/// neither read nor CSRF-checked): the handler shows the page with a message and writes
/// nothing.
#[derive(Clone, Copy, Debug)]
pub struct OversizedForm {
    /// The limit, in bytes.
    pub limit: usize,
}

/// The token to embed in this page's forms.
#[derive(Clone, Debug)]
pub struct CsrfToken(pub String);

impl<S: Send + Sync> FromRequestParts<S> for CsrfToken {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<CsrfToken>()
            .cloned()
            .ok_or_else(|| WebError::Internal(anyhow::anyhow!("CSRF middleware not installed")))
    }
}

fn cookie_value(request: &Request, state: &AppState) -> Option<String> {
    let jar = axum_extra::extract::CookieJar::from_headers(request.headers());
    jar.get(&state.config.cookie_name(CSRF_COOKIE))
        .map(|c| c.value().to_owned())
        .filter(|v| v.len() >= 32 && v.len() <= 64)
}

/// The token for a cookie seed in the session the request carries (none before sign-in).
fn token_for(state: &AppState, seed: &str, session: Option<&str>) -> String {
    let session = session.map(crate::crypto::token_digest).unwrap_or_default();
    mac(&state.csrf_key, format!("{seed}|{session}").as_bytes())
}

fn cookie_header(state: &AppState, seed: &str) -> HeaderValue {
    let secure = if state.config.secure_cookies() {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{}={seed}; Path=/; HttpOnly; SameSite=Lax{secure}",
        state.config.cookie_name(CSRF_COOKIE)
    );
    HeaderValue::from_str(&cookie).expect("random tokens are header-safe")
}

/// A `Set-Cookie` for a new CSRF seed, sent at sign-in.
pub fn fresh_cookie(state: &AppState) -> HeaderValue {
    cookie_header(state, &random_token())
}

/// Reads a form body of at most `limit` bytes; `None` when it is larger (or the client broke
/// off). A larger body is still read to its end, and thrown away, so the answer reaches a
/// browser that is still sending (closing a connection with unread data resets it); the
/// server-wide body limit and request timeout bound that.
async fn read_form(mut body: Body, limit: usize) -> Option<axum::body::Bytes> {
    use axum::body::HttpBody;
    let mut bytes = Vec::new();
    let mut over = false;
    while let Some(frame) =
        std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await
    {
        let Ok(data) = frame.ok()?.into_data() else {
            continue;
        };
        if !over && bytes.len() + data.len() <= limit {
            bytes.extend_from_slice(&data);
        } else if !over {
            over = true;
            bytes = Vec::new();
        }
    }
    (!over).then(|| bytes.into())
}

/// Middleware: issues the cookie when missing, exposes the token, verifies unsafe requests.
pub async fn protect(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let existing = cookie_value(&request, &state);
    let seed = existing.clone().unwrap_or_else(random_token);
    let (mut parts, body) = request.into_parts();
    let session = crate::web::session::session_token(&parts, &state);
    let token = token_for(&state, &seed, session.as_deref());
    parts.extensions.insert(CsrfToken(token.clone()));

    // Unknown /v1/ paths reach the dashboard's fallback (a JSON 404): API calls carry no form.
    let unsafe_method = !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS)
        && !parts.uri.path().starts_with("/v1/");
    let request = if unsafe_method {
        let route = parts
            .extensions
            .get::<axum::extract::MatchedPath>()
            .map_or("(unmatched)", |m| m.as_str());
        let carries_response = RESPONSE_FORM_ROUTES.contains(&route);
        let limit = if carries_response {
            MAX_RESPONSE_FORM_BYTES
        } else {
            MAX_FORM_BYTES
        };
        let bytes = match read_form(body, limit).await {
            Some(bytes) => bytes,
            None if carries_response => {
                parts.extensions.insert(OversizedForm { limit });
                return next.run(Request::from_parts(parts, Body::empty())).await;
            }
            None => {
                return WebError::BadRequest(format!(
                    "The form is too large (the limit is {} KiB).",
                    MAX_FORM_BYTES / 1024
                ))
                .into_response()
            }
        };
        let sent = parts
            .headers
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .or_else(|| {
                url::form_urlencoded::parse(&bytes)
                    .find(|(k, _)| k == "csrf_token")
                    .map(|(_, v)| v.into_owned())
            });
        let valid = existing.is_some() && sent.is_some_and(|sent| secure_eq(&sent, &token));
        if !valid {
            // The route template only: paths such as /invite/<token> carry credentials.
            tracing::warn!(route = %route, "rejected request with a missing or wrong CSRF token");
            return WebError::Refused(
                "This form has expired or did not come from Tessera. Go back, reload the page and try again."
                    .into(),
            )
            .into_response();
        }
        Request::from_parts(parts, Body::from(bytes))
    } else {
        Request::from_parts(parts, body)
    };

    let mut response = next.run(request).await;
    // A handler that signed someone in set a fresh cookie already.
    let replaced = response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .any(|v| v.to_str().is_ok_and(|v| v.contains(CSRF_COOKIE)));
    if existing.is_none() && !replaced {
        response
            .headers_mut()
            .append(header::SET_COOKIE, cookie_header(&state, &seed));
    }
    response
}
