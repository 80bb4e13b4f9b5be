//! Sealed secrets are bound to their purpose and row: a ciphertext copied into another row or
//! column of the database does not open there. Values in the released `v1.` format still open.

use aes_gcm::{
    aead::{Aead, KeyInit},
    Aes256Gcm, Nonce,
};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use tessera_core::Mode;

use crate::{backend_test, helpers::*};

async fn sealed_values_are_bound_to_their_row(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let mut alice = app.sign_up("alice@a.test", "Team A").await;
    let mut bob = app.sign_up("bob@b.test", "Team B").await;
    let alice_key = create_key(&mut alice, "live", "ci").await;
    create_key(&mut bob, "live", "ci").await;
    let team = |name: &'static str| {
        let store = app.store.clone();
        async move {
            store
                .cross_tenant()
                .find_teams_by_name(name)
                .await
                .unwrap()
                .remove(0)
                .team
                .id
        }
    };
    let (team_a, team_b) = (team("Team A").await, team("Team B").await);
    let alice_secret = app
        .store
        .team_secret(
            &team_scope(&team_a).with_mode(Mode::Test).unwrap(),
            tessera_core::status::SecretKind::CallbackAuth,
        )
        .await
        .unwrap()
        .unwrap();
    let alice_secret_value = tessera_server::keys::service::reveal_team_secret(
        &app.key,
        &team_a,
        tessera_core::status::SecretKind::CallbackAuth,
        Mode::Test,
        &alice_secret.sealed,
    )
    .unwrap();

    // Someone who can write to the database (not read the master key) copies Team A's sealed
    // live key and callback secret into Team B's rows, hoping Bob's reveal decrypts them.
    let pool = pg_pool(&app.db.url).await;
    sqlx::query(
        "UPDATE api_keys SET sealed = (SELECT sealed FROM api_keys WHERE team_id = $1) WHERE team_id = $2",
    )
    .bind(&team_a)
    .bind(&team_b)
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("UPDATE team_secrets SET sealed = $1 WHERE team_id = $2 AND kind = 'callback_auth' AND mode = 'test'")
        .bind(&alice_secret.sealed)
        .bind(&team_b)
        .execute(&pool)
        .await
        .unwrap();
    let page = bob.visit("/keys").await;
    let revealed = bob
        .submit(&format!("/keys/{}/reveal", key_id(&page.body, "live")), &[])
        .await;
    assert!(
        !revealed.body.contains(&alice_key),
        "Team A's key opened in Team B's row"
    );
    assert!(!revealed.status.is_success());
    let secret = bob.submit("/keys/callback/test/reveal", &[]).await;
    assert!(!secret.body.contains(&alice_secret_value));
    assert!(!secret.status.is_success());

    // Alice's own values are untouched and still reveal.
    let page = alice.visit("/keys").await;
    let revealed = alice
        .submit(&format!("/keys/{}/reveal", key_id(&page.body, "live")), &[])
        .await;
    assert!(revealed.body.contains(&alice_key));
    pool.close().await;
    app.stop().await;
}
backend_test!(sealed_values_are_bound_to_their_row);

/// Seals like the released `v1.` format did: no key id, no associated data.
pub fn seal_v1(key_hex: &str, plaintext: &[u8]) -> String {
    let cipher = Aes256Gcm::new_from_slice(&hex::decode(key_hex).unwrap()).unwrap();
    let nonce: [u8; 12] = rand::random();
    let mut out = nonce.to_vec();
    out.extend(
        cipher
            .encrypt(Nonce::from_slice(&nonce), plaintext)
            .unwrap(),
    );
    format!("v1.{}", URL_SAFE_NO_PAD.encode(out))
}

async fn released_v1_values_still_open(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let mut admin = app.sign_up("old@v1.test", "Old Data").await;
    create_key(&mut admin, "test", "old").await;
    // A database from the released version: the key and the callback secret sealed as `v1.`.
    let old_key = format!("test_{}", "ab".repeat(32));
    let pool = pg_pool(&app.db.url).await;
    sqlx::query("UPDATE api_keys SET sealed = $1")
        .bind(seal_v1(&app.key.to_hex(), old_key.as_bytes()))
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE team_secrets SET sealed = $1 WHERE kind = 'callback_auth' AND mode = 'test'",
    )
    .bind(seal_v1(&app.key.to_hex(), b"old-callback-secret"))
    .execute(&pool)
    .await
    .unwrap();
    let page = admin.visit("/keys").await;
    let revealed = admin
        .submit(&format!("/keys/{}/reveal", key_id(&page.body, "test")), &[])
        .await;
    assert!(revealed.body.contains(&old_key), "{}", revealed.body);
    let secret = admin.submit("/keys/callback/test/reveal", &[]).await;
    assert!(secret.body.contains("old-callback-secret"));
    pool.close().await;
    app.stop().await;
}
backend_test!(released_v1_values_still_open);
