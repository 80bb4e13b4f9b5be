//! Cloud storage emulators for the storage-integration tests, each on a free port of
//! 127.0.0.1 and stopped (its temp dir removed) on drop, one per test:
//!
//! - [`Moto`]: `moto_server` (AWS S3, IAM and STS) with IAM enforcement on, and
//!   [`Moto::setup`] for a customer's account: a role trusting Tessera's platform user with an
//!   external id, a bucket with `images/cat.png`, static keys with and without S3 access.
//! - [`GcsEmulator`]: `gcp-storage-emulator` (Google Cloud Storage's JSON API; ignores auth),
//!   and [`gcs_service_account_key`] for a key file as Google issues them.
//! - [`Azurite`]: Azurite's blob service (Azure Blob Storage), with SharedKey requests and
//!   service SAS URLs signed here.
//!
//! `scripts/test` installs them: moto and gcp-storage-emulator into `.venv`
//! (`TESSERA_TEST_PYTHON` names another Python that has them), Azurite into
//! `e2e/node_modules` (`npm ci` in e2e/).

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use base64::{engine::general_purpose::STANDARD as BASE64, Engine};
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::Value;
use sha2::Sha256;

use crate::helpers::{free_port, python, unique};

/// A 1×1 RGBA PNG: the bytes every emulator's `images/cat.png` holds.
pub const CAT_PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xdf, 0xc0, 0xf0,
    0x1f, 0x00, 0x06, 0x80, 0x02, 0x7f, 0x10, 0x4c, 0x1b, 0xe1, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45,
    0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

/// The object key [`Moto::setup`] stores [`CAT_PNG`] under.
pub const CAT_KEY: &str = "images/cat.png";

/// A temp dir of its own for one emulator (its working directory), removed on drop.
fn emulator_dir(prefix: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(unique(prefix));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Polls `url` until it answers with `ok` (any HTTP answer when `None`), or panics with `what`
/// and `hint` after ~20 s; also panics at once if the process has exited.
async fn wait_until_up(
    child: &mut tokio::process::Child,
    url: &str,
    ok: Option<StatusCode>,
    what: &str,
    hint: &str,
) {
    let client = reqwest::Client::new();
    for _ in 0..200 {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited at start ({status}); {hint}");
        }
        if let Ok(response) = client.get(url).send().await {
            if ok.is_none_or(|ok| response.status() == ok) {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what} did not answer at {url} within 20 s; {hint}");
}

/// Runs the Python script or `-c` program `args` and returns its stdout parsed as JSON.
async fn python_json(args: &[&str], env: &[(&str, &str)], what: &str) -> Value {
    let output = tokio::process::Command::new(python())
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap_or_else(|e| panic!("{what}: cannot run {} ({e})", python()));
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "{what} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

fn str_of(value: &Value, key: &str) -> String {
    value[key]
        .as_str()
        .unwrap_or_else(|| panic!("no string {key:?} in {value}"))
        .to_owned()
}

// --- AWS: moto ------------------------------------------------------------------------------

const MOTO_HINT: &str = "scripts/test installs moto[server] into .venv; TESSERA_TEST_PYTHON names the Python that has it";
const MOTO_WORLD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/it/fixtures/moto_world.py"
);

/// An IAM user of moto's and its access key.
#[derive(Debug, Clone)]
pub struct AwsUser {
    pub name: String,
    pub arn: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl AwsUser {
    fn from_json(value: &Value) -> AwsUser {
        AwsUser {
            name: value["name"].as_str().unwrap_or("admin").to_owned(),
            arn: str_of(value, "arn"),
            access_key_id: str_of(value, "access_key_id"),
            secret_access_key: str_of(value, "secret_access_key"),
        }
    }
}

/// A `moto_server` (S3, IAM, STS, … in one endpoint, account `123456789012`) that authenticates
/// and authorizes every request as AWS does: SigV4 signatures are checked against its IAM
/// users' keys (and assumed roles' session credentials) and actions against their policies.
///
/// Enforcement starts after the first `INITIAL_NO_AUTH_ACTION_COUNT` actions (moto counts, per
/// process, each request that reaches an action's auth check, signed or not; `/moto-api/` does
/// not count). It is started with 3, which [`Moto::start`] spends on an `admin` user with an
/// Allow-everything policy; everything after that, setup included, is signed as someone.
///
/// Known gaps of moto 5.2.5 (verified): an `AssumeRole` *without* `ExternalId` passes a trust
/// policy's `StringEquals sts:ExternalId` condition (AWS refuses it); `AssumeRole` of a role that
/// does not exist succeeds; a trust policy's principal must be the caller's exact ARN (an
/// account or `…:root` principal matches nobody); presigned URLs (query-string auth) get a 500
/// with enforcement on, and are neither signature- nor expiry-checked with it off; assumed-role
/// credentials are accepted past their `Expiration` (moto never checks it).
pub struct Moto {
    pub port: u16,
    /// Allowed everything; what [`Moto::setup`] signs with.
    pub admin: AwsUser,
    dir: PathBuf,
    _child: tokio::process::Child,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A customer's AWS account in moto, as [`Moto::setup`] made it (names carry a random suffix).
#[derive(Debug, Clone)]
pub struct MotoWorld {
    /// `http://127.0.0.1:PORT`: S3 (path-style), IAM and STS alike.
    pub endpoint: String,
    /// `us-east-1`.
    pub region: String,
    /// `123456789012`.
    pub account_id: String,
    /// The external id the customer role's trust policy requires.
    pub external_id: String,
    /// Tessera's operator credentials: may `sts:AssumeRole` and `sts:GetCallerIdentity`, nothing
    /// else (not even the bucket).
    pub platform: AwsUser,
    /// `…:role/ScaleAI-Integration-<suffix>`: trusts `platform` with `external_id`; may
    /// `s3:ListBucket` the bucket and `s3:GetObject` in it.
    pub role_arn: String,
    /// `…:role/NotTessera-<suffix>`: the same permissions, trusting someone else.
    pub untrusting_role_arn: String,
    /// `cust-bucket-<suffix>`.
    pub bucket: String,
    /// [`CAT_KEY`], holding [`CAT_PNG`] (`Content-Type: image/png`).
    pub object_key: String,
    pub object_body: Vec<u8>,
    /// A customer user whose static key may list and read the bucket.
    pub reader: AwsUser,
    /// A user whose key is valid but has no S3 permission.
    pub no_s3: AwsUser,
}

impl Moto {
    pub async fn start() -> Moto {
        let port = free_port();
        let dir = emulator_dir("moto-");
        let mut child = tokio::process::Command::new(python())
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .env("INITIAL_NO_AUTH_ACTION_COUNT", "3")
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("moto_server does not start ({e}); {MOTO_HINT}"));
        let endpoint = format!("http://127.0.0.1:{port}");
        wait_until_up(
            &mut child,
            &format!("{endpoint}/moto-api/"),
            Some(StatusCode::OK),
            "moto_server",
            MOTO_HINT,
        )
        .await;
        let admin = python_json(
            &[MOTO_WORLD, "bootstrap", &endpoint],
            &[],
            "moto_world.py bootstrap",
        )
        .await;
        Moto {
            port,
            admin: AwsUser::from_json(&admin),
            dir,
            _child: child,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A fresh customer account (see [`MotoWorld`]); may be called more than once. The fixture
    /// also checks that moto enforces what the tests rely on (the right external id works, a
    /// wrong one and the untrusting role are refused, `no_s3` is denied the object).
    pub async fn setup(&self, external_id: &str) -> MotoWorld {
        self.setup_with(external_id, None).await
    }

    /// Tessera's operator credentials alone (may assume roles and ask who it is): a server
    /// starts with them before its teams' external IDs exist.
    pub async fn platform(&self) -> AwsUser {
        let user = python_json(
            &[MOTO_WORLD, "platform", &self.endpoint()],
            &[
                ("AWS_ACCESS_KEY_ID", &self.admin.access_key_id),
                ("AWS_SECRET_ACCESS_KEY", &self.admin.secret_access_key),
            ],
            "moto_world.py platform",
        )
        .await;
        AwsUser::from_json(&user)
    }

    /// A customer account whose role trusts `platform` (from [`Moto::platform`]).
    pub async fn setup_for(&self, external_id: &str, platform: &AwsUser) -> MotoWorld {
        self.setup_with(external_id, Some(platform)).await
    }

    async fn setup_with(&self, external_id: &str, platform: Option<&AwsUser>) -> MotoWorld {
        let platform_json = platform.map(|p| {
            serde_json::json!({
                "name": p.name, "arn": p.arn,
                "access_key_id": p.access_key_id, "secret_access_key": p.secret_access_key,
            })
            .to_string()
        });
        let object_file = self.dir.join(unique("object-"));
        std::fs::write(&object_file, CAT_PNG).unwrap();
        let endpoint = self.endpoint();
        let mut args = vec![
            MOTO_WORLD,
            "world",
            &endpoint,
            external_id,
            object_file.to_str().unwrap(),
        ];
        if let Some(json) = &platform_json {
            args.push(json);
        }
        let world = python_json(
            &args,
            &[
                ("AWS_ACCESS_KEY_ID", &self.admin.access_key_id),
                ("AWS_SECRET_ACCESS_KEY", &self.admin.secret_access_key),
            ],
            "moto_world.py world",
        )
        .await;
        let _ = std::fs::remove_file(&object_file);
        MotoWorld {
            endpoint: str_of(&world, "endpoint"),
            region: str_of(&world, "region"),
            account_id: str_of(&world, "account_id"),
            external_id: str_of(&world, "external_id"),
            platform: AwsUser::from_json(&world["platform"]),
            role_arn: str_of(&world, "role_arn"),
            untrusting_role_arn: str_of(&world, "untrusting_role_arn"),
            bucket: str_of(&world, "bucket"),
            object_key: str_of(&world, "object_key"),
            object_body: CAT_PNG.to_vec(),
            reader: AwsUser::from_json(&world["reader"]),
            no_s3: AwsUser::from_json(&world["no_s3"]),
        }
    }
}

impl MotoWorld {
    /// The object's path-style URL, `{endpoint}/{bucket}/{object_key}`.
    pub fn object_url(&self) -> String {
        format!("{}/{}/{}", self.endpoint, self.bucket, self.object_key)
    }
}

// --- Google Cloud Storage: gcp-storage-emulator ---------------------------------------------

const GCS_HINT: &str = "scripts/test installs gcp-storage-emulator into .venv; TESSERA_TEST_PYTHON names the Python that has it";

/// The project the service-account keys name.
pub const GCS_PROJECT_ID: &str = "tessera-test";
/// Google's token endpoint, the `token_uri` of [`gcs_service_account_key`]'s keys.
pub const GCS_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";

/// A `gcp-storage-emulator` in memory: Cloud Storage's JSON API (`/storage/v1/…`, uploads at
/// `/upload/storage/v1/…`, downloads with `?alt=media` and at `/download/storage/v1/…`) and
/// `GET /{bucket}/{object}` (the XML API's path-style download, unescaped object name). It
/// ignores authentication entirely (any or no `Authorization`, any `X-Goog-Signature`) and has
/// no OAuth token endpoint; `HEAD` answers 501; a missing object or bucket is 404; `Range` works
/// (206). Object resources' `selfLink`/`mediaLink` carry the name unescaped
/// (`…/o/images/cat.png`, where Google writes `images%2Fcat.png`).
pub struct GcsEmulator {
    pub port: u16,
    dir: PathBuf,
    _child: tokio::process::Child,
}

impl Drop for GcsEmulator {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl GcsEmulator {
    pub async fn start() -> GcsEmulator {
        let port = free_port();
        let dir = emulator_dir("gcs-emulator-");
        let mut child = tokio::process::Command::new(python())
            .args(["-m", "gcp_storage_emulator", "start", "--host=127.0.0.1"])
            .arg(format!("--port={port}"))
            .args(["--in-memory", "--quiet"])
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("gcp-storage-emulator does not start ({e}); {GCS_HINT}"));
        let endpoint = format!("http://127.0.0.1:{port}");
        wait_until_up(
            &mut child,
            &format!("{endpoint}/storage/v1/b?project={GCS_PROJECT_ID}"),
            Some(StatusCode::OK),
            "gcp-storage-emulator",
            GCS_HINT,
        )
        .await;
        GcsEmulator {
            port,
            dir,
            _child: child,
        }
    }

    /// `http://127.0.0.1:PORT` (what a client's `STORAGE_EMULATOR_HOST`/API root would be).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub async fn create_bucket(&self, bucket: &str) {
        let response = reqwest::Client::new()
            .post(format!(
                "{}/storage/v1/b?project={GCS_PROJECT_ID}",
                self.endpoint()
            ))
            .json(&serde_json::json!({ "name": bucket }))
            .send()
            .await
            .unwrap();
        let status = response.status();
        assert!(
            status.is_success(),
            "creating GCS bucket {bucket}: {status} {}",
            response.text().await.unwrap()
        );
    }

    /// Uploads `body` as `object` (a simple media upload); returns the object resource.
    pub async fn upload(
        &self,
        bucket: &str,
        object: &str,
        content_type: &str,
        body: &[u8],
    ) -> Value {
        let mut url: reqwest::Url = format!("{}/upload/storage/v1/b/{bucket}/o", self.endpoint())
            .parse()
            .unwrap();
        url.query_pairs_mut()
            .append_pair("uploadType", "media")
            .append_pair("name", object);
        let response = reqwest::Client::new()
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(
            status.is_success(),
            "uploading gs://{bucket}/{object}: {status} {text}"
        );
        serde_json::from_str(&text).unwrap()
    }

    /// The JSON API's download URL, `/storage/v1/b/{bucket}/o/{object, %2F-escaped}?alt=media`.
    pub fn media_url(&self, bucket: &str, object: &str) -> String {
        let mut url: reqwest::Url = self.endpoint().parse().unwrap();
        url.path_segments_mut()
            .unwrap()
            .extend(["storage", "v1", "b", bucket, "o", object]);
        url.set_query(Some("alt=media"));
        url.to_string()
    }
}

/// A Google service-account key as the Cloud console downloads it (`type: service_account`,
/// `project_id` [`GCS_PROJECT_ID`], `private_key_id`, `private_key` a fresh RSA-2048 key in
/// PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), `client_email`, `client_id`, `auth_uri`,
/// `token_uri` [`GCS_TOKEN_URI`], cert URLs, `universe_domain`).
pub fn gcs_service_account_key(client_email: &str) -> String {
    gcs_service_account(client_email, GCS_TOKEN_URI).json
}

/// A service-account key and its parts, for a test that also plays the token endpoint.
#[derive(Debug, Clone)]
pub struct GcsServiceAccount {
    /// The key file's JSON.
    pub json: String,
    pub client_email: String,
    pub private_key_id: String,
    /// PKCS#8 PEM.
    pub private_key_pem: String,
    /// The matching public key, SubjectPublicKeyInfo PEM (`-----BEGIN PUBLIC KEY-----`), to
    /// verify RS256 JWT assertions signed with the key.
    pub public_key_pem: String,
}

/// [`gcs_service_account_key`] with another `token_uri`, and the key pair.
pub fn gcs_service_account(client_email: &str, token_uri: &str) -> GcsServiceAccount {
    // `cryptography` comes with moto; no RSA crate in the test crate.
    const KEYGEN: &str = "import json
from cryptography.hazmat.primitives import serialization as s
from cryptography.hazmat.primitives.asymmetric import rsa
k = rsa.generate_private_key(public_exponent=65537, key_size=2048)
print(json.dumps({
    'private': k.private_bytes(s.Encoding.PEM, s.PrivateFormat.PKCS8, s.NoEncryption()).decode(),
    'public': k.public_key().public_bytes(s.Encoding.PEM, s.PublicFormat.SubjectPublicKeyInfo).decode(),
}))";
    let output = std::process::Command::new(python())
        .args(["-c", KEYGEN])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} to generate an RSA key ({e})", python()));
    assert!(
        output.status.success(),
        "generating an RSA key needs Python's `cryptography` (installed with moto by scripts/test): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let keys: Value = serde_json::from_slice(&output.stdout).unwrap();
    let private_key_pem = str_of(&keys, "private");
    let public_key_pem = str_of(&keys, "public");
    let private_key_id = hex::encode(rand::random::<[u8; 20]>());
    let client_id: String = (0..21)
        .map(|i| char::from(b'0' + if i == 0 { 1 } else { rand::random::<u8>() % 10 }))
        .collect();
    let json = serde_json::to_string_pretty(&serde_json::json!({
        "type": "service_account",
        "project_id": GCS_PROJECT_ID,
        "private_key_id": private_key_id,
        "private_key": private_key_pem,
        "client_email": client_email,
        "client_id": client_id,
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url": format!(
            "https://www.googleapis.com/robot/v1/metadata/x509/{}",
            client_email.replace('@', "%40")
        ),
        "universe_domain": "googleapis.com",
    }))
    .unwrap();
    GcsServiceAccount {
        json,
        client_email: client_email.to_owned(),
        private_key_id,
        private_key_pem,
        public_key_pem,
    }
}

// --- Azure Blob Storage: Azurite ------------------------------------------------------------

const AZURITE_HINT: &str =
    "scripts/test installs azurite into e2e/node_modules (`npm ci` in e2e/; needs node)";

/// Azurite's one account and its well-known key (the storage emulator's documented
/// `devstoreaccount1` key).
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
/// The REST API version the requests and SAS signed here use.
pub const AZURE_API_VERSION: &str = "2021-08-06";

/// Azurite's blob service in memory (path-style: the account is the first path segment).
/// It checks SharedKey and SAS signatures and SAS times: an expired, not-yet-valid or
/// re-signed-with-another-key SAS, a tampered `sig` or `se`, a blob SAS used on another blob, and
/// an anonymous request are all 403 `AuthorizationFailure`; a SAS without the needed permission
/// is 403 `AuthorizationPermissionMismatch`; a valid SAS on a missing blob is 404 `BlobNotFound`.
pub struct Azurite {
    pub port: u16,
    dir: PathBuf,
    _child: tokio::process::Child,
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `e2e/node_modules/.bin/azurite-blob`.
pub fn azurite_bin() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../e2e/node_modules/.bin/azurite-blob")
}

impl Azurite {
    pub async fn start() -> Azurite {
        let port = free_port();
        let dir = emulator_dir("azurite-");
        let bin = azurite_bin();
        assert!(bin.exists(), "{} is missing; {AZURITE_HINT}", bin.display());
        let mut child = tokio::process::Command::new(&bin)
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            .args(["--inMemoryPersistence", "--skipApiVersionCheck", "--loose"])
            .args(["--disableTelemetry", "--silent"])
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("azurite-blob does not start ({e}); {AZURITE_HINT}"));
        // Unauthenticated, the account answers 403: it is up.
        wait_until_up(
            &mut child,
            &format!("http://127.0.0.1:{port}/{AZURITE_ACCOUNT}?comp=list"),
            None,
            "azurite-blob",
            AZURITE_HINT,
        )
        .await;
        Azurite {
            port,
            dir,
            _child: child,
        }
    }

    /// The account's blob endpoint, `http://127.0.0.1:PORT/devstoreaccount1`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/{AZURITE_ACCOUNT}", self.port)
    }

    /// The blob's URL (no auth), `{endpoint}/{container}/{blob}`.
    pub fn blob_url(&self, container: &str, blob: &str) -> String {
        format!("{}/{container}/{blob}", self.endpoint())
    }

    /// A request to `{endpoint}/{path}` with `query`, signed with the account key (SharedKey).
    pub async fn shared_key_request(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, &str)],
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> reqwest::Response {
        let mut url: reqwest::Url = format!("{}/{path}", self.endpoint()).parse().unwrap();
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let date = http_date(SystemTime::now());
        let mut ms_headers: Vec<(String, String)> = vec![
            ("x-ms-date".into(), date),
            ("x-ms-version".into(), AZURE_API_VERSION.into()),
        ];
        let mut content_type = String::new();
        for (name, value) in headers {
            let name = name.to_ascii_lowercase();
            if name == "content-type" {
                content_type = (*value).to_owned();
            } else {
                assert!(
                    name.starts_with("x-ms-"),
                    "only x-ms-* and content-type headers: {name}"
                );
                ms_headers.push((name, (*value).to_owned()));
            }
        }
        ms_headers.sort();
        let canonical_headers: String = ms_headers
            .iter()
            .map(|(name, value)| format!("{name}:{}\n", value.trim()))
            .collect();
        // Path-style: the canonical resource is /account followed by the URL's path (which
        // starts with the account again).
        let mut resource = format!("/{AZURITE_ACCOUNT}{}", url.path());
        let mut params: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.into_owned()))
            .collect();
        params.sort();
        for (name, value) in &params {
            resource.push_str(&format!("\n{name}:{value}"));
        }
        let length = if body.is_empty() {
            String::new()
        } else {
            body.len().to_string()
        };
        let string_to_sign = format!(
            "{method}\n\n\n{length}\n\n{content_type}\n\n\n\n\n\n\n{canonical_headers}{resource}"
        );
        let signature = sign(&string_to_sign);
        let mut request = reqwest::Client::new()
            .request(method, url)
            .header(
                reqwest::header::AUTHORIZATION,
                format!("SharedKey {AZURITE_ACCOUNT}:{signature}"),
            )
            .body(body.to_vec());
        if !content_type.is_empty() {
            request = request.header(reqwest::header::CONTENT_TYPE, content_type);
        }
        for (name, value) in &ms_headers {
            request = request.header(name, value);
        }
        request.send().await.unwrap()
    }

    pub async fn create_container(&self, container: &str) {
        let response = self
            .shared_key_request(
                reqwest::Method::PUT,
                container,
                &[("restype", "container")],
                &[],
                b"",
            )
            .await;
        let status = response.status();
        assert_eq!(
            status,
            StatusCode::CREATED,
            "creating container {container}: {}",
            response.text().await.unwrap()
        );
    }

    /// Puts `body` as the block blob `blob` of `container`.
    pub async fn upload_blob(&self, container: &str, blob: &str, content_type: &str, body: &[u8]) {
        let response = self
            .shared_key_request(
                reqwest::Method::PUT,
                &format!("{container}/{blob}"),
                &[],
                &[
                    ("x-ms-blob-type", "BlockBlob"),
                    ("content-type", content_type),
                ],
                body,
            )
            .await;
        let status = response.status();
        assert_eq!(
            status,
            StatusCode::CREATED,
            "uploading {container}/{blob}: {}",
            response.text().await.unwrap()
        );
    }

    /// A service SAS for one blob (`sr=b`), e.g. `permissions` `"r"`, valid from `start` (or at
    /// once) until `expiry`: the query string, without `?`.
    pub fn blob_sas(
        &self,
        container: &str,
        blob: &str,
        permissions: &str,
        start: Option<SystemTime>,
        expiry: SystemTime,
    ) -> String {
        let start = start.map(iso8601).unwrap_or_default();
        let expiry = iso8601(expiry);
        // The service SAS string-to-sign of versions 2020-12-06 and later.
        let string_to_sign = [
            permissions,
            &start,
            &expiry,
            &format!("/blob/{AZURITE_ACCOUNT}/{container}/{blob}"),
            "", // signed identifier
            "", // signed IP
            "", // signed protocol
            AZURE_API_VERSION,
            "b",
            "", // snapshot time
            "", // encryption scope
            "", // rscc
            "", // rscd
            "", // rsce
            "", // rscl
            "", // rsct
        ]
        .join("\n");
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        query.append_pair("sv", AZURE_API_VERSION);
        if !start.is_empty() {
            query.append_pair("st", &start);
        }
        query
            .append_pair("se", &expiry)
            .append_pair("sr", "b")
            .append_pair("sp", permissions)
            .append_pair("sig", &sign(&string_to_sign));
        query.finish()
    }

    /// [`Azurite::blob_url`] with a read SAS valid for `ttl`.
    pub fn blob_sas_url(&self, container: &str, blob: &str, ttl: Duration) -> String {
        let sas = self.blob_sas(container, blob, "r", None, SystemTime::now() + ttl);
        format!("{}?{sas}", self.blob_url(container, blob))
    }
}

/// HMAC-SHA256 with the account key, base64.
fn sign(string_to_sign: &str) -> String {
    let key = BASE64.decode(AZURITE_KEY).unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(string_to_sign.as_bytes());
    BASE64.encode(mac.finalize().into_bytes())
}

/// UTC calendar fields of `t`: (year, month, day, hour, minute, second, weekday 0 = Sunday).
fn utc(t: SystemTime) -> (i64, u32, u32, u64, u64, u64, usize) {
    let secs = t.duration_since(UNIX_EPOCH).unwrap().as_secs();
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    let weekday = (days + 4).rem_euclid(7) as usize;
    (
        year,
        month,
        day,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        weekday,
    )
}

/// `2026-01-02T03:04:05Z`.
fn iso8601(t: SystemTime) -> String {
    let (y, mo, d, h, mi, s, _) = utc(t);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// `Fri, 02 Jan 2026 03:04:05 GMT`.
fn http_date(t: SystemTime) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (y, mo, d, h, mi, s, wd) = utc(t);
    format!(
        "{}, {d:02} {} {y:04} {h:02}:{mi:02}:{s:02} GMT",
        DAYS[wd],
        MONTHS[mo as usize - 1]
    )
}

// --- The emulators' own tests ---------------------------------------------------------------

#[test]
fn dates_format_as_azure_wants() {
    let t = UNIX_EPOCH + Duration::from_secs(1_767_323_045); // 2026-01-02T03:04:05Z, a Friday
    assert_eq!(iso8601(t), "2026-01-02T03:04:05Z");
    assert_eq!(http_date(t), "Fri, 02 Jan 2026 03:04:05 GMT");
    let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29T00:00:00Z, a Tuesday
    assert_eq!(http_date(leap), "Tue, 29 Feb 2000 00:00:00 GMT");
}

#[tokio::test]
async fn moto_sets_up_a_customer_account_with_iam_enforced() {
    let moto = Moto::start().await;
    let external_id = unique("ext-");
    let world = moto.setup(&external_id).await;
    assert_eq!(world.region, "us-east-1");
    assert_eq!(world.account_id, "123456789012");
    assert_eq!(world.external_id, external_id);
    assert!(world.bucket.starts_with("cust-bucket-"), "{}", world.bucket);
    assert_eq!(world.object_key, CAT_KEY);
    assert_eq!(world.object_body, CAT_PNG);
    assert!(
        world
            .untrusting_role_arn
            .starts_with("arn:aws:iam::123456789012:role/NotTessera-"),
        "{}",
        world.untrusting_role_arn
    );
    assert_eq!(
        world.platform.arn,
        format!("arn:aws:iam::123456789012:user/{}", world.platform.name)
    );
    assert!(
        world
            .role_arn
            .starts_with("arn:aws:iam::123456789012:role/ScaleAI-Integration-"),
        "{}",
        world.role_arn
    );
    for user in [&world.platform, &world.reader, &world.no_s3, &moto.admin] {
        assert!(user.access_key_id.starts_with("AKIA"), "{user:?}");
        assert!(!user.secret_access_key.is_empty());
    }
    // With enforcement on, an unsigned request is refused.
    let response = reqwest::get(world.object_url()).await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    // A second account in the same moto gets names of its own.
    let other = moto.setup("another-external-id").await;
    assert_ne!(other.bucket, world.bucket);
    assert_ne!(other.role_arn, world.role_arn);
}

#[tokio::test]
async fn gcs_emulator_serves_an_uploaded_object() {
    let gcs = GcsEmulator::start().await;
    let bucket = unique("cust-gcs-");
    gcs.create_bucket(&bucket).await;
    let resource = gcs.upload(&bucket, CAT_KEY, "image/png", CAT_PNG).await;
    assert_eq!(resource["name"], CAT_KEY);
    assert_eq!(resource["size"], CAT_PNG.len().to_string());

    let client = reqwest::Client::new();
    let media = gcs.media_url(&bucket, CAT_KEY);
    assert!(media.contains("/o/images%2Fcat.png?alt=media"), "{media}");
    let path_style = format!("{}/{bucket}/{CAT_KEY}", gcs.endpoint());
    for url in [&media, &path_style] {
        let response = client.get(url).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{url}");
        assert_eq!(response.headers()["content-type"], "image/png");
        assert_eq!(response.bytes().await.unwrap(), CAT_PNG, "{url}");
    }
    let missing = client
        .get(gcs.media_url(&bucket, "images/dog.png"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    // The emulator has no HEAD.
    let head = client.head(&path_style).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::NOT_IMPLEMENTED);

    let email = "tessera@cust-project.iam.gserviceaccount.com";
    let key: Value = serde_json::from_str(&gcs_service_account_key(email)).unwrap();
    assert_eq!(key["type"], "service_account");
    assert_eq!(key["project_id"], GCS_PROJECT_ID);
    assert_eq!(key["client_email"], email);
    assert_eq!(key["token_uri"], GCS_TOKEN_URI);
    assert_eq!(key["private_key_id"].as_str().unwrap().len(), 40);
    assert_eq!(key["client_id"].as_str().unwrap().len(), 21);
    let pem = key["private_key"].as_str().unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{pem}");
    assert!(pem.trim_end().ends_with("-----END PRIVATE KEY-----"));
    // PKCS#8 RSA-2048: about 1.2 KB of DER.
    let der: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    assert!((1_150..1_300).contains(&BASE64.decode(der).unwrap().len()));

    let account = gcs_service_account(email, "http://127.0.0.1:1/token");
    let key: Value = serde_json::from_str(&account.json).unwrap();
    assert_eq!(key["token_uri"], "http://127.0.0.1:1/token");
    assert_eq!(key["client_email"], account.client_email.as_str());
    assert_eq!(key["private_key_id"], account.private_key_id.as_str());
    assert_eq!(key["private_key"], account.private_key_pem.as_str());
    assert_ne!(account.private_key_pem, pem, "a fresh key each time");
    assert!(account
        .public_key_pem
        .starts_with("-----BEGIN PUBLIC KEY-----\n"));
}

#[tokio::test]
async fn azurite_serves_a_blob_by_shared_key_and_sas_only() {
    let azurite = Azurite::start().await;
    let container = unique("cust-container-");
    azurite.create_container(&container).await;
    azurite
        .upload_blob(&container, CAT_KEY, "image/png", CAT_PNG)
        .await;

    let by_key = azurite
        .shared_key_request(
            reqwest::Method::GET,
            &format!("{container}/{CAT_KEY}"),
            &[],
            &[],
            b"",
        )
        .await;
    assert_eq!(by_key.status(), StatusCode::OK);
    assert_eq!(by_key.headers()["content-type"], "image/png");
    assert_eq!(by_key.bytes().await.unwrap(), CAT_PNG);

    let client = reqwest::Client::new();
    let valid = azurite.blob_sas_url(&container, CAT_KEY, Duration::from_secs(3600));
    let response = client.get(&valid).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{valid}");
    assert_eq!(response.bytes().await.unwrap(), CAT_PNG);

    let hour = Duration::from_secs(3600);
    let now = SystemTime::now();
    let expired = azurite.blob_sas(&container, CAT_KEY, "r", Some(now - hour), now - hour / 60);
    let tampered = valid.replacen("&sig=", "&sig=A", 1);
    let write_only = azurite.blob_sas(&container, CAT_KEY, "w", None, now + hour);
    let blob = azurite.blob_url(&container, CAT_KEY);
    for (what, url, code) in [
        ("anonymous", blob.clone(), "AuthorizationFailure"),
        (
            "expired SAS",
            format!("{blob}?{expired}"),
            "AuthorizationFailure",
        ),
        ("tampered SAS", tampered, "AuthorizationFailure"),
        (
            "write-only SAS",
            format!("{blob}?{write_only}"),
            "AuthorizationPermissionMismatch",
        ),
    ] {
        let response = client.get(&url).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{what}: {url}");
        let body = response.text().await.unwrap();
        assert!(
            body.contains(&format!("<Code>{code}</Code>")),
            "{what}: {body}"
        );
    }
}
