//! Secrets: the master key, sealed (encrypted) values, token digests and password hashing.

use std::{
    fs,
    io::Write,
    path::Path,
    sync::atomic::{AtomicUsize, Ordering},
};

use aes_gcm::{
    aead::{Aead, KeyInit, Payload},
    Aes256Gcm, Nonce,
};
use anyhow::{anyhow, bail, Context};
use argon2::{
    password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString},
    Argon2,
};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// The server's 256-bit master key. Stored secrets are AES-256-GCM ciphertext under it; the
/// CSRF key is derived from it. Every replica of one installation must share it.
///
/// It may carry retired keys too ([`MasterKey::with_previous`]): they open values sealed before
/// a rotation (`tessera admin rotate-master-key`) but never seal new ones.
#[derive(Clone)]
pub struct MasterKey {
    key: [u8; 32],
    previous: Vec<[u8; 32]>,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "MasterKey({}, {} previous)",
            self.id(),
            self.previous.len()
        )
    }
}

impl PartialEq for MasterKey {
    /// Same sealing key (the retired keys are not compared).
    fn eq(&self, other: &Self) -> bool {
        bool::from(subtle::ConstantTimeEq::ct_eq(&self.key[..], &other.key[..]))
    }
}

/// What a sealed value is for, bound into its ciphertext as AES-GCM associated data: a value
/// copied into another column, or another row's place, no longer opens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purpose(Vec<u8>);

impl Purpose {
    /// `name` plus the row identity, each part length-prefixed so that no two different lists
    /// encode the same bytes.
    fn new(name: &str, parts: &[&str]) -> Self {
        let mut bytes = b"tessera-seal:".to_vec();
        for part in std::iter::once(&name).chain(parts) {
            bytes.extend_from_slice(&(part.len() as u32).to_be_bytes());
            bytes.extend_from_slice(part.as_bytes());
        }
        Self(bytes)
    }

    /// An API key (`api_keys.sealed`), bound to its team and mode.
    pub fn api_key(team_id: &str, mode: tessera_core::Mode) -> Self {
        Self::new("api_key", &[team_id, mode.as_str()])
    }

    /// A team secret (`team_secrets.sealed` and `previous_sealed`), bound to its row.
    pub fn team_secret(
        team_id: &str,
        kind: tessera_core::status::SecretKind,
        mode: tessera_core::Mode,
    ) -> Self {
        Self::new("team_secret", &[team_id, kind.as_str(), mode.as_str()])
    }

    /// A storage integration's secret (`storage_integrations.secret_sealed`), bound to its
    /// team and row, so a ciphertext copied to another team's row does not open.
    pub fn integration_secret(team_id: &str, integration_id: &str) -> Self {
        Self::new("integration_secret", &[team_id, integration_id])
    }

    /// A mail body in the outbox (`mail_outbox.body_sealed`), bound to its recipient.
    pub fn mail_body(to: &str) -> Self {
        Self::new("mail_body", &[to])
    }

    /// A user's TOTP secret (`user_two_factor.secret_sealed`), bound to that user: copied to
    /// another account's row, it does not open.
    pub fn two_factor_secret(user_id: &str) -> Self {
        Self::new("two_factor_secret", &[user_id])
    }

    /// The API Keys page's show-once cookie, bound to the session it was set for.
    pub fn reveal_cookie(session_hash: &str) -> Self {
        Self::new("reveal_cookie", &[session_hash])
    }
}

/// Characters of the key id in a sealed value: 32 bits of an HMAC of the key, enough to pick
/// among the few keys an installation holds, and no help to guess the key.
const KEY_ID_LEN: usize = 8;

impl MasterKey {
    /// Parses 64 hex characters (the file format and the `TESSERA_MASTER_KEY` format).
    pub fn from_hex(text: &str) -> anyhow::Result<Self> {
        let bytes = hex::decode(text.trim()).context("master key must be 64 hex characters")?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| anyhow!("master key must be 64 hex characters (32 bytes)"))?;
        Ok(Self {
            key,
            previous: Vec::new(),
        })
    }

    /// A fresh random key.
    pub fn generate() -> Self {
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        Self {
            key,
            previous: Vec::new(),
        }
    }

    /// Reads the key file, or creates it (mode 0600) with a fresh random key. An existing file
    /// that group or others may read or write is refused: the key opens every stored secret.
    pub fn load_or_create(path: &Path) -> anyhow::Result<Self> {
        if path.exists() {
            return Self::load(path);
        }
        let key = Self::generate();
        write_new_private(path, &key.to_hex())
            .with_context(|| format!("creating master key {}", path.display()))?;
        Ok(key)
    }

    /// Reads an existing key file (64 hex characters), refusing one others may read or write.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = read_private(path)?;
        Self::from_hex(&text)
            .with_context(|| format!("master key file {} is corrupt", path.display()))
    }

    /// Reads a list of retired keys, one per line (the `master.key.old` format); none when
    /// the file does not exist.
    pub fn load_list(path: &Path) -> anyhow::Result<Vec<Self>> {
        if !path.exists() {
            return Ok(Vec::new());
        }
        let text = read_private(path)?;
        parse_list(&text).with_context(|| format!("key file {} is corrupt", path.display()))
    }

    /// Parses retired keys separated by commas, spaces or newlines (`TESSERA_OLD_MASTER_KEYS`).
    pub fn parse_list(text: &str) -> anyhow::Result<Vec<Self>> {
        parse_list(text)
    }

    /// This key, also opening (never sealing) values sealed under `previous`.
    pub fn with_previous(mut self, previous: impl IntoIterator<Item = MasterKey>) -> Self {
        for old in previous {
            for key in std::iter::once(old.key).chain(old.previous) {
                if key != self.key && !self.previous.contains(&key) {
                    self.previous.push(key);
                }
            }
        }
        self
    }

    /// This key alone, without the retired ones.
    pub fn current(&self) -> Self {
        Self {
            key: self.key,
            previous: Vec::new(),
        }
    }

    /// The key in hex, to write a key file (never log it).
    pub fn to_hex(&self) -> String {
        hex::encode(self.key)
    }

    /// The short public fingerprint carried in values sealed under this key.
    pub fn id(&self) -> String {
        key_id(&self.key)
    }

    /// A key for one purpose, derived so that a leak of one never reveals another.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("any key length");
        mac.update(b"tessera:");
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Encrypts `plaintext` for `purpose` (AES-256-GCM, random nonce, the purpose as associated
    /// data) into `v2.<key id>.<base64url(nonce‖ciphertext)>`.
    pub fn seal(&self, purpose: &Purpose, plaintext: &[u8]) -> String {
        let cipher = Aes256Gcm::new_from_slice(&self.key).expect("32-byte key");
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ciphertext = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &purpose.0,
                },
            )
            .expect("AES-GCM encryption cannot fail for in-memory buffers");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ciphertext);
        format!("v2.{}.{}", self.id(), URL_SAFE_NO_PAD.encode(out))
    }

    /// Decrypts what [`MasterKey::seal`] produced for the same `purpose`, under this key or a
    /// retired one; fails on tampering, another purpose or an unknown key. Values in the
    /// original `v1.` format (no key id, no purpose) still open, until rotation re-seals them.
    pub fn open(&self, purpose: &Purpose, sealed: &str) -> anyhow::Result<Vec<u8>> {
        if let Some(rest) = sealed.strip_prefix("v2.") {
            let (kid, body) = rest
                .split_once('.')
                .ok_or_else(|| anyhow!("sealed value is malformed"))?;
            let key = self
                .keys()
                .find(|k| secure_eq(&key_id(k), kid))
                .ok_or_else(|| {
                    anyhow!(
                        "sealed under master key {kid}, which is not configured (current key {})",
                        self.id()
                    )
                })?;
            let bytes = decode_body(body)?;
            let (nonce, ciphertext) = bytes.split_at(12);
            return Aes256Gcm::new_from_slice(key)
                .expect("32-byte key")
                .decrypt(
                    Nonce::from_slice(nonce),
                    Payload {
                        msg: ciphertext,
                        aad: &purpose.0,
                    },
                )
                .map_err(|_| anyhow!("sealed value is corrupt or sealed for another purpose"));
        }
        let body = sealed
            .strip_prefix("v1.")
            .ok_or_else(|| anyhow!("unknown sealed format"))?;
        let bytes = decode_body(body)?;
        let (nonce, ciphertext) = bytes.split_at(12);
        self.keys()
            .find_map(|key| {
                Aes256Gcm::new_from_slice(key)
                    .expect("32-byte key")
                    .decrypt(Nonce::from_slice(nonce), ciphertext)
                    .ok()
            })
            .ok_or_else(|| anyhow!("sealed value does not decrypt under the master key"))
    }

    /// True when `sealed` is already in the current format under this key (rotation skips it).
    pub fn is_current(&self, sealed: &str) -> bool {
        sealed
            .strip_prefix("v2.")
            .and_then(|rest| rest.split_once('.'))
            .is_some_and(|(kid, _)| kid == self.id())
    }

    fn keys(&self) -> impl Iterator<Item = &[u8; 32]> {
        std::iter::once(&self.key).chain(&self.previous)
    }
}

fn key_id(key: &[u8; 32]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("any key length");
    mac.update(b"tessera:key-id");
    let mut id = hex::encode(mac.finalize().into_bytes());
    id.truncate(KEY_ID_LEN);
    id
}

/// The nonce‖ciphertext bytes of a sealed value's body.
fn decode_body(body: &str) -> anyhow::Result<Vec<u8>> {
    let bytes = URL_SAFE_NO_PAD.decode(body)?;
    if bytes.len() < 12 + 16 {
        bail!("sealed value too short");
    }
    Ok(bytes)
}

fn parse_list(text: &str) -> anyhow::Result<Vec<MasterKey>> {
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|part| !part.is_empty())
        .map(MasterKey::from_hex)
        .collect()
}

/// Reads a key file after checking that only its owner may read or write it.
fn read_private(path: &Path) -> anyhow::Result<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(path)
            .with_context(|| format!("reading master key {}", path.display()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            bail!(
                "master key file {} is accessible to group or others (mode {:o}); it opens every stored secret: run `chmod 600 {}`",
                path.display(),
                mode & 0o777,
                path.display()
            );
        }
    }
    fs::read_to_string(path).with_context(|| format!("reading master key {}", path.display()))
}

/// Creates `path` (which must not exist) with mode 0600 and `contents`, flushed to disk.
fn write_new_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()?;
    Ok(())
}

/// Replaces `path` atomically with a 0600 file holding `contents`: written beside it, flushed,
/// then renamed over it, so a crash leaves either the old file or the new one, never half.
pub fn write_key_file(path: &Path, contents: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension(format!("tmp-{}", random_token()));
    write_new_private(&tmp, contents)
        .with_context(|| format!("writing key file {}", tmp.display()))?;
    if let Err(err) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(err).with_context(|| format!("replacing key file {}", path.display()));
    }
    if let Some(dir) = path.parent() {
        if let Ok(dir) = fs::File::open(dir) {
            let _ = dir.sync_all();
        }
    }
    Ok(())
}

/// A random URL-safe token with 256 bits of entropy (session cookies, invitation links).
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The SHA-256 digest (hex) under which a token is stored; the token itself never is.
pub fn token_digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// HMAC-SHA256 of `message` under `key`, URL-safe base64.
pub fn mac(key: &[u8; 32], message: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("any key length");
    mac.update(message);
    URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

/// Constant-time equality for secrets.
pub fn secure_eq(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Password hashes computed at once: one per core. Each argon2 run takes ~19 MiB and a core
/// for tens of milliseconds, so a burst of sign-ins queues here instead of taking the
/// process's memory (60 parallel logins used to add 0.7 GB) and every blocking thread.
static ARGON2_PERMITS: std::sync::LazyLock<std::sync::Arc<tokio::sync::Semaphore>> =
    std::sync::LazyLock::new(|| {
        std::sync::Arc::new(tokio::sync::Semaphore::new(argon2_concurrency()))
    });

/// How many argon2 computations may run at once (the cores), for tests and the README.
pub fn argon2_concurrency() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// Runs one argon2 computation on the blocking pool, at most one per core at a time. The
/// permit moves into the blocking task, so a request cancelled meanwhile (the client went
/// away) does not free it while the computation still runs.
async fn with_argon2<T: Send + 'static>(
    work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    let permit = ARGON2_PERMITS
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| anyhow!("password hashing is shut down"))?;
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let running = ARGON2_RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
        ARGON2_PEAK.fetch_max(running, Ordering::SeqCst);
        let result = work();
        ARGON2_RUNNING.fetch_sub(1, Ordering::SeqCst);
        result
    })
    .await?
}

/// argon2 computations running now, and the most ever seen at once (checked by a test).
static ARGON2_RUNNING: AtomicUsize = AtomicUsize::new(0);
static ARGON2_PEAK: AtomicUsize = AtomicUsize::new(0);

/// Hashes a password with argon2id on the blocking pool (it is deliberately CPU-heavy).
pub async fn hash_password(password: String) -> anyhow::Result<String> {
    with_argon2(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| anyhow!("hashing password: {e}"))
    })
    .await
}

/// Verifies a password against a stored argon2 hash on the blocking pool. With `None` it
/// still spends the same work, so unknown accounts cannot be told apart by timing.
pub async fn verify_password(password: String, stored: Option<String>) -> anyhow::Result<bool> {
    with_argon2(move || {
        let stored = stored.unwrap_or_else(|| DUMMY_HASH.to_owned());
        let parsed =
            PasswordHash::new(&stored).map_err(|e| anyhow!("stored hash unreadable: {e}"))?;
        Ok(Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
            && stored != DUMMY_HASH)
    })
    .await
}

/// An argon2id hash of a random string, used to equalise timing for unknown accounts.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$E8zHo6CaHnVNQGkOqEP6bVjHBvLUPNnhF3iyWRv0pCQ";

#[cfg(test)]
mod tests {
    use tessera_core::{status::SecretKind, Mode};

    use super::*;

    fn test_key(byte: &str) -> MasterKey {
        MasterKey::from_hex(&byte.repeat(32)).unwrap()
    }

    /// A value in the released `v1.` format: no key id, no associated data.
    fn seal_v1(key: &MasterKey, plaintext: &[u8]) -> String {
        let cipher = Aes256Gcm::new_from_slice(&key.key).unwrap();
        let nonce = [7u8; 12];
        let mut out = nonce.to_vec();
        out.extend(
            cipher
                .encrypt(Nonce::from_slice(&nonce), plaintext)
                .unwrap(),
        );
        format!("v1.{}", URL_SAFE_NO_PAD.encode(out))
    }

    #[test]
    fn seal_round_trip_and_tamper() {
        let key = test_key("11");
        let purpose = Purpose::mail_body("a@b.test");
        let sealed = key.seal(&purpose, b"secret link");
        assert!(sealed.starts_with(&format!("v2.{}.", key.id())), "{sealed}");
        assert!(!sealed.contains("secret link"));
        assert_eq!(key.open(&purpose, &sealed).unwrap(), b"secret link");
        let other = test_key("22");
        let err = other.open(&purpose, &sealed).unwrap_err().to_string();
        assert!(err.contains("not configured"), "{err}");
        let mut tampered = sealed.clone();
        tampered.pop();
        tampered.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert!(key.open(&purpose, &tampered).is_err());
        // A forged key id does not make another key try (and fail) silently.
        let forged = sealed.replacen(&key.id(), &other.id(), 1);
        assert!(key.open(&purpose, &forged).is_err());
    }

    #[test]
    fn a_sealed_value_opens_only_for_its_purpose_and_row() {
        let key = test_key("11");
        let api = key.seal(&Purpose::api_key("team_a", Mode::Live), b"live_123");
        assert!(key
            .open(&Purpose::api_key("team_a", Mode::Live), &api)
            .is_ok());
        for wrong in [
            Purpose::api_key("team_b", Mode::Live),
            Purpose::api_key("team_a", Mode::Test),
            Purpose::team_secret("team_a", SecretKind::CallbackAuth, Mode::Live),
            Purpose::mail_body("team_a"),
            Purpose::reveal_cookie("team_a"),
        ] {
            let err = key.open(&wrong, &api).unwrap_err().to_string();
            assert!(err.contains("another purpose"), "{err}");
        }
        // Length prefixes keep part boundaries: ("ab", "c") is not ("a", "bc").
        assert_ne!(
            Purpose::new("team_secret", &["ab", "c", "live"]),
            Purpose::new("team_secret", &["a", "bc", "live"])
        );
    }

    #[test]
    fn released_v1_values_still_open() {
        let key = test_key("11");
        let v1 = seal_v1(&key, b"old secret");
        assert_eq!(
            key.open(&Purpose::mail_body("x@y.test"), &v1).unwrap(),
            b"old secret"
        );
        assert!(!key.is_current(&v1));
        assert!(test_key("22")
            .open(&Purpose::mail_body("x@y.test"), &v1)
            .is_err());
    }

    #[test]
    fn retired_keys_open_but_never_seal() {
        let old = test_key("11");
        let purpose = Purpose::reveal_cookie("usr_1");
        let sealed_v2 = old.seal(&purpose, b"two");
        let sealed_v1 = seal_v1(&old, b"one");
        let new = test_key("22").with_previous([old.clone()]);
        assert_eq!(new.open(&purpose, &sealed_v2).unwrap(), b"two");
        assert_eq!(new.open(&purpose, &sealed_v1).unwrap(), b"one");
        let resealed = new.seal(&purpose, b"two");
        assert!(new.is_current(&resealed) && !new.is_current(&sealed_v2));
        assert!(old.open(&purpose, &resealed).is_err());
        assert!(new.current().open(&purpose, &sealed_v2).is_err());
        assert_eq!(new, test_key("22"));
        assert_eq!(
            MasterKey::parse_list(&format!("{}, {}\n", "11".repeat(32), "22".repeat(32)))
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn master_key_file_is_private_and_stable() {
        let dir = std::env::temp_dir().join(format!("tessera-key-{}", random_token()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("master.key");
        let a = MasterKey::load_or_create(&path).unwrap();
        let b = MasterKey::load_or_create(&path).unwrap();
        assert_eq!(a.key, b.key);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
            for loose in [0o640, 0o604, 0o620, 0o602] {
                fs::set_permissions(&path, fs::Permissions::from_mode(loose)).unwrap();
                let err = format!("{:#}", MasterKey::load_or_create(&path).unwrap_err());
                assert!(err.contains("chmod 600"), "{loose:o}: {err}");
            }
            fs::set_permissions(&path, fs::Permissions::from_mode(0o400)).unwrap();
            assert_eq!(MasterKey::load_or_create(&path).unwrap(), a);
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        }
        write_key_file(&path, &test_key("33").to_hex()).unwrap();
        assert_eq!(MasterKey::load(&path).unwrap(), test_key("33"));
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1, "no temporary left");
        fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn passwords_hash_and_verify() {
        let hash = hash_password("correct horse".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse".into(), Some(hash.clone()))
            .await
            .unwrap());
        assert!(!verify_password("wrong horse".into(), Some(hash))
            .await
            .unwrap());
        assert!(!verify_password("anything".into(), None).await.unwrap());
    }

    /// 60 parallel sign-ins used to run 60 argon2 computations at once (0.7 GB of RSS).
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn argon2_runs_at_most_one_per_core() {
        let hash = hash_password("correct horse".into()).await.unwrap();
        let checks: Vec<_> = (0..argon2_concurrency() * 6)
            .map(|_| tokio::spawn(verify_password("wrong".into(), Some(hash.clone()))))
            .collect();
        for check in checks {
            assert!(!check.await.unwrap().unwrap());
        }
        let peak = ARGON2_PEAK.load(Ordering::SeqCst);
        assert!((1..=argon2_concurrency()).contains(&peak), "peak {peak}");
    }

    #[test]
    fn tokens_are_random_and_digested() {
        let a = random_token();
        assert_ne!(a, random_token());
        assert_eq!(a.len(), 43);
        assert_eq!(token_digest(&a).len(), 64);
        assert!(secure_eq(&a, &a.clone()));
        assert!(!secure_eq(&a, "x"));
    }
}
