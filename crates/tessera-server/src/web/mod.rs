//! What every dashboard page shares: the layout, errors, sessions, CSRF and flash messages.

pub mod csrf;
pub mod error;
pub mod session;

use askama::Template;
use axum::{
    extract::{ConnectInfo, FromRef, FromRequestParts},
    http::{header, request::Parts, HeaderValue, StatusCode},
    response::{Html, IntoResponse, Redirect, Response},
};
use tessera_core::{can, Action, Actor, Invalid};

use crate::state::AppState;

pub use csrf::CsrfToken;
pub use error::{ErrorPageInfo, WebError, WebResult};
pub use session::{SignedIn, Viewer};

const FLASH_COOKIE: &str = "tessera_flash";

/// A one-shot message for the page after a redirect. A warning (something asked for was not
/// done: "sent moments ago, resend in …") is shown in the warning style, never in the green
/// success style.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flash {
    pub text: String,
    pub warning: bool,
}

impl std::fmt::Display for Flash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// The cookie value starts with the kind, so one cookie carries both and they are set and
/// cleared together.
const FLASH_INFO: &str = "i:";
const FLASH_WARNING: &str = "w:";

/// One link in the top navigation or the profile menu.
pub struct NavLink {
    pub href: String,
    pub label: &'static str,
    pub active: bool,
}

/// The frame around every page: title, navigation for the signed-in person, CSRF token for
/// the forms on the page, and the one-shot flash message.
pub struct Layout {
    pub title: String,
    /// The work pages (Projects, Tasks, Callbacks, Labeling): the main navigation.
    pub nav: Vec<NavLink>,
    /// The account pages (Your Team, API Keys, Billing, …, Profile): the profile menu at the
    /// top right, as the product our customers know puts them.
    pub menu: Vec<NavLink>,
    pub user_label: Option<String>,
    pub team_name: Option<String>,
    pub csrf: String,
    pub flash: Option<Flash>,
    /// The live/test switch, for people who see tasks: the current mode.
    pub mode: Option<&'static str>,
    pub test_mode: bool,
    /// Where the switch returns to.
    pub path: String,
    /// The signed-in person's address while it is unverified: every page carries the banner
    /// saying what that blocks, with "Resend the link".
    pub unverified_email: Option<String>,
}

impl Layout {
    /// Layout for someone not signed in.
    pub fn anonymous(title: impl Into<String>, csrf: &CsrfToken, flash: Option<Flash>) -> Self {
        Self {
            title: title.into(),
            nav: Vec::new(),
            menu: Vec::new(),
            user_label: None,
            team_name: None,
            csrf: csrf.0.clone(),
            flash,
            mode: None,
            test_mode: false,
            path: String::new(),
            unverified_email: None,
        }
    }

    /// Layout for a signed-in person: the navigation offers only what the policy allows.
    /// `active` is the page's own path (without the `/test` prefix).
    pub fn signed_in(title: impl Into<String>, who: &SignedIn, active: &str) -> Self {
        let team = who.user.team_id.as_deref();
        let allowed = |action| can(&who.actor, action, team);
        let link = |href: &'static str, label: &'static str| NavLink {
            href: session::in_mode(href, who.mode),
            label,
            active: href == active,
        };
        let mut nav = Vec::new();
        let mut menu = Vec::new();
        // Until a required second factor is set up, no page but the set-up opens.
        let allowed = |action| allowed(action) && !who.must_set_up_two_factor;
        if allowed(Action::ViewTasks) {
            nav.push(link("/", "Get started"));
            nav.push(link("/projects", "Projects"));
            nav.push(link("/tasks", "Tasks"));
        }
        if allowed(Action::ViewCallbacks) {
            nav.push(link("/callbacks", "Callbacks"));
        }
        if who.labeler_scope().is_some() && !who.must_set_up_two_factor {
            nav.push(link("/label", "Labeling"));
        }
        if matches!(who.actor, Actor::Staff { .. }) {
            nav.push(link("/staff", "Staff console"));
        }
        if allowed(Action::ViewTeam) {
            menu.push(link("/team", "Your Team"));
        }
        if allowed(Action::ManageApiKeys) {
            menu.push(link("/keys", "API Keys"));
        }
        if allowed(Action::ViewBilling) {
            menu.push(link("/billing", "Billing"));
        }
        if allowed(Action::ManageIntegrations) {
            menu.push(link("/integrations", "Integrations"));
        }
        if allowed(Action::EditTeamDetails) {
            menu.push(link("/team/details", "Team details"));
        }
        if allowed(Action::ViewAuditLog) {
            menu.push(link("/team/audit", "Audit log"));
        }
        if !who.must_set_up_two_factor {
            menu.push(link("/profile", "Profile"));
        }
        Self {
            title: title.into(),
            nav,
            menu,
            user_label: Some(if who.user.name.is_empty() {
                who.user.email.clone()
            } else {
                who.user.name.clone()
            }),
            team_name: who.team_name.clone(),
            csrf: who.csrf.0.clone(),
            flash: who.flash.clone(),
            mode: allowed(Action::ViewTasks).then(|| who.mode.as_str()),
            test_mode: who.mode == tessera_core::Mode::Test,
            path: active.to_owned(),
            unverified_email: (!who.user.owns_address()).then(|| who.user.email.clone()),
        }
    }

    /// The prefix of the mode's pages: `/test` in test mode, so a page's links and forms stay
    /// in the mode it shows.
    pub fn base(&self) -> &'static str {
        if self.test_mode && self.mode.is_some() {
            "/test"
        } else {
            ""
        }
    }

    /// Whether the page sits in the profile menu (the menu's button is then marked current).
    pub fn menu_active(&self) -> bool {
        self.menu.iter().any(|link| link.active)
    }
}

/// What is wrong with a form's fields, every field at once: each message is shown next to its
/// field (`aria-invalid`, `aria-describedby` pointing at it), not one at a time at the top.
#[derive(Debug, Clone, Default)]
pub struct FieldErrors(Vec<(&'static str, String)>);

impl FieldErrors {
    /// Keeps `result`'s value, or its message for `field`.
    pub fn check<T>(&mut self, field: &'static str, result: Result<T, Invalid>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(Invalid(message)) => {
                self.0.push((field, message));
                None
            }
        }
    }

    /// The message for `field`, if it has one (for the templates).
    pub fn get(&self, field: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(name, _)| *name == field)
            .map(|(_, message)| message.as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The line above the form: how many fields need attention.
    pub fn summary(&self) -> String {
        match self.0.len() {
            1 => "One field needs your attention.".to_owned(),
            n => format!("{n} fields need your attention."),
        }
    }
}

#[derive(Template)]
#[template(path = "notice.html")]
struct NoticePage {
    layout: Layout,
    heading: String,
    message: String,
}

/// A page with a heading and one message, for someone not signed in (invitation links,
/// sign-up outcomes).
pub fn notice(csrf: &CsrfToken, status: StatusCode, heading: &str, message: String) -> Response {
    render(
        status,
        &NoticePage {
            layout: Layout::anonymous(heading, csrf, None),
            heading: heading.to_owned(),
            message,
        },
    )
}

#[derive(Template)]
#[template(path = "other_mode.html")]
struct OtherModePage {
    layout: Layout,
    what: String,
    /// The mode the object is in.
    mode: &'static str,
    mode_label: &'static str,
    /// The object's page, without the mode prefix.
    path: String,
}

/// The answer to opening a `what` (e.g. "task") that is not in the mode shown but is in the
/// other one: an offer to switch to that mode and open it, instead of "Not found".
pub fn other_mode_offer(who: &SignedIn, what: &str, path: &str) -> Response {
    let mode = who.mode.other();
    render(
        StatusCode::NOT_FOUND,
        &OtherModePage {
            layout: Layout::signed_in(format!("This {what} is in {mode} mode"), who, ""),
            what: what.to_owned(),
            mode: mode.as_str(),
            mode_label: mode.label(),
            path: path.to_owned(),
        },
    )
}

#[derive(Template)]
#[template(path = "error_framed.html")]
struct FramedErrorPage {
    layout: Layout,
    status: u16,
    heading: String,
    message: String,
}

/// Middleware: an error page shown to someone signed in keeps the top bar (navigation, mode
/// switch, sign-out), so a 403 or 404 is not a dead end. Only error responses pay for the
/// session lookup.
pub async fn framed_errors(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let has_cookies = request.headers().contains_key(header::COOKIE);
    let (probe, body) = request.into_parts();
    let mut saved = axum::http::Request::new(());
    *saved.uri_mut() = probe.uri.clone();
    *saved.headers_mut() = probe.headers.clone();
    if let Some(csrf) = probe.extensions.get::<CsrfToken>() {
        saved.extensions_mut().insert(csrf.clone());
    }
    let response = next
        .run(axum::extract::Request::from_parts(probe, body))
        .await;
    let Some(info) = response.extensions().get::<ErrorPageInfo>().cloned() else {
        return response;
    };
    if !has_cookies {
        return response;
    }
    let (mut parts, ()) = saved.into_parts();
    match session::load(&mut parts, &state).await {
        Ok(Some(who)) => render(
            response.status(),
            &FramedErrorPage {
                layout: Layout::signed_in(info.heading.clone(), &who, ""),
                status: response.status().as_u16(),
                heading: info.heading,
                message: info.message,
            },
        ),
        _ => response,
    }
}

/// Renders a template into an HTML response with `status`.
pub fn render(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(err) => WebError::Internal(anyhow::anyhow!("template: {err}")).into_response(),
    }
}

/// 200 OK with the page.
pub fn page(page: &impl Template) -> Response {
    render(StatusCode::OK, page)
}

/// Redirects (303, so the browser follows with GET) and shows `message` on the next page.
pub fn redirect_with_flash(to: &str, message: &str) -> Response {
    flash_redirect(to, FLASH_INFO, message)
}

/// Like [`redirect_with_flash`], in the warning style: for outcomes where what was asked was
/// not done (a cooldown, a budget used up).
pub fn redirect_with_warning(to: &str, message: &str) -> Response {
    flash_redirect(to, FLASH_WARNING, message)
}

fn flash_redirect(to: &str, kind: &str, message: &str) -> Response {
    let mut response = Redirect::to(to).into_response();
    let value: String =
        url::form_urlencoded::byte_serialize(format!("{kind}{message}").as_bytes()).collect();
    let cookie = format!("{FLASH_COOKIE}={value}; Path=/; Max-Age=60; HttpOnly; SameSite=Lax");
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

/// Reads the flash message set by the previous response, if any.
pub fn read_flash(parts: &Parts) -> Option<Flash> {
    let jar = axum_extra::extract::CookieJar::from_headers(&parts.headers);
    let raw = jar.get(FLASH_COOKIE)?.value().to_owned();
    let decoded: String = url::form_urlencoded::parse(format!("m={raw}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())?;
    let (warning, text) = match decoded.strip_prefix(FLASH_WARNING) {
        Some(text) => (true, text),
        None => (false, decoded.strip_prefix(FLASH_INFO).unwrap_or(&decoded)),
    };
    (!text.is_empty()).then(|| Flash {
        text: text.to_owned(),
        warning,
    })
}

/// Middleware: once a page has been shown with the flash message, clear it.
pub async fn clear_flash(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let had_flash = request
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .any(|v| v.to_str().is_ok_and(|s| s.contains(FLASH_COOKIE)));
    let is_get = request.method() == axum::http::Method::GET;
    let mut response = next.run(request).await;
    if had_flash && is_get && response.status().is_success() {
        response.headers_mut().append(
            header::SET_COOKIE,
            HeaderValue::from_static("tessera_flash=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax"),
        );
    }
    response
}

/// Turns the framework's "Failed to deserialize …: duplicate field `status`" into a sentence
/// a person can act on, naming the parameter.
fn explain_rejection(raw: &str, what: &str) -> String {
    // The phrase may follow a prefix or two ("Failed to deserialize query string: next_token: …").
    let after = |phrase: &str| {
        raw.find(phrase)
            .and_then(|at| raw[at + phrase.len()..].split('`').nth(1))
            .map(str::to_owned)
    };
    if let Some(field) = after("duplicate field") {
        return format!("The {what} gives \"{field}\" more than once; give it once.");
    }
    if let Some(field) = after("unknown field") {
        return format!("The {what} has a parameter Tessera does not know: \"{field}\".");
    }
    if let Some(value) = after("unknown variant") {
        return format!("The {what} has a value Tessera does not know: \"{value}\".");
    }
    if let Some(field) = after("Invalid UTF-8 in") {
        return format!("The {what} is not valid: \"{field}\" is not text (invalid UTF-8).");
    }
    if let Some(field) = after("missing field") {
        return format!("The {what} lacks \"{field}\".");
    }
    let detail = raw.split_once(": ").map_or(raw, |(_, d)| d);
    format!("The {what} is not valid: {}.", detail.replace('`', "\""))
}

/// `axum::extract::Query` whose rejection is the dashboard's error page naming the bad
/// parameter (the framework answers text/plain).
pub struct Query<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(q)| Query(q))
            .map_err(|e| WebError::BadRequest(explain_rejection(&e.body_text(), "address")))
    }
}

/// `axum::extract::Path` whose rejection is the dashboard's error page.
pub struct Path<T>(pub T);

impl<T: serde::de::DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(p)| Path(p))
            .map_err(|e| WebError::BadRequest(explain_rejection(&e.body_text(), "address")))
    }
}

/// `axum::Form` whose rejection is the dashboard's error page.
pub struct Form<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> axum::extract::FromRequest<S> for Form<T> {
    type Rejection = WebError;

    async fn from_request(
        request: axum::extract::Request,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::Form::<T>::from_request(request, state)
            .await
            .map(|axum::Form(f)| Form(f))
            .map_err(|e| WebError::BadRequest(explain_rejection(&e.body_text(), "form")))
    }
}

/// The client's IP address (recorded in the audit log and used for rate limits): the
/// socket's peer, or, when that peer is one of `--trusted-proxies`, the address it forwarded
/// in `X-Forwarded-For` (see [`tessera_core::client_ip`]).
pub struct ClientIp(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp
where
    AppState: FromRef<S>,
{
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Some(ConnectInfo(peer)) = parts.extensions.get::<ConnectInfo<std::net::SocketAddr>>()
        else {
            return Ok(ClientIp(String::new()));
        };
        let state = AppState::from_ref(state);
        let trusted = &state.config.trusted_proxies;
        if trusted.is_empty() {
            return Ok(ClientIp(peer.ip().to_canonical().to_string()));
        }
        // A value that is not text cannot be parsed as an address: the proxy's own address
        // is used then.
        let forwarded = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .map(|value| value.to_str().unwrap_or("?"));
        Ok(ClientIp(
            trusted.client_ip(peer.ip(), forwarded).to_string(),
        ))
    }
}

/// A same-origin path to redirect to, or `None`. The raw value is parsed as a URL the way a
/// browser would resolve it against this site (browsers drop tabs and newlines, read `\` as
/// `/`, and so on), and only a result on this origin is accepted: `/%09/evil.example`, which
/// a browser resolves to `//evil.example`, is refused. The path returned is the normalised
/// one, so what is checked is what the browser follows.
pub fn local_path(raw: &str) -> Option<String> {
    const BASE: &str = "http://tessera.invalid";
    if raw.len() > 500 || !raw.starts_with('/') || raw.chars().any(|c| c.is_control() || c == '\\')
    {
        return None;
    }
    let base = url::Url::parse(BASE).expect("valid base");
    let resolved = base.join(raw).ok()?;
    if resolved.origin() != base.origin() || !resolved.username().is_empty() {
        return None;
    }
    let mut path = resolved.path().to_owned();
    if path.starts_with("//") {
        return None;
    }
    if let Some(query) = resolved.query() {
        path.push('?');
        path.push_str(query);
    }
    Some(path)
}

/// Formats epoch milliseconds as text: `2026-11-22 19:13:05 UTC`. The one format for a moment
/// in words (mails, messages, API errors); pages show a moment as a [`PageTime`], which carries
/// the same text.
pub fn format_time(ms: i64) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    utc(ms)
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

/// ISO 8601 in UTC (`2026-11-22T19:13:05Z`), for machines: the `datetime` of a `<time>`.
pub fn iso_time(ms: i64) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    utc(ms)
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

fn utc(ms: i64) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
}

/// A moment on a page (or none: renders as nothing). It renders as
/// `<time datetime="2026-11-22T19:13:05Z">2026-11-22 19:13:05 UTC</time>`, so without script
/// the reader sees UTC, and app.js rewrites it into the reader's own zone with the UTC text on
/// hover. One type, so every page shows times the same way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PageTime(Option<i64>);

impl PageTime {
    /// The moment `ms` (epoch milliseconds).
    pub fn at(ms: i64) -> Self {
        Self(Some(ms))
    }

    /// A moment that may not have happened (yet): `None` renders as nothing.
    pub fn maybe(ms: Option<i64>) -> Self {
        Self(ms)
    }

    /// Whether there is no moment to show.
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }
}

impl std::fmt::Display for PageTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Some(ms) = self.0 else { return Ok(()) };
        // Both texts are digits and fixed punctuation only, so the markup needs no escaping.
        write!(
            f,
            r#"<time datetime="{}">{}</time>"#,
            iso_time(ms),
            format_time(ms)
        )
    }
}

impl askama::filters::HtmlSafe for PageTime {}

/// Text that may wrap at its punctuation (a URL, an address, an event name): rendered
/// HTML-escaped with a `<wbr>` after each `/ . ? & = _ - @ :`, so a narrow table column wraps
/// it between its parts instead of letter by letter, and never wider than its longest part.
pub struct Breakable<'a>(pub &'a str);

/// `text` as [`Breakable`]; templates call `crate::web::breakable(x)`.
pub fn breakable(text: &str) -> Breakable<'_> {
    Breakable(text)
}

impl std::fmt::Display for Breakable<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use std::fmt::Write as _;
        for c in self.0.chars() {
            match c {
                '&' => f.write_str("&amp;")?,
                '<' => f.write_str("&lt;")?,
                '>' => f.write_str("&gt;")?,
                '"' => f.write_str("&quot;")?,
                '\'' => f.write_str("&#39;")?,
                c => f.write_char(c)?,
            }
            if matches!(c, '/' | '.' | '?' | '&' | '=' | '_' | '-' | '@' | ':') {
                f.write_str("<wbr>")?;
            }
        }
        Ok(())
    }
}

/// Escapes everything itself (above), so askama must not escape it again.
impl askama::filters::HtmlSafe for Breakable<'_> {}

/// A short human phrase for a duration in milliseconds ("3 minutes").
pub fn humanize_ms(ms: i64) -> String {
    let secs = (ms.max(0) + 999) / 1000;
    match secs {
        0..=59 => format!("{secs} second{}", if secs == 1 { "" } else { "s" }),
        60..=5399 => {
            let m = (secs + 59) / 60;
            format!("{m} minute{}", if m == 1 { "" } else { "s" })
        }
        _ => {
            let h = (secs + 3599) / 3600;
            format!("{h} hour{}", if h == 1 { "" } else { "s" })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_stay_on_this_site() {
        assert_eq!(local_path("/team").as_deref(), Some("/team"));
        assert_eq!(
            local_path("/tasks?status=pending").as_deref(),
            Some("/tasks?status=pending")
        );
        assert_eq!(local_path("/a/../b").as_deref(), Some("/b"));
        for evil in [
            "//evil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "/\\evil.example",
            "/\\/evil.example",
            "https://evil.example",
            "http:evil.example",
            " /x",
            "evil.example",
            "",
            "/%2F/evil.example/..",
        ] {
            let ok = local_path(evil);
            assert!(
                ok.as_deref()
                    .is_none_or(|p| p.starts_with('/') && !p.starts_with("//")),
                "{evil:?} -> {ok:?}"
            );
            if evil != "/%2F/evil.example/.." {
                assert_eq!(ok, None, "{evil:?}");
            }
        }
    }

    #[test]
    fn rejections_name_the_parameter() {
        assert_eq!(
            explain_rejection(
                "Failed to deserialize query string: duplicate field `status`",
                "address"
            ),
            "The address gives \"status\" more than once; give it once."
        );
        assert_eq!(
            explain_rejection("Invalid URL: Invalid UTF-8 in `id`", "address"),
            "The address is not valid: \"id\" is not text (invalid UTF-8)."
        );
    }

    #[test]
    fn formats_times() {
        assert_eq!(format_time(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(
            PageTime::at(1_500).to_string(),
            r#"<time datetime="1970-01-01T00:00:01Z">1970-01-01 00:00:01 UTC</time>"#
        );
        assert_eq!(PageTime::maybe(None).to_string(), "");
        assert_eq!(
            breakable("https://a.b/<x>?q=1&r").to_string(),
            "https:<wbr>/<wbr>/<wbr>a.<wbr>b/<wbr>&lt;x&gt;?<wbr>q=<wbr>1&amp;<wbr>r"
        );
        assert_eq!(humanize_ms(1_000), "1 second");
        assert_eq!(humanize_ms(61_000), "2 minutes");
        assert_eq!(humanize_ms(7_200_000), "2 hours");
    }
}
