//! `tessera admin …`: support operations on teams and users, and master-key rotation.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use tessera_core::status::SecretKind;
use tessera_server::{
    billing::service::{self as billing, PriceChange},
    crypto::{write_key_file, MasterKey},
    staff::support::{self, Operator, SupportError},
};

use super::{env_value, StorageArgs};

#[derive(Subcommand, Debug)]
pub(super) enum AdminCommand {
    /// Create a team and its Admin account; prints the team id.
    CreateTeam {
        #[arg(long)]
        name: String,
        #[arg(long)]
        admin_email: String,
        #[command(flatten)]
        password: PasswordArgs,
    },
    /// List teams with their Admin, member count and id (names are not unique; ids are).
    ListTeams,
    /// Move a user into a team (member by default; never Admin — use set-admin).
    MoveUser {
        #[arg(long)]
        email: String,
        /// The team's id (`team_…`) or its name, when no other team has that name.
        #[arg(long)]
        team: String,
        #[arg(long)]
        role: Option<String>,
    },
    /// Make a member of the team its Admin; the previous Admin becomes a Manager.
    SetAdmin {
        /// The team's id (`team_…`) or its name, when no other team has that name.
        #[arg(long)]
        team: String,
        #[arg(long)]
        email: String,
    },
    /// Set a price per completed task, effective now: in the price book, or with --team as that
    /// team's override. Past usage keeps the price it was frozen with.
    SetPrice {
        /// A Scale task type (imageannotation, categorization, …) or `*` for every other type.
        #[arg(long)]
        task_type: String,
        /// Minor units (cents for usd).
        #[arg(long, allow_hyphen_values = true)]
        amount: i64,
        #[arg(long, default_value = "usd")]
        currency: String,
        /// The team's id (`team_…`) or its name; without it, the price book.
        #[arg(long)]
        team: Option<String>,
    },
    /// Set a team's plan: on_demand (charged to its card) or enterprise (invoiced).
    SetPlan {
        #[arg(long)]
        team: String,
        #[arg(long)]
        plan: String,
    },
    /// Grant a team credits (minor units; a negative amount corrects an earlier grant).
    GrantCredit {
        #[arg(long)]
        team: String,
        #[arg(long, allow_hyphen_values = true)]
        amount: i64,
        #[arg(long)]
        reason: String,
    },
    /// Close a team's unbilled usage completed before --end (default: the start of the current
    /// UTC month) into an invoice; prints the invoice id, or that there was nothing to close.
    ClosePeriod {
        #[arg(long)]
        team: String,
        /// RFC 3339 time (or a date): usage completed before it is invoiced.
        #[arg(long)]
        end: Option<String>,
    },
    /// Create an API key for a team; prints the key alone.
    CreateApiKey {
        /// The team's id (`team_…`) or its name, when no other team has that name.
        #[arg(long)]
        team: String,
        /// `test` or `live`.
        #[arg(long)]
        mode: String,
        #[arg(long, default_value = "")]
        label: String,
    },
    /// Print a team's callback auth key for a mode (the `scale-callback-auth` header value).
    CallbackAuthKey {
        /// The team's id (`team_…`) or its name, when no other team has that name.
        #[arg(long)]
        team: String,
        /// `test` or `live`.
        #[arg(long)]
        mode: String,
    },
    /// Print a team's callback signing secret for a mode (`whsec_…`, Standard Webhooks).
    CallbackSigningSecret {
        /// The team's id (`team_…`) or its name, when no other team has that name.
        #[arg(long)]
        team: String,
        /// `test` or `live`.
        #[arg(long)]
        mode: String,
    },
    /// Create a platform workforce labeler, who labels every team's live tasks.
    CreateLabeler {
        #[arg(long)]
        email: String,
        #[command(flatten)]
        password: PasswordArgs,
    },
    /// Create a platform support (staff) user, who can open the staff console.
    CreateStaff {
        #[arg(long)]
        email: String,
        #[command(flatten)]
        password: PasswordArgs,
    },
    /// Re-seal every stored secret under a new master key and install it (stop the servers
    /// first; see the README). With the key file, the new key replaces DATA_DIR/master.key
    /// and the old one is kept in DATA_DIR/master.key.old.
    RotateMasterKey {
        /// File with the new key (64 hex characters), created with a fresh key when missing.
        /// Required when the current key comes from TESSERA_MASTER_KEY, unless
        /// TESSERA_NEW_MASTER_KEY is set.
        #[arg(long)]
        new_key_file: Option<PathBuf>,
    },
}

/// Where an admin command reads a new account's password. Not from the command line by
/// default: arguments are visible to every user in `ps` and land in shell history.
#[derive(Args, Debug)]
pub(super) struct PasswordArgs {
    /// Deprecated (visible in `ps` and shell history): use the prompt, --password-stdin or
    /// TESSERA_ADMIN_PASSWORD.
    #[arg(long, conflicts_with = "password_stdin")]
    password: Option<String>,
    /// Read the password from the first line of standard input.
    #[arg(long)]
    password_stdin: bool,
}

/// The environment variable an admin command reads a password from.
const PASSWORD_ENV: &str = "TESSERA_ADMIN_PASSWORD";

impl PasswordArgs {
    /// The password from `--password` (with a warning), `--password-stdin`,
    /// `TESSERA_ADMIN_PASSWORD` or, on a terminal, a prompt without echo, in that order.
    fn read(self) -> anyhow::Result<String> {
        use std::io::IsTerminal;
        if let Some(password) = self.password {
            eprintln!(
                "warning: --password is deprecated: it is visible in `ps` and shell history. \
                 Type the password at the prompt, pipe it with --password-stdin, or set \
                 {PASSWORD_ENV}."
            );
            return Ok(password);
        }
        if self.password_stdin {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .context("reading the password from standard input")?;
            let password = line.strip_suffix('\n').unwrap_or(&line);
            let password = password.strip_suffix('\r').unwrap_or(password);
            if password.is_empty() {
                bail!("--password-stdin: standard input held no password");
            }
            return Ok(password.to_owned());
        }
        if let Some(password) = std::env::var(PASSWORD_ENV).ok().filter(|p| !p.is_empty()) {
            return Ok(password);
        }
        if !std::io::stdin().is_terminal() {
            bail!(
                "no password given: run the command in a terminal to be prompted, pipe it with \
                 --password-stdin, or set {PASSWORD_ENV}"
            );
        }
        let password = rpassword::prompt_password("Password: ").context("reading the password")?;
        let again =
            rpassword::prompt_password("Repeat password: ").context("reading the password")?;
        if password != again {
            bail!("the two passwords differ");
        }
        Ok(password)
    }
}

/// The operator's scope in the team and mode a command names: the CLI's user controls the
/// server already, so this is the one place the product elevates (`Scope::operator`).
async fn operator_scope(
    store: &tessera_store::Store,
    team: &str,
    mode: &str,
) -> Result<tessera_core::Scope, SupportError> {
    let (team, mode) = support::team_and_mode(store, team, mode).await?;
    Ok(tessera_core::Scope::operator(
        tessera_core::ids::TeamId::from_stored(team.id),
        mode,
    ))
}

/// Billing changes by the CLI's operator, for the team's audit log.
fn staff_change(operator: &Operator) -> billing::StaffChange {
    billing::StaffChange {
        event: operator.event(tessera_core::AuditAction::PriceSet, "", String::new()),
    }
}

pub(super) async fn admin(storage: StorageArgs, command: AdminCommand) -> anyhow::Result<()> {
    let store = storage.store().await?;
    let master = storage.master_key()?;
    let operator = Operator::cli();
    let result: Result<(), SupportError> = async {
        match command {
            AdminCommand::CreateTeam {
                name,
                admin_email,
                password,
            } => {
                let password = password.read()?;
                let team = support::create_team(
                    &store,
                    &master,
                    &name,
                    &admin_email,
                    &password,
                    &operator,
                )
                .await?;
                println!("{}", team.id);
            }
            AdminCommand::ListTeams => {
                let teams = store.cross_tenant().list_teams().await?;
                println!("{:<30}  {:<40}  {:>7}  ID", "TEAM", "ADMIN", "MEMBERS");
                for t in teams {
                    println!(
                        "{:<30}  {:<40}  {:>7}  {}",
                        t.team.name, t.admin_email, t.members, t.team.id
                    );
                }
            }
            AdminCommand::MoveUser { email, team, role } => {
                let (user, team) =
                    support::move_user(&store, &email, &team, role.as_deref(), &operator).await?;
                println!(
                    "{} is now in {} as {}",
                    user.email,
                    team.name,
                    user.role.map(|r| r.as_str()).unwrap_or("")
                );
            }
            AdminCommand::SetAdmin { team, email } => {
                let team = support::set_admin(&store, &team, &email, &operator).await?;
                println!("{} is now the Admin of {}", email.trim(), team.name);
            }
            AdminCommand::SetPrice {
                task_type,
                amount,
                currency,
                team,
            } => {
                let scope = match &team {
                    Some(team) => Some(operator_scope(&store, team, "live").await?),
                    None => None,
                };
                let change = PriceChange {
                    task_type: &task_type,
                    amount,
                    currency: &currency,
                };
                let who = staff_change(&operator);
                let price = billing::set_price(&store, scope.as_ref(), &change, &who)
                    .await?
                    .map_err(SupportError::from)?;
                let money = tessera_core::money::Money::new(
                    price.unit_amount,
                    tessera_core::money::Currency::parse(&price.currency)?,
                );
                match team {
                    Some(team) => {
                        println!("{}: {money} per task for {team}, from now", price.task_type)
                    }
                    None => println!(
                        "{}: {money} per task in the price book, from now",
                        price.task_type
                    ),
                }
            }
            AdminCommand::SetPlan { team, plan } => {
                let plan: tessera_core::billing::Plan = plan.trim().parse()?;
                let scope = operator_scope(&store, &team, "live").await?;
                billing::set_plan(&store, &scope, plan, &staff_change(&operator)).await?;
                println!("{team} is now on the {plan} plan");
            }
            AdminCommand::GrantCredit {
                team,
                amount,
                reason,
            } => {
                let scope = operator_scope(&store, &team, "live").await?;
                let entry = billing::grant_credit(
                    &store,
                    &scope,
                    amount,
                    &reason,
                    &staff_change(&operator),
                )
                .await?
                .map_err(SupportError::from)?;
                let currency = store.billing_account(&scope).await?.currency;
                println!(
                    "credit balance of {team}: {}",
                    tessera_core::money::Money::new(entry.balance_after, currency)
                );
            }
            AdminCommand::ClosePeriod { team, end } => {
                let scope = operator_scope(&store, &team, "live").await?;
                let now = tessera_store::now_ms();
                let end = match end {
                    Some(raw) => tessera_server::api::wire::parse_time("--end", &raw)
                        .map_err(|e| SupportError::Invalid(e.message))?,
                    None => tessera_core::billing::month_start(now),
                };
                if end > now {
                    return Err(SupportError::Invalid(
                        "--end is in the future: only usage already completed can be invoiced."
                            .into(),
                    ));
                }
                // The CLI does not charge: with the server's Stripe key in its environment the
                // invoice opens with its charge due and the server's charge job makes it;
                // without one it opens as "payment not configured", as the server would.
                let payment = if std::env::var("TESSERA_STRIPE_SECRET_KEY")
                    .is_ok_and(|key| !key.trim().is_empty())
                {
                    tessera_core::billing::PaymentStatus::Pending
                } else {
                    tessera_core::billing::PaymentStatus::NotConfigured
                };
                match billing::close_period(&store, &scope, end, payment, &staff_change(&operator))
                    .await?
                {
                    tessera_store::CloseOutcome::Closed { invoice_id, .. } => {
                        println!("{invoice_id}")
                    }
                    tessera_store::CloseOutcome::NothingToClose => {
                        eprintln!("nothing to close: no unbilled usage completed before --end")
                    }
                }
            }
            AdminCommand::CreateApiKey { team, mode, label } => {
                let scope = operator_scope(&store, &team, &mode).await?;
                let key =
                    support::create_api_key(&store, &master, &scope, &label, &operator).await?;
                println!("{key}");
            }
            AdminCommand::CallbackAuthKey { team, mode } => {
                let scope = operator_scope(&store, &team, &mode).await?;
                let kind = SecretKind::CallbackAuth;
                println!(
                    "{}",
                    support::team_secret(&store, &master, &scope, kind).await?
                );
            }
            AdminCommand::CallbackSigningSecret { team, mode } => {
                let scope = operator_scope(&store, &team, &mode).await?;
                let kind = SecretKind::CallbackSigning;
                println!(
                    "{}",
                    support::team_secret(&store, &master, &scope, kind).await?
                );
            }
            AdminCommand::CreateLabeler { email, password } => {
                let user = support::create_labeler(&store, &email, &password.read()?).await?;
                println!("{}", user.id);
            }
            AdminCommand::CreateStaff { email, password } => {
                let user = support::create_staff(&store, &email, &password.read()?).await?;
                println!("{}", user.id);
            }
            AdminCommand::RotateMasterKey { .. } => unreachable!("handled in run"),
        }
        Ok(())
    }
    .await;
    store.close().await;
    result.map_err(|err| anyhow::anyhow!("{err}"))
}

/// `tessera admin rotate-master-key`: keys first, data second. With the key file, the current
/// key joins `master.key.old` before `master.key` is replaced (each written atomically), so a
/// crash at any point leaves every stored value readable by the next start; then every sealed
/// value is re-sealed under the new key in one transaction. Running it again is harmless.
pub(super) async fn rotate_master_key(
    storage: &StorageArgs,
    new_key_file: Option<PathBuf>,
) -> anyhow::Result<()> {
    let store = storage.store().await?;
    let current = storage.master_key()?;
    let from_env = env_value("TESSERA_MASTER_KEY").is_some();
    let new = match (&new_key_file, env_value("TESSERA_NEW_MASTER_KEY")) {
        (Some(path), _) => MasterKey::load_or_create(path)?,
        (None, Some(hex)) => MasterKey::from_hex(&hex).context("TESSERA_NEW_MASTER_KEY")?,
        (None, None) if from_env => bail!(
            "the master key comes from TESSERA_MASTER_KEY, so the new key cannot be installed for \
             you: pass --new-key-file PATH (created with a fresh key if missing) or set \
             TESSERA_NEW_MASTER_KEY"
        ),
        (None, None) => MasterKey::generate(),
    };
    if !from_env && new != current {
        let mut old = vec![current.to_hex()];
        for key in MasterKey::load_list(&storage.old_key_path())? {
            if key != new && !old.contains(&key.to_hex()) {
                old.push(key.to_hex());
            }
        }
        write_key_file(&storage.old_key_path(), &(old.join("\n") + "\n"))?;
        write_key_file(&storage.key_path(), &new.to_hex())?;
    }
    let result = tessera_server::keys::rotation::reseal_all(&store, &current, &new).await;
    store.close().await;
    let counts = result?;
    println!(
        "Re-sealed {} of {} stored secrets under master key {}.",
        counts.resealed,
        counts.examined,
        new.id()
    );
    if counts.changed_meanwhile > 0 {
        println!(
            "  {} changed while rotating (a server is running): run the command again once \
             every server runs with the new key.",
            counts.changed_meanwhile
        );
    }
    if from_env {
        println!(
            "  Now set TESSERA_MASTER_KEY to the new key on every server and restart them; keep \
             the previous key in TESSERA_OLD_MASTER_KEYS while you need to read older backups."
        );
    } else {
        println!(
            "  {} holds the new key; the previous key is kept in {} to read older backups. \
             Start the servers again.",
            storage.key_path().display(),
            storage.old_key_path().display()
        );
    }
    Ok(())
}
