//! Secrets: the master key, sealed (encrypted) values, token digests and password hashing.

use std::{
    fs,
    io::Write,
    path::Path,
    sync::atomic::{AtomicUsize, Ordering},
};

use aes_gcm::{
    aead::{Aead, KeyInit},
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
#[derive(Clone)]
pub struct MasterKey {
    key: [u8; 32],
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    /// Parses 64 hex characters (the file format and the `TESSERA_MASTER_KEY` format).
    pub fn from_hex(text: &str) -> anyhow::Result<Self> {
        let bytes = hex::decode(text.trim()).context("master key must be 64 hex characters")?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| anyhow!("master key must be 64 hex characters (32 bytes)"))?;
        Ok(Self { key })
    }

    /// Reads the key file, or creates it (mode 0600) with a fresh random key.
    pub fn load_or_create(path: &Path) -> anyhow::Result<Self> {
        if path.exists() {
            let text = fs::read_to_string(path)
                .with_context(|| format!("reading master key {}", path.display()))?;
            return Self::from_hex(&text)
                .with_context(|| format!("master key file {} is corrupt", path.display()));
        }
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options
            .open(path)
            .with_context(|| format!("creating master key {}", path.display()))?;
        file.write_all(hex::encode(key).as_bytes())?;
        file.sync_all()?;
        Ok(Self { key })
    }

    /// A key for one purpose, derived so that a leak of one never reveals another.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("any key length");
        mac.update(b"tessera:");
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Encrypts `plaintext` (AES-256-GCM, random nonce) into `v1.<base64url(nonce‖ciphertext)>`.
    pub fn seal(&self, plaintext: &[u8]) -> String {
        let cipher = Aes256Gcm::new_from_slice(&self.key).expect("32-byte key");
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ciphertext = cipher
            .encrypt(Nonce::from_slice(&nonce), plaintext)
            .expect("AES-GCM encryption cannot fail for in-memory buffers");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ciphertext);
        format!("v1.{}", URL_SAFE_NO_PAD.encode(out))
    }

    /// Decrypts what [`MasterKey::seal`] produced; fails on tampering or a different key.
    pub fn open(&self, sealed: &str) -> anyhow::Result<Vec<u8>> {
        let body = sealed
            .strip_prefix("v1.")
            .ok_or_else(|| anyhow!("unknown sealed format"))?;
        let bytes = URL_SAFE_NO_PAD.decode(body)?;
        if bytes.len() < 12 + 16 {
            bail!("sealed value too short");
        }
        let (nonce, ciphertext) = bytes.split_at(12);
        let cipher = Aes256Gcm::new_from_slice(&self.key).expect("32-byte key");
        cipher
            .decrypt(Nonce::from_slice(nonce), ciphertext)
            .map_err(|_| anyhow!("sealed value does not decrypt under this master key"))
    }
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
static ARGON2_PERMITS: std::sync::LazyLock<tokio::sync::Semaphore> =
    std::sync::LazyLock::new(|| tokio::sync::Semaphore::new(argon2_concurrency()));

/// How many argon2 computations may run at once (the cores), for tests and the README.
pub fn argon2_concurrency() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// Runs one argon2 computation on the blocking pool, at most one per core at a time.
async fn with_argon2<T: Send + 'static>(
    work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    let _permit = ARGON2_PERMITS
        .acquire()
        .await
        .map_err(|_| anyhow!("password hashing is shut down"))?;
    tokio::task::spawn_blocking(move || {
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
    use super::*;

    #[test]
    fn seal_round_trip_and_tamper() {
        let key = MasterKey::from_hex(&"11".repeat(32)).unwrap();
        let sealed = key.seal(b"secret link");
        assert_ne!(sealed, "secret link");
        assert_eq!(key.open(&sealed).unwrap(), b"secret link");
        let other = MasterKey::from_hex(&"22".repeat(32)).unwrap();
        assert!(other.open(&sealed).is_err());
        let mut tampered = sealed.clone();
        tampered.pop();
        tampered.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert!(key.open(&tampered).is_err());
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
        }
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
