//! The staff console's billing pages: the price book, and for one team its plan, price
//! overrides, credits and "close the period now". Every change goes through
//! [`crate::billing::service`], the same functions the operator CLI uses, so each is audited
//! in the team's audit log. Handlers only read forms and pick the page: the rules are the
//! service's. Bad input shows the page again with the message (400, like the rest of the
//! staff console) and changes nothing.

use crate::web::PageTime;
use askama::Template;
use axum::{
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
    Router,
};
use serde::Deserialize;
use tessera_core::{
    billing::{PaymentStatus, Plan},
    money::{Currency, Money},
    Action, Invalid, Scope,
};
use tessera_store::{CloseOutcome, StoreError};

use super::{
    operator,
    support::{self, SupportError},
};
use crate::{
    billing::service::{self, PriceChange, StaffChange},
    state::{AppState, Wrote},
    web::{
        page, redirect_with_flash, render, ClientIp, Form, Layout, Path, Query, SignedIn, WebError,
        WebResult,
    },
};

/// The billing routes of the staff console, each authorised with [`Action::ManageBilling`]
/// before anything is read.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/staff/billing", get(book))
        .route("/staff/billing/prices", post(add_book_price))
        .route("/staff/billing/teams/{team_id}", get(team))
        .route("/staff/billing/teams/{team_id}/plan", post(set_plan))
        .route(
            "/staff/billing/teams/{team_id}/prices",
            post(add_team_price),
        )
        .route("/staff/billing/teams/{team_id}/credits", post(grant_credit))
        .route("/staff/billing/teams/{team_id}/close", post(close_now))
}

/// Recent credit entries and invoices a team page shows.
const RECENT: i64 = 20;

/// Teams listed per page of the billing page: however many teams there are, the page stays
/// small (the picker finds any team by name or id).
const TEAMS_PAGE: i64 = 50;

struct PriceRow {
    task_type: String,
    price: String,
    since: PageTime,
    by: String,
}

struct TeamLink {
    id: String,
    name: String,
}

#[derive(Template)]
#[template(path = "staff_billing.html")]
struct BookPage {
    layout: Layout,
    prices: Vec<PriceRow>,
    teams: Vec<TeamLink>,
    /// What the team picker was given, shown again with its error.
    team_query: String,
    prev_offset: Option<i64>,
    next_offset: Option<i64>,
    error: Option<String>,
}

#[derive(Deserialize, Default)]
struct BookQuery {
    /// A team's name or id, from the picker: opens that team's billing page.
    team: Option<String>,
    /// Where the team list starts.
    offset: Option<i64>,
}

struct CreditRow {
    when: PageTime,
    amount: String,
    balance: String,
    reason: String,
    actor: String,
}

struct InvoiceRow {
    number: String,
    period: String,
    status: String,
    total: String,
}

#[derive(Template)]
#[template(path = "staff_billing_team.html")]
struct TeamPage {
    layout: Layout,
    team_id: String,
    team_name: String,
    plan: String,
    currency: String,
    credit_balance: String,
    unbilled: String,
    unbilled_tasks: i64,
    spend_limit: String,
    card: String,
    prices: Vec<PriceRow>,
    credits: Vec<CreditRow>,
    invoices: Vec<InvoiceRow>,
    error: Option<String>,
}

fn price_rows(prices: Vec<tessera_store::Price>) -> Vec<PriceRow> {
    prices
        .into_iter()
        .map(|p| PriceRow {
            price: Currency::parse(&p.currency)
                .map(|c| Money::new(p.unit_amount, c).to_string())
                .unwrap_or_else(|_| format!("{} {}", p.unit_amount, p.currency)),
            task_type: p.task_type,
            since: PageTime::at(p.effective_from),
            by: p.created_by,
        })
        .collect()
}

async fn book_page(
    state: &AppState,
    who: &SignedIn,
    offset: i64,
    team_query: String,
    error: Option<String>,
) -> WebResult<BookPage> {
    who.authorize_platform(Action::ManageBilling)?;
    let now = tessera_store::now_ms();
    let prices = price_rows(state.store.book_prices(now).await?);
    let mut teams: Vec<TeamLink> = state
        .store
        .cross_tenant()
        .list_teams_page(TEAMS_PAGE + 1, offset)
        .await?
        .into_iter()
        .map(|t| TeamLink {
            id: t.team.id,
            name: t.team.name,
        })
        .collect();
    let more = teams.len() as i64 > TEAMS_PAGE;
    teams.truncate(TEAMS_PAGE as usize);
    Ok(BookPage {
        layout: Layout::signed_in("Billing (staff)", who, "/staff"),
        prices,
        teams,
        team_query,
        prev_offset: (offset > 0).then(|| (offset - TEAMS_PAGE).max(0)),
        next_offset: more.then_some(offset + TEAMS_PAGE),
        error,
    })
}

/// The price book and the team list; with `team`, the picker: that team's page, or this one
/// again with why not (no such team, or a name several teams share).
async fn book(
    State(state): State<AppState>,
    who: SignedIn,
    Query(q): Query<BookQuery>,
) -> WebResult<Response> {
    who.authorize_platform(Action::ManageBilling)?;
    let offset = q.offset.unwrap_or(0).clamp(0, 1_000_000);
    let wanted: String = q
        .team
        .unwrap_or_default()
        .trim()
        .chars()
        .take(200)
        .collect();
    if wanted.is_empty() {
        return Ok(page(&book_page(&state, &who, offset, wanted, None).await?));
    }
    match support::find_team(&state.store, &wanted).await {
        Ok(team) => Ok(Redirect::to(&format!("/staff/billing/teams/{}", team.id)).into_response()),
        Err(SupportError::Invalid(message)) => Ok(render(
            StatusCode::BAD_REQUEST,
            &book_page(&state, &who, offset, wanted, Some(message)).await?,
        )),
        Err(SupportError::Internal(err)) => Err(WebError::Internal(err)),
    }
}

/// The team's scope (live: billing belongs to the team), as the policy grants it to staff,
/// and its name; `None` for an unknown id.
async fn find_team(
    state: &AppState,
    who: &SignedIn,
    team_id: &str,
) -> WebResult<Option<(Scope, String)>> {
    match state.store.cross_tenant().get_team(team_id).await {
        Ok(team) => Ok(Some((
            who.authorize_team(Action::ManageBilling, &team.id)?,
            team.name,
        ))),
        Err(StoreError::NotFound) => Ok(None),
        Err(err) => Err(err.into()),
    }
}

/// A team id no team has (a stale link, a typed address): the billing page with the team
/// picker, 404, saying so; nothing changed.
async fn unknown_team(state: &AppState, who: &SignedIn, team_id: &str) -> WebResult<Response> {
    let shown: String = team_id.chars().take(60).collect();
    Ok(render(
        StatusCode::NOT_FOUND,
        &book_page(
            state,
            who,
            0,
            String::new(),
            Some(format!("No team has the id {shown}.")),
        )
        .await?,
    ))
}

async fn team_page(
    state: &AppState,
    who: &SignedIn,
    scope: &Scope,
    team_name: String,
    error: Option<String>,
) -> WebResult<TeamPage> {
    who.authorize_platform(Action::ManageBilling)?;
    let now = tessera_store::now_ms();
    let overview = service::overview(&state.store, scope, now).await?;
    let account = overview.account;
    let currency = account.currency;
    let money = |amount: i64| Money::new(amount, currency).to_string();
    let credits = state
        .store
        .credit_entries(scope, RECENT)
        .await?
        .into_iter()
        .map(|c| CreditRow {
            when: PageTime::at(c.created_at),
            amount: money(c.amount),
            balance: money(c.balance_after),
            reason: c.reason,
            actor: c.actor,
        })
        .collect();
    let invoices = state
        .store
        .list_invoices(scope, RECENT, None)
        .await?
        .into_iter()
        .map(|i| InvoiceRow {
            period: format!(
                "{} – {}",
                crate::billing::pages::format_day(i.period_start),
                crate::billing::pages::format_day(i.period_end - 1)
            ),
            status: format!(
                "{} ({})",
                i.status.as_str(),
                crate::billing::pages::payment_label(i.payment_status)
            ),
            total: money(i.total),
            number: i.number,
        })
        .collect();
    Ok(TeamPage {
        layout: Layout::signed_in(format!("Billing of {team_name} (staff)"), who, "/staff"),
        team_id: scope.team_id().to_owned(),
        team_name,
        plan: account.plan.to_string(),
        currency: currency.as_str().to_owned(),
        credit_balance: money(account.credit_balance),
        unbilled: money(overview.totals.amount),
        unbilled_tasks: overview.totals.completed_tasks,
        spend_limit: account
            .spend_limit
            .map(money)
            .unwrap_or_else(|| "none".into()),
        card: account
            .card
            .map(|c| format!("{} ending in {}", c.brand, c.last4))
            .unwrap_or_else(|| "none".into()),
        prices: price_rows(state.store.team_prices(scope, now).await?),
        credits,
        invoices,
        error,
    })
}

async fn team(
    State(state): State<AppState>,
    who: SignedIn,
    Path(team_id): Path<String>,
) -> WebResult<Response> {
    who.authorize_platform(Action::ManageBilling)?;
    let Some((scope, name)) = find_team(&state, &who, &team_id).await? else {
        return unknown_team(&state, &who, &team_id).await;
    };
    Ok(page(&team_page(&state, &who, &scope, name, None).await?))
}

/// The team page again with the problem, nothing changed.
async fn team_refused(
    state: &AppState,
    who: &SignedIn,
    (scope, name): (&Scope, &str),
    Invalid(message): Invalid,
) -> WebResult<Response> {
    Ok(render(
        StatusCode::BAD_REQUEST,
        &team_page(state, who, scope, name.to_owned(), Some(message)).await?,
    ))
}

fn staff_change(who: &SignedIn, ip: &ClientIp) -> StaffChange {
    StaffChange {
        event: operator(who, ip).event(tessera_core::AuditAction::PriceSet, "", String::new()),
    }
}

fn team_path(scope: &Scope) -> String {
    format!("/staff/billing/teams/{}", scope.team_id())
}

#[derive(Deserialize, Default)]
struct PriceInput {
    #[serde(default)]
    task_type: String,
    #[serde(default)]
    amount: String,
    #[serde(default)]
    currency: String,
}

/// The form's price: the amount in major units ("0.08") of the currency (default usd).
fn price_change(input: &PriceInput) -> Result<(i64, Currency), Invalid> {
    let currency = match input.currency.trim() {
        "" => Currency::USD,
        code => Currency::parse(code)?,
    };
    match service::parse_amount(&input.amount, currency)? {
        Some(amount) => Ok((amount, currency)),
        None => Err(Invalid("Enter the price per task, e.g. 0.08.".into())),
    }
}

async fn add_book_price(
    State(state): State<AppState>,
    who: SignedIn,
    ip: ClientIp,
    Form(input): Form<PriceInput>,
) -> WebResult<Response> {
    who.authorize_platform(Action::ManageBilling)?;
    let refused = |state: AppState, who: SignedIn, message: String| async move {
        Ok(render(
            StatusCode::BAD_REQUEST,
            &book_page(&state, &who, 0, String::new(), Some(message)).await?,
        ))
    };
    let (amount, currency) = match price_change(&input) {
        Ok(checked) => checked,
        Err(Invalid(message)) => return refused(state, who, message).await,
    };
    let change = PriceChange {
        task_type: input.task_type.trim(),
        amount,
        currency: currency.as_str(),
    };
    match service::set_price(&state.store, None, &change, &staff_change(&who, &ip)).await? {
        Ok(price) => Ok(redirect_with_flash(
            "/staff/billing",
            &format!(
                "The price book now prices {} at {} per task.",
                price.task_type,
                Money::new(price.unit_amount, currency)
            ),
        )),
        Err(Invalid(message)) => refused(state, who, message).await,
    }
}

#[derive(Deserialize, Default)]
struct PlanInput {
    #[serde(default)]
    plan: String,
}

async fn set_plan(
    State(state): State<AppState>,
    who: SignedIn,
    ip: ClientIp,
    Path(team_id): Path<String>,
    Form(input): Form<PlanInput>,
) -> WebResult<Response> {
    who.authorize_platform(Action::ManageBilling)?;
    let Some((scope, name)) = find_team(&state, &who, &team_id).await? else {
        return unknown_team(&state, &who, &team_id).await;
    };
    let plan = match input.plan.parse::<Plan>() {
        Ok(plan) => plan,
        Err(_) => {
            let invalid = Invalid("Choose a plan: on_demand or enterprise.".into());
            return team_refused(&state, &who, (&scope, &name), invalid).await;
        }
    };
    service::set_plan(&state.store, &scope, plan, &staff_change(&who, &ip)).await?;
    Ok(redirect_with_flash(
        &team_path(&scope),
        &format!("{name} is on the {plan} plan now."),
    ))
}

async fn add_team_price(
    State(state): State<AppState>,
    who: SignedIn,
    ip: ClientIp,
    Path(team_id): Path<String>,
    Form(input): Form<PriceInput>,
) -> WebResult<Response> {
    who.authorize_platform(Action::ManageBilling)?;
    let Some((scope, name)) = find_team(&state, &who, &team_id).await? else {
        return unknown_team(&state, &who, &team_id).await;
    };
    let (amount, currency) = match price_change(&input) {
        Ok(checked) => checked,
        Err(invalid) => return team_refused(&state, &who, (&scope, &name), invalid).await,
    };
    let change = PriceChange {
        task_type: input.task_type.trim(),
        amount,
        currency: currency.as_str(),
    };
    match service::set_price(
        &state.store,
        Some(&scope),
        &change,
        &staff_change(&who, &ip),
    )
    .await?
    {
        Ok(price) => Ok(redirect_with_flash(
            &team_path(&scope),
            &format!(
                "{name} now pays {} per {} task.",
                Money::new(price.unit_amount, currency),
                price.task_type
            ),
        )),
        Err(invalid) => team_refused(&state, &who, (&scope, &name), invalid).await,
    }
}

#[derive(Deserialize, Default)]
struct CreditInput {
    #[serde(default)]
    amount: String,
    #[serde(default)]
    reason: String,
}

async fn grant_credit(
    State(state): State<AppState>,
    who: SignedIn,
    ip: ClientIp,
    Path(team_id): Path<String>,
    Form(input): Form<CreditInput>,
) -> WebResult<Response> {
    who.authorize_platform(Action::ManageBilling)?;
    let Some((scope, name)) = find_team(&state, &who, &team_id).await? else {
        return unknown_team(&state, &who, &team_id).await;
    };
    let currency = state.store.billing_account(&scope).await?.currency;
    let amount = match service::parse_credit_amount(&input.amount, currency) {
        Ok(amount) => amount,
        Err(invalid) => return team_refused(&state, &who, (&scope, &name), invalid).await,
    };
    match service::grant_credit(
        &state.store,
        &scope,
        amount,
        &input.reason,
        &staff_change(&who, &ip),
    )
    .await?
    {
        Ok(entry) => {
            let balance = Money::new(entry.balance_after, currency);
            let message = if amount < 0 {
                format!(
                    "{} of {name}'s credit taken back; its credit balance is {balance}.",
                    Money::new(-amount, currency)
                )
            } else {
                format!(
                    "{} credited to {name}; its credit balance is {balance}.",
                    Money::new(amount, currency)
                )
            };
            Ok(redirect_with_flash(&team_path(&scope), &message))
        }
        Err(invalid) => team_refused(&state, &who, (&scope, &name), invalid).await,
    }
}

#[derive(Deserialize, Default)]
struct CloseInput {
    #[serde(default)]
    confirm: String,
}

async fn close_now(
    State(state): State<AppState>,
    who: SignedIn,
    ip: ClientIp,
    Path(team_id): Path<String>,
    Form(input): Form<CloseInput>,
) -> WebResult<Response> {
    who.authorize_platform(Action::ManageBilling)?;
    let Some((scope, name)) = find_team(&state, &who, &team_id).await? else {
        return unknown_team(&state, &who, &team_id).await;
    };
    if input.confirm != "yes" {
        let invalid = Invalid(
            "Tick the box to confirm: closing invoices every unbilled task now and cannot be undone."
                .into(),
        );
        return team_refused(&state, &who, (&scope, &name), invalid).await;
    }
    let payment = service::opening_payment(&state);
    let end = tessera_store::now_ms();
    let outcome =
        service::close_period(&state.store, &scope, end, payment, &staff_change(&who, &ip)).await?;
    let message = match outcome {
        CloseOutcome::Closed { number, .. } => {
            if payment == PaymentStatus::Pending {
                state.wake(Wrote::Charges);
            }
            format!("Invoice {number} issued to {name}.")
        }
        CloseOutcome::NothingToClose => format!("{name} has no unbilled usage: nothing to close."),
    };
    Ok(redirect_with_flash(&team_path(&scope), &message))
}
