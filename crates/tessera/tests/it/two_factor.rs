//! Two-factor sign-in: enrollment from the Profile page (the secret shown as a QR code and
//! in text, codes computed here from it independently of the server), the second sign-in
//! step with `next`, wrong codes refused and counted by the sign-in rate limit, no code
//! accepted twice, single-use recovery codes, turning it off, the team requirement forcing
//! enrollment (the API unaffected), a password reset that does not bypass it, and the sealed
//! secret re-sealed by master-key rotation.

use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use sha1::Sha1;
use tessera_server::crypto::{MasterKey, Purpose};

use crate::{backend_test, helpers::*};

/// RFC 4648 base32 (no padding, spaces ignored), as the page shows the secret.
fn base32_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut bits: u64 = 0;
    let mut count = 0;
    let mut out = Vec::new();
    for c in text.chars().filter(|c| !c.is_whitespace()) {
        let value = ALPHABET.find(c.to_ascii_uppercase()).expect("base32") as u64;
        bits = (bits << 5) | value;
        count += 5;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
        }
    }
    out
}

/// The RFC 6238 code (HMAC-SHA1, 6 digits, 30 s) of `secret` at `unix_secs`.
fn code_at(secret: &[u8], unix_secs: u64) -> String {
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(secret).unwrap();
    mac.update(&(unix_secs / 30).to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = (digest[19] & 0x0f) as usize;
    let value = u32::from_be_bytes(digest[offset..offset + 4].try_into().unwrap()) & 0x7fff_ffff;
    format!("{:06}", value % 1_000_000)
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn this_tests_codes_match_rfc_6238() {
    // Appendix B, SHA-1: 94287082 and 07081804 in 8 digits.
    assert_eq!(code_at(b"12345678901234567890", 59), "287082");
    assert_eq!(code_at(b"12345678901234567890", 1_111_111_109), "081804");
    assert_eq!(base32_decode("GEZD GNBV GY3T QOJQ"), b"1234567890");
}

/// What enrollment gave: the secret, and the recovery codes shown once.
struct Enrolled {
    secret: Vec<u8>,
    codes: Vec<String>,
}

/// Sets up two-factor sign-in for the signed-in `b` from the Profile page.
async fn enroll(b: &mut Browser) -> Enrolled {
    let page = b.visit("/profile/two-factor").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("<svg role=\"img\""), "inline QR code");
    let text = extract_between(&page.body, "id=\"two-factor-secret\">", "</code>").unwrap();
    let secret = base32_decode(&text);
    assert_eq!(secret.len(), 20);
    let done = b
        .post_form(
            "/profile/two-factor/enable",
            &[
                ("code", &code_at(&secret, now_secs())),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert!(done.body.contains("id=\"two-factor-enabled\""));
    let list = extract_between(&done.body, "id=\"recovery-codes\">", "</ul>").unwrap();
    let codes: Vec<String> = list
        .split("<code>")
        .skip(1)
        .map(|c| c.split("</code>").next().unwrap().to_owned())
        .collect();
    assert_eq!(codes.len(), 10, "{list}");
    Enrolled { secret, codes }
}

/// Signs in with the password: the answer (a redirect to the second step when two-factor
/// sign-in is on).
async fn password_step(b: &mut Browser, email: &str, password: &str, next: &str) -> Page {
    b.post_form(
        "/login",
        &[("email", email), ("password", password), ("next", next)],
    )
    .await
}

fn sets_session(page: &Page) -> bool {
    page.set_cookies
        .iter()
        .any(|c| c.starts_with("tessera_session=") && !c.starts_with("tessera_session=;"))
}

/// The code step's answer for `code`.
async fn code_step(b: &mut Browser, code: &str) -> Page {
    b.post_form("/login/two-factor", &[("code", code)]).await
}

async fn audit_log(b: &mut Browser) -> String {
    b.visit("/team/audit").await.body
}

async fn enroll_and_sign_in(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let email = "owner@2fa.test";
    let mut owner = app.sign_up(email, "Second Factor Co").await;
    let profile = owner.visit("/profile").await;
    assert!(profile.body.contains("Set up two-factor authentication"));
    let user = app
        .store
        .find_user_by_email(&tessera_core::Email::parse(email).unwrap())
        .await
        .unwrap()
        .unwrap();

    // Mistakes on the set-up form: said next to the field, nothing turned on.
    let page = owner.visit("/profile/two-factor").await;
    let shown = extract_between(&page.body, "id=\"two-factor-secret\">", "</code>").unwrap();
    let again = owner.visit("/profile/two-factor").await;
    assert_eq!(
        extract_between(&again.body, "id=\"two-factor-secret\">", "</code>").unwrap(),
        shown,
        "a reload shows the same pending secret"
    );
    let secret = base32_decode(&shown);
    let wrong_password = owner
        .post_form(
            "/profile/two-factor/enable",
            &[
                ("code", &code_at(&secret, now_secs())),
                ("password", "not it at all"),
            ],
        )
        .await;
    assert_eq!(wrong_password.status, StatusCode::BAD_REQUEST);
    assert!(wrong_password.body.contains("id=\"enable-error\""));
    let wrong_code = owner
        .post_form(
            "/profile/two-factor/enable",
            &[("code", "12345x"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(wrong_code.status, StatusCode::BAD_REQUEST);
    assert!(wrong_code.body.contains("aria-invalid=\"true\""));
    assert!(wrong_code.body.contains("value=\"12345x\""), "input kept");
    let huge = "9".repeat(5000);
    let too_long = owner
        .post_form(
            "/profile/two-factor/enable",
            &[("code", &huge), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(too_long.status, StatusCode::BAD_REQUEST);
    assert!(!app.store.has_two_factor(&user.id).await.unwrap());
    // "Start over" replaces the pending secret.
    owner.post_form("/profile/two-factor/restart", &[]).await;
    let restarted = owner.visit("/profile/two-factor").await;
    assert_ne!(
        extract_between(&restarted.body, "id=\"two-factor-secret\">", "</code>").unwrap(),
        shown
    );

    let Enrolled { secret, codes } = enroll(&mut owner).await;
    assert!(app.store.has_two_factor(&user.id).await.unwrap());
    assert!(owner
        .visit("/profile")
        .await
        .body
        .contains("Manage two-factor authentication"));
    // At rest: the secret sealed for this user, the recovery codes only as digests.
    let stored = app.store.two_factor(&user.id).await.unwrap().unwrap();
    assert!(stored.secret_sealed.starts_with("v2."));
    assert_eq!(
        app.key
            .open(&Purpose::two_factor_secret(&user.id), &stored.secret_sealed)
            .unwrap(),
        secret
    );
    assert!(app
        .key
        .open(
            &Purpose::two_factor_secret("usr_other"),
            &stored.secret_sealed
        )
        .is_err());
    assert_eq!(app.store.recovery_codes_left(&user.id).await.unwrap(), 10);

    // The password alone makes no session: the second step comes first, `next` kept.
    let mut laptop = app.browser();
    let first = password_step(&mut laptop, email, PASSWORD, "/keys").await;
    assert_eq!(first.status, StatusCode::SEE_OTHER, "{}", first.body);
    assert_eq!(first.location.as_deref(), Some("/login/two-factor"));
    assert!(!sets_session(&first), "{:?}", first.set_cookies);
    assert_eq!(laptop.get("/keys").await.status, StatusCode::SEE_OTHER);
    let step = laptop.visit("/login/two-factor").await;
    assert_eq!(step.status, StatusCode::OK);
    assert!(step.body.contains("autocomplete=\"one-time-code\""));
    let wrong = code_step(&mut laptop, "000000").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.body.contains("id=\"code-error\""), "{}", wrong.body);
    let junk = code_step(&mut laptop, &"x".repeat(3000)).await;
    assert_eq!(junk.status, StatusCode::UNAUTHORIZED);
    // The code the set-up used is spent; the next step's code (one step of skew) works.
    let code = code_at(&secret, now_secs() + 30);
    let done = code_step(&mut laptop, &code).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(done.location.as_deref(), Some("/keys"));
    assert!(sets_session(&done));
    assert_eq!(laptop.get("/keys").await.status, StatusCode::OK);
    // The half-done sign-in is gone: its cookie starts nothing again.
    assert_eq!(
        laptop.get("/login/two-factor").await.location.as_deref(),
        Some("/login")
    );

    // The same code again, from another browser: refused (replay).
    let mut thief = app.browser();
    password_step(&mut thief, email, PASSWORD, "").await;
    let replay = code_step(&mut thief, &code).await;
    assert_eq!(replay.status, StatusCode::UNAUTHORIZED, "{}", replay.body);
    // A code two steps away is outside the allowed clock skew.
    let far = code_step(&mut thief, &code_at(&secret, now_secs() + 95)).await;
    assert_eq!(far.status, StatusCode::UNAUTHORIZED);

    // A recovery code works once, in any case and spacing.
    let recovery = codes[0].to_uppercase().replace('-', " ");
    let used = code_step(&mut thief, &recovery).await;
    assert_eq!(used.status, StatusCode::SEE_OTHER, "{}", used.body);
    assert_eq!(used.location.as_deref(), Some("/"));
    assert_eq!(app.store.recovery_codes_left(&user.id).await.unwrap(), 9);
    let mut other = app.browser();
    password_step(&mut other, email, PASSWORD, "").await;
    let reused = code_step(&mut other, &codes[0]).await;
    assert_eq!(reused.status, StatusCode::UNAUTHORIZED);
    let log = audit_log(&mut owner).await;
    assert!(log.contains("user.two_factor_enabled"), "{log}");
    assert!(log.contains("user.recovery_code_used"), "{log}");

    // New recovery codes (password and a code): the old ones stop working.
    let refused = owner
        .post_form(
            "/profile/two-factor/recovery-codes",
            &[("password", PASSWORD), ("code", "000000")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(refused.body.contains("id=\"codes-error\""));
    let fresh = owner
        .post_form(
            "/profile/two-factor/recovery-codes",
            &[("password", PASSWORD), ("code", &codes[1])],
        )
        .await;
    assert_eq!(fresh.status, StatusCode::OK, "{}", fresh.body);
    assert_eq!(
        fresh
            .set_cookies
            .iter()
            .filter(|c| c.contains("tessera_session"))
            .count(),
        0
    );
    let new_codes: Vec<String> = extract_between(&fresh.body, "id=\"recovery-codes\">", "</ul>")
        .unwrap()
        .split("<code>")
        .skip(1)
        .map(|c| c.split("</code>").next().unwrap().to_owned())
        .collect();
    assert_eq!(new_codes.len(), 10);
    let old = code_step(&mut other, &codes[2]).await;
    assert_eq!(
        old.status,
        StatusCode::UNAUTHORIZED,
        "replaced codes refused"
    );
    assert!(audit_log(&mut owner)
        .await
        .contains("user.recovery_codes_regenerated"));

    // Master-key rotation re-seals the secret (a set-up not yet confirmed too).
    let rotated = MasterKey::generate();
    let counts = tessera_server::keys::rotation::reseal_all(&app.store, &app.key, &rotated)
        .await
        .unwrap();
    assert!(counts.resealed >= 1);
    let resealed = app.store.two_factor(&user.id).await.unwrap().unwrap();
    assert!(rotated.is_current(&resealed.secret_sealed));
    assert_eq!(
        rotated
            .open(
                &Purpose::two_factor_secret(&user.id),
                &resealed.secret_sealed
            )
            .unwrap(),
        secret
    );
    tessera_server::keys::rotation::reseal_all(&app.store, &rotated, &app.key)
        .await
        .unwrap();

    // Turning it off takes the password and a code; then the password alone signs in.
    let refused = owner
        .post_form(
            "/profile/two-factor/disable",
            &[("password", "wrong password!"), ("code", &new_codes[0])],
        )
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(refused.body.contains("id=\"disable-error\""));
    let off = owner
        .post_form(
            "/profile/two-factor/disable",
            &[("password", PASSWORD), ("code", &new_codes[0])],
        )
        .await;
    assert_eq!(off.status, StatusCode::SEE_OTHER, "{}", off.body);
    assert!(!app.store.has_two_factor(&user.id).await.unwrap());
    assert_eq!(app.store.recovery_codes_left(&user.id).await.unwrap(), 0);
    let mut plain = app.browser();
    let direct = password_step(&mut plain, email, PASSWORD, "/team").await;
    assert_eq!(direct.location.as_deref(), Some("/team"));
    assert!(sets_session(&direct));
    assert!(audit_log(&mut owner)
        .await
        .contains("user.two_factor_disabled"));
    app.stop().await;
}
backend_test!(enroll_and_sign_in);

/// Wrong codes count against the same per-account limit as wrong passwords (a right password
/// does not reset it), and a password reset still leaves the second step.
async fn codes_are_rate_limited_and_reset_does_not_bypass(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let email = "limited@2fa.test";
    let mut owner = app.sign_up(email, "Limited Co").await;
    let Enrolled { secret, .. } = enroll(&mut owner).await;

    // A reset by email link: the new password still leads to the second step.
    let mut visitor = app.browser();
    visitor.visit("/password/forgot").await;
    visitor
        .post_form("/password/forgot", &[("email", email)])
        .await;
    let mail = app.store.cross_tenant().list_mail(50, 0).await.unwrap();
    let message = mail.iter().find(|m| m.to == email).expect("reset mail");
    let body = String::from_utf8(
        app.key
            .open(&Purpose::mail_body(&message.to), &message.body_sealed)
            .unwrap(),
    )
    .unwrap();
    let token = extract_between(&body, "/password/reset/", "\\n")
        .or_else(|| extract_between(&body, "/password/reset/", "\""))
        .unwrap();
    let link = format!("/password/reset/{}", token.trim());
    let new_password = "a fresh password 2fa";
    let reset = visitor
        .post_form(
            &link,
            &[
                ("new_password", new_password),
                ("confirm_password", new_password),
            ],
        )
        .await;
    assert_eq!(reset.status, StatusCode::SEE_OTHER, "{}", reset.body);
    assert!(!sets_session(&reset));
    let mut after = app.browser();
    let first = password_step(&mut after, email, new_password, "").await;
    assert_eq!(first.location.as_deref(), Some("/login/two-factor"));
    assert!(
        !sets_session(&first),
        "the reset did not bypass two-factor sign-in"
    );

    // Five failures per account and network: two codes, a right password, two more codes.
    for _ in 0..2 {
        assert_eq!(
            code_step(&mut after, "111111").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    let first = password_step(&mut after, email, new_password, "").await;
    assert_eq!(first.location.as_deref(), Some("/login/two-factor"));
    assert_eq!(
        code_step(&mut after, "222222").await.status,
        StatusCode::UNAUTHORIZED
    );
    let warned = code_step(&mut after, "333333").await;
    assert_eq!(warned.status, StatusCode::UNAUTHORIZED);
    assert!(
        warned
            .body
            .contains("One more failed attempt locks sign-in"),
        "the right password did not reset the count: {}",
        warned.body
    );
    assert_eq!(
        code_step(&mut after, "444444").await.status,
        StatusCode::UNAUTHORIZED
    );
    let locked = code_step(&mut after, &code_at(&secret, now_secs() + 30)).await;
    assert_eq!(
        locked.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        locked.body
    );
    assert!(!sets_session(&locked));
    // The password step of this account is locked from this network too.
    let mut again = app.browser();
    let refused = password_step(&mut again, email, new_password, "").await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    app.stop().await;
}
backend_test!(codes_are_rate_limited_and_reset_does_not_bypass);

/// The team setting: Admin only, needs the Admin's own two-factor sign-in; members without
/// it are held on the set-up page (sign-out works, the API does not care) until enrolled.
async fn team_requires_two_factor(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let mut admin = app.sign_up("admin@req2fa.test", "Required Co").await;
    let key = create_key(&mut admin, "live", "ci").await;
    let mut member = join_as(&app, &mut admin, "member@req2fa.test", "member").await;
    let mut manager = join_as(&app, &mut admin, "manager@req2fa.test", "manager").await;
    let (_, scope, _) = team_of(&app, "admin@req2fa.test").await;

    let team = admin.visit("/team").await;
    assert!(team
        .body
        .contains("Require two-factor authentication for every member"));
    assert!(!manager
        .visit("/team")
        .await
        .body
        .contains("name=\"required\""));
    let refused = manager
        .post_form("/team/two-factor", &[("required", "1")])
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    // Not before the Admin has it.
    let early = admin
        .post_form("/team/two-factor", &[("required", "1")])
        .await;
    assert_eq!(early.status, StatusCode::BAD_REQUEST);
    assert!(early.body.contains("id=\"two-factor-requirement-error\""));
    assert!(!app.store.team_requires_two_factor(&scope).await.unwrap());

    enroll(&mut admin).await;
    let on = admin.submit("/team/two-factor", &[("required", "1")]).await;
    assert_eq!(on.status, StatusCode::OK);
    assert!(on.body.contains("now required"), "{}", on.body);
    assert!(app.store.team_requires_two_factor(&scope).await.unwrap());
    let rows = |page: &str, email: &str| {
        let row = &page[page.find(&format!("data-email=\"{email}\"")).unwrap()..];
        extract_between(row, "<td class=\"two-factor\">", "</td>").unwrap()
    };
    assert!(rows(&on.body, "admin@req2fa.test").contains(">On<"));
    assert!(rows(&on.body, "member@req2fa.test").contains(">Off<"));
    assert!(audit_log(&mut admin)
        .await
        .contains("team.two_factor_requirement_changed"));

    // The member's existing session: nothing but the set-up.
    for path in ["/tasks", "/team", "/profile", "/projects"] {
        let held = member.get(path).await;
        assert_eq!(held.status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(
            held.location.as_deref(),
            Some("/profile/two-factor"),
            "{path}"
        );
    }
    let blocked = member
        .post_form("/profile", &[("name", "Changed"), ("company", "")])
        .await;
    assert_eq!(blocked.location.as_deref(), Some("/profile/two-factor"));
    let setup = member.visit("/").await;
    assert!(
        setup.body.contains("id=\"two-factor-required\""),
        "{}",
        setup.body
    );
    assert!(!setup.body.contains("href=\"/tasks\""), "no navigation");
    // The API with keys is unaffected.
    let (status, _) = Api::new(&app, &key).get("/projects").await;
    assert_eq!(status, StatusCode::OK);
    // Sign-out works, and signing in again leads to the set-up too.
    let out = member.post_form("/logout", &[]).await;
    assert_eq!(out.location.as_deref(), Some("/login"));
    let mut member = app.browser();
    let signed_in = password_step(&mut member, "member@req2fa.test", PASSWORD, "/tasks").await;
    assert_eq!(signed_in.location.as_deref(), Some("/tasks"));
    assert_eq!(
        member.get("/tasks").await.location.as_deref(),
        Some("/profile/two-factor")
    );
    enroll(&mut member).await;
    assert_eq!(member.get("/tasks").await.status, StatusCode::OK);

    // Turned off again by the Admin; audited both ways.
    let off = admin.submit("/team/two-factor", &[]).await;
    assert!(off.body.contains("no longer required"), "{}", off.body);
    assert!(!app.store.team_requires_two_factor(&scope).await.unwrap());
    app.stop().await;
}
backend_test!(team_requires_two_factor);
