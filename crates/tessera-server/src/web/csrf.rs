//! CSRF protection for every state-changing dashboard request.
//!
//! Signed double-submit: the browser holds a random `tessera_csrf` cookie (HttpOnly,
//! SameSite=Lax); each form carries `csrf_token = HMAC(key, cookie)`. A cross-site page can
//! neither read the cookie nor compute the token. The check runs in middleware on every
//! non-GET request outside the API, so no form can forget it.

use axum::{
    body::{to_bytes, Body},
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

fn cookie_value(request: &Request) -> Option<String> {
    let jar = axum_extra::extract::CookieJar::from_headers(request.headers());
    jar.get(CSRF_COOKIE)
        .map(|c| c.value().to_owned())
        .filter(|v| v.len() >= 32 && v.len() <= 64)
}

/// Middleware: issues the cookie when missing, exposes the token, verifies unsafe requests.
pub async fn protect(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let existing = cookie_value(&request);
    let seed = existing.clone().unwrap_or_else(random_token);
    let token = mac(&state.csrf_key, seed.as_bytes());
    let (mut parts, body) = request.into_parts();
    parts.extensions.insert(CsrfToken(token.clone()));

    let unsafe_method = !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
    let request = if unsafe_method {
        let bytes = match to_bytes(body, MAX_FORM_BYTES).await {
            Ok(bytes) => bytes,
            Err(_) => {
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
            let route = parts
                .extensions
                .get::<axum::extract::MatchedPath>()
                .map_or("(unmatched)", |m| m.as_str());
            tracing::warn!(route = %route, "rejected request with a missing or wrong CSRF token");
            let mut response = WebError::BadRequest(
                "This form has expired or did not come from Tessera. Go back, reload the page and try again."
                    .into(),
            )
            .into_response();
            *response.status_mut() = axum::http::StatusCode::FORBIDDEN;
            return response;
        }
        Request::from_parts(parts, Body::from(bytes))
    } else {
        Request::from_parts(parts, body)
    };

    let mut response = next.run(request).await;
    if existing.is_none() {
        let secure = if state.config.secure_cookies() {
            "; Secure"
        } else {
            ""
        };
        let cookie = format!("{CSRF_COOKIE}={seed}; Path=/; HttpOnly; SameSite=Lax{secure}");
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}
