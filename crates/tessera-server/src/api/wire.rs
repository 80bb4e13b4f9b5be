//! Wire conventions of the v1 API: the error body, lenient JSON bodies, repeated query keys,
//! Python-style booleans and timestamps (scale-api.md §2–§3.0).

use axum::{
    extract::{FromRequest, Request},
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use serde_json::{Map, Value};
use tessera_store::StoreError;

use super::ErrorBody;

/// A 200 JSON response serialized from borrowed data (a handler's own page of tasks), where
/// `Json` would need an owned value.
pub fn json_response(body: &impl serde::Serialize) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            bytes,
        )
            .into_response(),
        Err(err) => ApiError::internal(err).into_response(),
    }
}

/// Largest JSON body accepted by the API.
pub const MAX_JSON_BYTES: usize = 1024 * 1024;

/// An API failure: a status and a message, rendered as `{"error", "status_code"}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// Seconds to send as `Retry-After` (429s of the per-team budgets).
    pub retry_after: Option<u64>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 429 with `Retry-After: retry_after` seconds.
    pub fn too_many(message: impl Into<String>, retry_after: u64) -> Self {
        Self {
            retry_after: Some(retry_after),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, message)
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }

    pub fn internal(err: impl std::fmt::Display) -> Self {
        tracing::error!(error = %err, "internal error in the v1 API");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal server error; it has been logged.",
        )
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound => ApiError::not_found("Not found."),
            StoreError::TooSoon { retry_in_ms } => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "Too many requests; retry in {} s.",
                    (retry_in_ms + 999) / 1000
                ),
            ),
            other => ApiError::internal(other),
        }
    }
}

impl From<crate::paging::InvalidToken> for ApiError {
    fn from(_: crate::paging::InvalidToken) -> Self {
        ApiError::bad_request("next_token is not valid; pass the value from the previous page.")
    }
}

impl From<tessera_core::Invalid> for ApiError {
    fn from(tessera_core::Invalid(message): tessera_core::Invalid) -> Self {
        ApiError::bad_request(message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(ErrorBody {
                error: self.message,
                status_code: self.status.as_u16(),
            }),
        )
            .into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}

/// A request body that may be empty (the SDK sends `Content-Type: application/json` with no
/// body on cancel and finalize) or any JSON value, whatever the content type.
pub struct JsonBody(pub Option<Value>);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Self::Rejection> {
        // Read at most the JSON limit, whatever larger limit the route allows for uploads.
        let bytes = axum::body::to_bytes(request.into_body(), MAX_JSON_BYTES)
            .await
            .map_err(|_| {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!(
                        "The request body is larger than {} KiB.",
                        MAX_JSON_BYTES / 1024
                    ),
                )
            })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(JsonBody(None));
        }
        serde_json::from_slice(&bytes)
            .map(|v| JsonBody(Some(v)))
            .map_err(|e| ApiError::bad_request(format!("The request body is not valid JSON: {e}.")))
    }
}

impl JsonBody {
    /// The body as a JSON object (an empty one when there was no body).
    pub fn object(self) -> ApiResult<Map<String, Value>> {
        match self.0 {
            None | Some(Value::Null) => Ok(Map::new()),
            Some(Value::Object(map)) => Ok(map),
            Some(_) => Err(ApiError::bad_request(
                "The request body must be a JSON object.",
            )),
        }
    }

    /// The body as a list of strings (the tag endpoints).
    pub fn string_list(self, what: &str) -> ApiResult<Vec<String>> {
        let items = match self.0 {
            Some(Value::Array(items)) => items,
            Some(Value::String(one)) => vec![Value::String(one)],
            _ => {
                return Err(ApiError::bad_request(format!(
                    "The request body must be a JSON list of {what}."
                )))
            }
        };
        items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                _ => Err(ApiError::bad_request(format!(
                    "The request body must be a JSON list of {what}."
                ))),
            })
            .collect()
    }
}

/// The query string as ordered (key, value) pairs: repeated keys are kept, `+` and `%XX`
/// decoded.
pub struct QueryPairs(pub Vec<(String, String)>);

impl QueryPairs {
    pub fn parse(raw: Option<&str>) -> Self {
        QueryPairs(
            url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The last value of `key` (an empty value counts as absent).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, v)| k == key && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `key`, in order.
    pub fn all(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, v)| k == key && !v.is_empty())
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// A boolean, accepting Python's `True`/`False` as well as `true`/`false`/`1`/`0`.
    pub fn flag(&self, key: &str) -> ApiResult<Option<bool>> {
        self.get(key).map(|v| parse_bool(key, v)).transpose()
    }

    /// A time bound (see [`parse_time`]).
    pub fn time(&self, key: &str) -> ApiResult<Option<i64>> {
        self.get(key).map(|v| parse_time(key, v)).transpose()
    }

    /// `limit`: 1–100, default 100.
    pub fn limit(&self) -> ApiResult<i64> {
        match self.get("limit") {
            None => Ok(100),
            Some(raw) => match raw.trim().parse::<i64>() {
                Ok(n) if (1..=100).contains(&n) => Ok(n),
                _ => Err(ApiError::bad_request(format!(
                    "limit must be a whole number from 1 to 100 (got \"{raw}\")."
                ))),
            },
        }
    }
}

pub fn parse_bool(key: &str, raw: &str) -> ApiResult<bool> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(ApiError::bad_request(format!(
            "{key} must be true or false (got \"{raw}\")."
        ))),
    }
}

/// A JSON value as a boolean, leniently (`"true"`, `1`).
pub fn json_bool(value: Option<&Value>) -> bool {
    match value {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => matches!(s.to_ascii_lowercase().as_str(), "true" | "1" | "yes"),
        Some(Value::Number(n)) => n.as_i64().is_some_and(|n| n != 0),
        _ => false,
    }
}

/// ISO-8601 UTC with milliseconds, as Scale renders times: `2019-03-10T08:55:26.624Z`.
pub fn iso(ms: i64) -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

/// Parses the timestamp forms the SDK sends: `2021-04-25`, `2021-04-25T03:14:15Z`,
/// `…-07:00`, naive `2024-05-01T12:34:56.123456` (UTC), `2024-05-01 12:34:56.123456`, or
/// epoch milliseconds. Returns epoch milliseconds.
pub fn parse_time(key: &str, raw: &str) -> ApiResult<i64> {
    use time::{format_description::well_known::Rfc3339, Date, OffsetDateTime, PrimitiveDateTime};
    let raw = raw.trim();
    let invalid = || {
        ApiError::bad_request(format!(
            "{key} must be an ISO-8601 date or time (got \"{raw}\")."
        ))
    };
    if !raw.is_empty() && raw.chars().all(|c| c.is_ascii_digit()) {
        return raw.parse().map_err(|_| invalid());
    }
    let to_ms = |t: OffsetDateTime| {
        i64::try_from(t.unix_timestamp_nanos() / 1_000_000).map_err(|_| invalid())
    };
    let normalized = raw.replacen(' ', "T", 1);
    if let Ok(t) = OffsetDateTime::parse(&normalized, &Rfc3339) {
        return to_ms(t);
    }
    let naive = time::macros::format_description!(
        version = 2,
        "[year]-[month]-[day]T[hour]:[minute][optional [:[second][optional [.[subsecond]]]]]"
    );
    if let Ok(t) = PrimitiveDateTime::parse(&normalized, &naive) {
        return to_ms(t.assume_utc());
    }
    let date = time::macros::format_description!("[year]-[month]-[day]");
    if let Ok(d) = Date::parse(raw, &date) {
        return to_ms(d.midnight().assume_utc());
    }
    Err(invalid())
}

/// Checks a free-text field's length.
pub fn check_len(field: &str, value: &str, max: usize) -> ApiResult<()> {
    if value.chars().count() > max {
        return Err(ApiError::bad_request(format!(
            "{field} must be at most {max} characters."
        )));
    }
    Ok(())
}

/// A string field of a JSON body (absent or null → `None`, anything else but a string → 400).
pub fn string_field(body: &Map<String, Value>, key: &str, max: usize) -> ApiResult<Option<String>> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => {
            check_len(key, s, max)?;
            Ok(Some(s.clone()))
        }
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(ApiError::bad_request(format!("{key} must be a string."))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_and_parse_sdk_forms() {
        assert_eq!(iso(1_552_208_126_624), "2019-03-10T08:55:26.624Z");
        let ms = |s| parse_time("t", s).unwrap();
        assert_eq!(ms("2019-03-10T08:55:26.624Z"), 1_552_208_126_624);
        assert_eq!(ms("2021-04-25"), 1_619_308_800_000);
        assert_eq!(ms("2021-04-25T03:14:15-07:00"), ms("2021-04-25T10:14:15Z"));
        assert_eq!(
            ms("2024-05-01T12:34:56.123456"),
            ms("2024-05-01T12:34:56.123Z")
        );
        assert_eq!(
            ms("2024-05-01 12:34:56.123456"),
            ms("2024-05-01T12:34:56.123Z")
        );
        assert_eq!(ms("1552208126624"), 1_552_208_126_624);
        assert!(parse_time("t", "yesterday").is_err());
    }

    #[test]
    fn tokens_and_queries() {
        use crate::paging::{decode_token, encode_token};
        let t = encode_token(42, "abc");
        assert_eq!(decode_token(&t).unwrap(), (42, "abc".into()));
        assert!(decode_token("!!").is_err());
        let q = QueryPairs::parse(Some("tags=a&tags=b&batch=b+b&x=&flag=True&limit=101"));
        assert_eq!(q.all("tags"), ["a", "b"]);
        assert_eq!(q.get("batch"), Some("b b"));
        assert_eq!(q.get("x"), None);
        assert_eq!(q.flag("flag").unwrap(), Some(true));
        assert!(q.limit().is_err());
    }
}
