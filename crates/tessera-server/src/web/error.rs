//! The dashboard's error type: every failure becomes a page with the right status, and
//! internal details stay in the log.

use askama::Template;
use axum::{
    http::StatusCode,
    response::{Html, IntoResponse, Response},
};
use tessera_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("not found")]
    NotFound,
    #[error("forbidden")]
    Forbidden,
    /// 403 with its own explanation (a CSRF refusal).
    #[error("{0}")]
    Refused(String),
    /// A platform staff page opened by someone who is not staff.
    #[error("staff only")]
    StaffOnly,
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    TooManyRequests(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

pub type WebResult<T> = Result<T, WebError>;

impl From<StoreError> for WebError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound => WebError::NotFound,
            StoreError::Unique(_) | StoreError::Conflict(_) => WebError::Conflict(
                "That changed while you were working on it. Reload the page and try again.".into(),
            ),
            StoreError::TooSoon { retry_in_ms } => WebError::TooManyRequests(format!(
                "Please wait {} before trying again.",
                super::humanize_ms(retry_in_ms)
            )),
            other => WebError::Internal(anyhow::Error::new(other)),
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    status: u16,
    heading: &'a str,
    message: &'a str,
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let (status, heading, message) = match &self {
            WebError::NotFound => (
                StatusCode::NOT_FOUND,
                "Not found",
                "There is nothing here, or it is not yours to see.".to_owned(),
            ),
            WebError::Forbidden => (
                StatusCode::FORBIDDEN,
                "Not allowed",
                "Your role in this team does not allow that. Ask your team's Admin or a Manager."
                    .to_owned(),
            ),
            WebError::Refused(m) => (StatusCode::FORBIDDEN, "Not allowed", m.clone()),
            WebError::StaffOnly => (
                StatusCode::FORBIDDEN,
                "Platform staff only",
                "This is a page of the staff console, for the people who run this Tessera installation; no team role opens it.".to_owned(),
            ),
            WebError::BadRequest(m) => {
                (StatusCode::BAD_REQUEST, "Something is not right", m.clone())
            }
            WebError::Conflict(m) => (StatusCode::CONFLICT, "Changed meanwhile", m.clone()),
            WebError::TooManyRequests(m) => (StatusCode::TOO_MANY_REQUESTS, "Slow down", m.clone()),
            WebError::Internal(err) => {
                tracing::error!(error = ?err, "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "An internal error occurred; it has been logged. Please try again.".to_owned(),
                )
            }
        };
        let page = ErrorPage {
            status: status.as_u16(),
            heading,
            message: &message,
        };
        let mut response = match page.render() {
            Ok(html) => (status, Html(html)).into_response(),
            Err(_) => (status, message.clone()).into_response(),
        };
        response.extensions_mut().insert(ErrorPageInfo {
            heading: heading.to_owned(),
            message,
        });
        response
    }
}

/// What an error page says, kept on the response so that `framed_errors` can show it again
/// inside the signed-in layout (the error itself does not know who is asking).
#[derive(Clone, Debug)]
pub struct ErrorPageInfo {
    pub heading: String,
    pub message: String,
}
