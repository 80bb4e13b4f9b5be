//! Cloud storage integrations against real emulators: S3 and STS in moto with IAM enforced
//! (the role assumed only with the team's external ID, access keys, Verify's diagnosis),
//! Google Cloud Storage in gcp-storage-emulator, Azure Blob in Azurite; secrets sealed at rest,
//! another team kept out of a team's buckets and integrations, removal taking effect at once,
//! and the machine's ambient AWS credentials never used.

use reqwest::StatusCode;
use serde_json::{json, Value};
use tessera_server::config::PlatformAws;

use crate::{
    backend_test,
    emulators::{
        gcs_service_account_key, Azurite, GcsEmulator, Moto, AZURITE_ACCOUNT, AZURITE_KEY, CAT_KEY,
        CAT_PNG,
    },
    helpers::*,
};

fn platform_aws(moto: &Moto, user: &crate::emulators::AwsUser) -> PlatformAws {
    PlatformAws {
        access_key_id: user.access_key_id.clone(),
        secret_access_key: user.secret_access_key.clone(),
        region: "us-east-1".into(),
        sts_endpoint: Some(moto.endpoint().parse().unwrap()),
    }
}

fn image_task(attachment: &str) -> Value {
    json!({
        "instruction": "Box the cat.",
        "attachment": attachment,
        "attachment_type": "image",
        "geometries": {"box": {"objects_to_annotate": ["cat"]}},
    })
}

/// Everything the integrations table stores in its text columns.
async fn stored_text(app: &TestApp) -> String {
    let pool = pg_pool(&app.db.url).await;
    let rows: Vec<(String, Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT settings, secret_sealed, secret_fingerprint FROM storage_integrations",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    rows.into_iter()
        .map(|(a, b, c)| format!("{a} {} {}", b.unwrap_or_default(), c.unwrap_or_default()))
        .collect::<Vec<_>>()
        .join("\n")
}

async fn s3_integrations(backend: Backend) {
    let moto = Moto::start().await;
    let platform = moto.platform().await;
    let app = TestApp::spawn_with(
        &backend,
        Options {
            aws: Some(platform_aws(&moto, &platform)),
            ..Default::default()
        },
    )
    .await;
    let mut admin = app.sign_up("admin@s3.test", "S3 Co").await;
    let live = Api::new(&app, &create_key(&mut admin, "live", "ci").await);

    // The team's external ID and the account to trust.
    let (status, aws) = live.get("/integrations/aws").await;
    assert_eq!(status, StatusCode::OK, "{aws}");
    let external_id = aws["external_id"].as_str().unwrap().to_owned();
    assert!(external_id.len() >= 32, "{external_id}");
    assert_eq!(aws["platform_account"], "123456789012");
    let (_, again) = live.get("/integrations/aws").await;
    assert_eq!(again["external_id"], external_id.as_str(), "made once");

    let world = moto.setup_for(&external_id, &platform).await;

    // (a) The IAM role, assumed with the team's external ID: Verify lists and reads.
    let (status, role) = live
        .post(
            "/integrations",
            json!({"provider": "aws_s3", "name": "Images", "buckets": [world.bucket],
                   "role_arn": world.role_arn, "region": "us-east-1", "endpoint": world.endpoint}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{role}");
    assert_eq!(role["credential"], "aws_role");
    assert!(role["secret_fingerprint"].is_null());
    let role_id = role["id"].as_str().unwrap().to_owned();
    let (status, verified) = live
        .post(&format!("/integrations/{role_id}/verify"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{verified}");
    assert_eq!(verified["ok"], true, "{verified}");
    assert!(verified["error"].is_null());
    let (_, read) = live.get(&format!("/integrations/{role_id}")).await;
    assert_eq!(read["last_verification"]["ok"], true, "{read}");

    // A role that does not trust the platform: Verify says so, in words to act on.
    let other = moto.setup_for(&external_id, &platform).await;
    let (status, untrusting) = live
        .post(
            "/integrations",
            json!({"provider": "aws_s3", "name": "Wrong role", "buckets": [other.bucket],
                   "role_arn": other.untrusting_role_arn, "endpoint": other.endpoint}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{untrusting}");
    let untrusting_id = untrusting["id"].as_str().unwrap().to_owned();
    let (_, verified) = live
        .post(&format!("/integrations/{untrusting_id}/verify"), json!({}))
        .await;
    assert_eq!(verified["ok"], false, "{verified}");
    let error = verified["error"].as_str().unwrap();
    assert!(error.contains("could not assume the role"), "{error}");
    assert!(error.contains("external ID"), "{error}");
    assert!(error.contains(&other.untrusting_role_arn), "{error}");

    // A role whose trust policy requires another external ID (another team's, say): refused.
    let elsewhere = moto
        .setup_for("tessera-someone-elses-external-id-0000", &platform)
        .await;
    let (_, foreign) = live
        .post(
            "/integrations",
            json!({"provider": "aws_s3", "name": "Foreign id", "buckets": [elsewhere.bucket],
                   "role_arn": elsewhere.role_arn, "endpoint": elsewhere.endpoint}),
        )
        .await;
    let (_, verified) = live
        .post(
            &format!("/integrations/{}/verify", foreign["id"].as_str().unwrap()),
            json!({}),
        )
        .await;
    assert_eq!(verified["ok"], false, "{verified}");
    assert!(
        verified["error"]
            .as_str()
            .unwrap()
            .contains("could not assume the role"),
        "{verified}"
    );

    // (b) Access keys: a reader works; a key without S3 permission is denied the bucket.
    let keyed = moto.setup_for(&external_id, &platform).await;
    let (status, by_key) = live
        .post(
            "/integrations",
            json!({"provider": "aws_s3", "name": "By key", "buckets": [keyed.bucket],
                   "access_key_id": keyed.reader.access_key_id,
                   "secret_access_key": keyed.reader.secret_access_key, "endpoint": keyed.endpoint}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{by_key}");
    assert!(
        by_key.get("secret_access_key").is_none(),
        "write-only: {by_key}"
    );
    assert!(by_key["secret_fingerprint"]
        .as_str()
        .unwrap()
        .starts_with("sha256:"));
    let by_key_id = by_key["id"].as_str().unwrap().to_owned();
    let (_, verified) = live
        .post(&format!("/integrations/{by_key_id}/verify"), json!({}))
        .await;
    assert_eq!(verified["ok"], true, "{verified}");
    let denied = moto.setup_for(&external_id, &platform).await;
    let (_, no_s3) = live
        .post(
            "/integrations",
            json!({"provider": "aws_s3", "name": "No S3", "buckets": [denied.bucket],
                   "access_key_id": denied.no_s3.access_key_id,
                   "secret_access_key": denied.no_s3.secret_access_key, "endpoint": denied.endpoint}),
        )
        .await;
    let (_, verified) = live
        .post(
            &format!("/integrations/{}/verify", no_s3["id"].as_str().unwrap()),
            json!({}),
        )
        .await;
    assert_eq!(verified["ok"], false, "{verified}");
    assert!(
        verified["error"]
            .as_str()
            .unwrap()
            .contains("Access denied"),
        "{verified}"
    );
    let (_, wrong_secret) = live
        .post(
            "/integrations",
            json!({"provider": "aws_s3", "name": "Bad secret", "buckets": ["bad-secret-bucket"],
                   "access_key_id": keyed.reader.access_key_id,
                   "secret_access_key": "not-the-secret", "endpoint": keyed.endpoint}),
        )
        .await;
    let (_, verified) = live
        .post(
            &format!(
                "/integrations/{}/verify",
                wrong_secret["id"].as_str().unwrap()
            ),
            json!({}),
        )
        .await;
    assert!(
        verified["error"]
            .as_str()
            .unwrap()
            .contains("credentials were refused"),
        "{verified}"
    );

    // Bad input: 400 with the reason; a bucket connected twice: 409.
    for (body, needle) in [
        (
            json!({"provider": "dropbox", "name": "x", "buckets": ["abc"]}),
            "not a storage provider",
        ),
        (
            json!({"provider": "aws_s3", "name": "x", "buckets": ["Bad_Bucket"], "role_arn": world.role_arn}),
            "not a valid",
        ),
        (
            json!({"provider": "aws_s3", "name": "x", "buckets": ["abc"], "role_arn": "arn:aws:iam::1:role/x"}),
            "not an IAM role ARN",
        ),
        (
            json!({"provider": "aws_s3", "name": "x", "buckets": ["abc"]}),
            "ARN of the role",
        ),
        (
            json!({"provider": "aws_s3", "name": "", "buckets": ["abc"], "role_arn": world.role_arn}),
            "Name is required",
        ),
        (
            json!({"provider": "aws_s3", "name": "x", "buckets": [], "role_arn": world.role_arn}),
            "at least one bucket",
        ),
        (
            json!({"provider": "aws_s3", "name": "x", "buckets": ["abc"], "role_arn": world.role_arn, "endpoint": "ftp://x"}),
            "Endpoint",
        ),
        (
            json!({"provider": "gcs", "name": "x", "buckets": ["abc"], "service_account_key": "{}"}),
            "service-account key",
        ),
        (
            json!({"provider": "azure_blob", "name": "x", "buckets": ["abc"], "account": "acct1"}),
            "account's key",
        ),
        (json!("not an object"), "JSON object"),
    ] {
        let (status, answer) = live.post("/integrations", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body} → {answer}");
        assert_eq!(answer["status_code"], 400);
        assert!(
            answer["error"].as_str().unwrap().contains(needle),
            "{body} → {answer}"
        );
    }
    let (status, taken) = live
        .post(
            "/integrations",
            json!({"provider": "aws_s3", "name": "Again", "buckets": [world.bucket], "role_arn": world.role_arn}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{taken}");
    assert!(
        taken["error"].as_str().unwrap().contains("Images"),
        "{taken}"
    );

    // Tasks: an attachment in a connected bucket is accepted and kept as given; another bucket
    // is refused, naming it.
    let attachment = format!("s3://{}/{}", world.bucket, CAT_KEY);
    let (status, task) = live
        .post("/task/imageannotation", image_task(&attachment))
        .await;
    assert_eq!(status, StatusCode::OK, "{task}");
    assert_eq!(task["params"]["attachment"], attachment.as_str());
    let task_id = task["task_id"].as_str().unwrap().to_owned();
    let (status, refused) = live
        .post(
            "/task/imageannotation",
            image_task("s3://never-connected/cat.png"),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    let message = refused["error"].as_str().unwrap();
    assert!(
        message.contains("never-connected") && message.contains("add an integration"),
        "{message}"
    );

    // The read with include_attachment_url signs a URL valid at most 15 minutes.
    let (_, plain) = live.get(&format!("/task/{task_id}")).await;
    assert!(plain.get("attachment_url").is_none());
    let (status, with_url) = live
        .get(&format!("/task/{task_id}?include_attachment_url=true"))
        .await;
    assert_eq!(status, StatusCode::OK, "{with_url}");
    let signed: url::Url = with_url["attachment_url"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let query: std::collections::HashMap<_, _> = signed.query_pairs().into_owned().collect();
    let expires: u64 = query["X-Amz-Expires"].parse().unwrap();
    assert!(expires <= 900, "{signed}");
    assert!(query.contains_key("X-Amz-Signature"));
    assert!(
        query.contains_key("X-Amz-Security-Token"),
        "signed with the role's session"
    );
    assert!(
        signed
            .path()
            .ends_with(&format!("/{}/{}", world.bucket, CAT_KEY)),
        "{signed}"
    );

    // Another team sees none of it and cannot use the bucket.
    let mut other_admin = app.sign_up("admin@other-s3.test", "Other S3 Co").await;
    let intruder = Api::new(&app, &create_key(&mut other_admin, "live", "ci").await);
    let (status, _) = intruder.get(&format!("/integrations/{role_id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = intruder
        .post(&format!("/integrations/{role_id}/verify"), json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, list) = intruder.get("/integrations").await;
    assert_eq!(list["docs"], json!([]));
    let (status, _) = intruder
        .post("/task/imageannotation", image_task(&attachment))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = intruder
        .send(
            reqwest::Method::DELETE,
            &format!("/integrations/{role_id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, theirs) = intruder.get("/integrations/aws").await;
    assert_ne!(
        theirs["external_id"],
        external_id.as_str(),
        "one external ID per team"
    );

    // A test key may not manage integrations.
    let test = Api::new(&app, &create_key(&mut admin, "test", "ci").await);
    let (status, _) = test.get("/integrations").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // …nor reach the live world's buckets through a test task.
    let (status, test_task) = test
        .post("/task/imageannotation", image_task(&attachment))
        .await;
    assert_eq!(status, StatusCode::OK, "{test_task}");
    let (_, read) = test
        .get(&format!(
            "/task/{}?include_attachment_url=true",
            test_task["task_id"].as_str().unwrap()
        ))
        .await;
    assert!(read["attachment_url"].is_null(), "{read}");
    assert!(
        read["attachment_error"]
            .as_str()
            .unwrap()
            .contains("test-mode"),
        "{read}"
    );

    // Secrets are sealed at rest: the stored rows never hold one.
    let at_rest = stored_text(&app).await;
    assert!(
        at_rest.contains(&keyed.reader.access_key_id),
        "the rows were read"
    );
    assert!(
        !at_rest.contains(&keyed.reader.secret_access_key),
        "a secret is readable at rest"
    );
    if matches!(backend, Backend::Sqlite) {
        let file = app.db.dir.join("tessera.db");
        for path in [file.clone(), app.db.dir.join("tessera.db-wal")] {
            if let Ok(bytes) = std::fs::read(&path) {
                let needle = keyed.reader.secret_access_key.as_bytes();
                assert!(
                    !bytes.windows(needle.len()).any(|w| w == needle),
                    "{}",
                    path.display()
                );
            }
        }
    }

    // Removal takes effect at once: the bucket's tasks are refused and reads stop signing.
    let (status, removed) = live
        .send(
            reqwest::Method::DELETE,
            &format!("/integrations/{role_id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{removed}");
    let (status, _) = live.get(&format!("/integrations/{role_id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = live
        .post("/task/imageannotation", image_task(&attachment))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, unsigned) = live
        .get(&format!("/task/{task_id}?include_attachment_url=true"))
        .await;
    assert!(unsigned["attachment_url"].is_null(), "{unsigned}");
    assert!(unsigned["attachment_error"]
        .as_str()
        .unwrap()
        .contains("no longer connected"));

    // Every change is in the audit log.
    let log = admin.get("/team/audit").await.without_wbr().body;
    for word in [
        "integration.added",
        "integration.verified",
        "integration.removed",
    ] {
        assert!(log.contains(word), "{word} missing from the audit log");
    }
}
backend_test!(s3_integrations);

/// With no platform credentials configured, a role cannot be assumed — even when the test
/// process (the server's process) has AWS credentials in its environment: Tessera never uses
/// the ambient identity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ambient_aws_credentials_are_never_used() {
    let moto = Moto::start().await;
    let platform = moto.platform().await;
    // Safe in edition 2021; no other code of this process reads these variables for itself.
    std::env::set_var("AWS_ACCESS_KEY_ID", &platform.access_key_id);
    std::env::set_var("AWS_SECRET_ACCESS_KEY", &platform.secret_access_key);
    std::env::set_var("AWS_DEFAULT_REGION", "us-east-1");
    std::env::set_var("AWS_ENDPOINT_URL", moto.endpoint());
    let app = TestApp::spawn(&Backend::Sqlite).await;
    let mut admin = app.sign_up("admin@ambient.test", "Ambient Co").await;
    let live = Api::new(&app, &create_key(&mut admin, "live", "ci").await);
    let (_, aws) = live.get("/integrations/aws").await;
    assert!(aws["platform_account"].is_null(), "{aws}");
    let world = moto
        .setup_for(aws["external_id"].as_str().unwrap(), &platform)
        .await;
    let (status, role) = live
        .post(
            "/integrations",
            json!({"provider": "aws_s3", "name": "Ambient", "buckets": [world.bucket],
                   "role_arn": world.role_arn, "endpoint": world.endpoint}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{role}");
    let (_, verified) = live
        .post(
            &format!("/integrations/{}/verify", role["id"].as_str().unwrap()),
            json!({}),
        )
        .await;
    assert_eq!(verified["ok"], false, "{verified}");
    assert!(
        verified["error"]
            .as_str()
            .unwrap()
            .contains("no AWS credentials of its own"),
        "{verified}"
    );
    let attachment = format!("s3://{}/{}", world.bucket, CAT_KEY);
    let (_, task) = live
        .post("/task/imageannotation", image_task(&attachment))
        .await;
    let (_, read) = live
        .get(&format!(
            "/task/{}?include_attachment_url=true",
            task["task_id"].as_str().unwrap()
        ))
        .await;
    assert!(read["attachment_url"].is_null(), "{read}");
    for var in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_DEFAULT_REGION",
        "AWS_ENDPOINT_URL",
    ] {
        std::env::remove_var(var);
    }
}

async fn gcs_and_azure_integrations(backend: Backend) {
    let gcs = GcsEmulator::start().await;
    let azurite = Azurite::start().await;
    let app = TestApp::spawn(&backend).await;
    let mut admin = app.sign_up("admin@clouds.test", "Clouds Co").await;
    let live = Api::new(&app, &create_key(&mut admin, "live", "ci").await);

    // Google Cloud Storage with a service-account key.
    gcs.create_bucket("gcs-photos").await;
    gcs.upload("gcs-photos", CAT_KEY, "image/png", CAT_PNG)
        .await;
    let key = gcs_service_account_key("reader@tessera-test.iam.gserviceaccount.com");
    let (status, google) = live
        .post(
            "/integrations",
            json!({"provider": "gcs", "name": "Photos", "buckets": ["gcs-photos"],
                   "service_account_key": key, "endpoint": gcs.endpoint()}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{google}");
    assert_eq!(
        google["client_email"],
        "reader@tessera-test.iam.gserviceaccount.com"
    );
    let (_, verified) = live
        .post(
            &format!("/integrations/{}/verify", google["id"].as_str().unwrap()),
            json!({}),
        )
        .await;
    assert_eq!(verified["ok"], true, "{verified}");
    let (_, missing) = live
        .post(
            "/integrations",
            json!({"provider": "gcs", "name": "Missing", "buckets": ["gcs-missing"],
                   "service_account_key": key, "endpoint": gcs.endpoint()}),
        )
        .await;
    let (_, verified) = live
        .post(
            &format!("/integrations/{}/verify", missing["id"].as_str().unwrap()),
            json!({}),
        )
        .await;
    assert_eq!(verified["ok"], false, "{verified}");
    assert!(
        verified["error"]
            .as_str()
            .unwrap()
            .contains("does not exist"),
        "{verified}"
    );
    let (status, task) = live
        .post(
            "/task/imageannotation",
            image_task(&format!("gs://gcs-photos/{CAT_KEY}")),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{task}");
    let (_, read) = live
        .get(&format!(
            "/task/{}?include_attachment_url=true",
            task["task_id"].as_str().unwrap()
        ))
        .await;
    let signed: url::Url = read["attachment_url"].as_str().unwrap().parse().unwrap();
    let query: std::collections::HashMap<_, _> = signed.query_pairs().into_owned().collect();
    assert!(
        query["X-Goog-Expires"].parse::<u64>().unwrap() <= 900,
        "{signed}"
    );
    let fetched = reqwest::get(signed.clone()).await.unwrap();
    assert_eq!(fetched.status(), StatusCode::OK, "{signed}");
    assert_eq!(fetched.bytes().await.unwrap().as_ref(), CAT_PNG);

    // Azure Blob with the account key: the signed URL reads the blob; tampered, it is refused.
    azurite.create_container("photos").await;
    azurite
        .upload_blob("photos", CAT_KEY, "image/png", CAT_PNG)
        .await;
    let (status, azure) = live
        .post(
            "/integrations",
            json!({"provider": "azure_blob", "name": "Azure photos", "account": AZURITE_ACCOUNT,
                   "buckets": ["photos"], "account_key": AZURITE_KEY, "endpoint": azurite.endpoint()}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{azure}");
    assert_eq!(azure["buckets"], json!(["photos"]));
    let (_, verified) = live
        .post(
            &format!("/integrations/{}/verify", azure["id"].as_str().unwrap()),
            json!({}),
        )
        .await;
    assert_eq!(verified["ok"], true, "{verified}");
    let blob_url = format!("https://{AZURITE_ACCOUNT}.blob.core.windows.net/photos/{CAT_KEY}");
    let (status, task) = live
        .post("/task/imageannotation", image_task(&blob_url))
        .await;
    assert_eq!(status, StatusCode::OK, "{task}");
    assert_eq!(
        task["params"]["attachment"],
        blob_url.as_str(),
        "kept as given"
    );
    let (_, read) = live
        .get(&format!(
            "/task/{}?include_attachment_url=true",
            task["task_id"].as_str().unwrap()
        ))
        .await;
    let signed = read["attachment_url"].as_str().unwrap().to_owned();
    let fetched = reqwest::get(&signed).await.unwrap();
    assert_eq!(fetched.status(), StatusCode::OK, "{signed}");
    assert_eq!(fetched.bytes().await.unwrap().as_ref(), CAT_PNG);
    let tampered = signed.replacen("sig=", "sig=AAAA", 1);
    assert_eq!(
        reqwest::get(&tampered).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    // The same signer with a one-second lifetime: Azurite refuses the URL once it expired.
    let (_, scope, _) = team_of(&app, "admin@clouds.test").await;
    let resolved = tessera_server::integrations::service::resolve(&app.state, &scope, &blob_url)
        .await
        .unwrap()
        .unwrap();
    let short = resolved
        .client
        .signed_url(&resolved.location.key, std::time::Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(
        reqwest::get(short.clone()).await.unwrap().status(),
        StatusCode::OK
    );
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert_eq!(
        reqwest::get(short).await.unwrap().status(),
        StatusCode::FORBIDDEN,
        "expired"
    );

    // A container the team did not connect.
    let (status, refused) = live
        .post(
            "/task/imageannotation",
            image_task(&format!(
                "https://{AZURITE_ACCOUNT}.blob.core.windows.net/other/{CAT_KEY}"
            )),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert!(
        refused["error"].as_str().unwrap().contains("\"other\""),
        "{refused}"
    );

    // A wrong account key: Verify says the credentials were refused.
    azurite.create_container("second").await;
    let wrong_key = AZURITE_KEY.replacen('E', "F", 1);
    let (_, wrong) = live
        .post(
            "/integrations",
            json!({"provider": "azure_blob", "name": "Wrong key", "account": AZURITE_ACCOUNT,
                   "buckets": ["second"], "account_key": wrong_key, "endpoint": azurite.endpoint()}),
        )
        .await;
    let (_, verified) = live
        .post(
            &format!("/integrations/{}/verify", wrong["id"].as_str().unwrap()),
            json!({}),
        )
        .await;
    assert_eq!(verified["ok"], false, "{verified}");
    let error = verified["error"].as_str().unwrap();
    assert!(
        error.contains("refused") || error.contains("denied"),
        "{error}"
    );
}
backend_test!(gcs_and_azure_integrations);

/// The labeling page and the task page show a storage attachment: through a URL the cloud
/// signed (at most 15 minutes), or — in proxy mode — streamed by Tessera to the labeler holding
/// the task only; once the integration is gone the page says why, and the labeler's report
/// ends the task as `error`, unbilled.
async fn attachments_for_labelers(backend: Backend) {
    let moto = Moto::start().await;
    let platform = moto.platform().await;
    let app = TestApp::spawn_with(
        &backend,
        Options {
            aws: Some(platform_aws(&moto, &platform)),
            ..Default::default()
        },
    )
    .await;
    let mut admin = app.sign_up("admin@label-s3.test", "Label S3 Co").await;
    let live = Api::new(&app, &create_key(&mut admin, "live", "ci").await);
    let (_, aws) = live.get("/integrations/aws").await;
    let world = moto
        .setup_for(aws["external_id"].as_str().unwrap(), &platform)
        .await;
    let (status, role) = live
        .post(
            "/integrations",
            json!({"provider": "aws_s3", "name": "Street images", "buckets": [world.bucket],
                   "role_arn": world.role_arn, "endpoint": world.endpoint}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{role}");
    let attachment = format!("s3://{}/{}", world.bucket, CAT_KEY);
    let (_, task) = live
        .post("/task/imageannotation", image_task(&attachment))
        .await;
    let task_id = task["task_id"].as_str().unwrap().to_owned();

    let mut labeler = join_as(&app, &mut admin, "lab@label-s3.test", "labeler").await;
    let next = labeler.post_form("/label/next", &[]).await;
    assert_eq!(
        next.location.as_deref(),
        Some(format!("/label/{task_id}").as_str())
    );
    let page = labeler.get(&format!("/label/{task_id}")).await;
    assert_eq!(page.status, StatusCode::OK);
    let src = extract_between(&page.body, "id=\"annotator-image\" src=\"", "\"")
        .expect("the box annotator shows the image")
        .replace("&amp;", "&")
        .replace("&#x2F;", "/")
        .replace("&#x3D;", "=");
    assert!(
        src.contains("X-Amz-Signature=") && src.contains("X-Amz-Expires=900"),
        "{src}"
    );
    assert!(src.contains(&world.bucket), "{src}");
    let dashboard = admin.get(&format!("/tasks/{task_id}")).await;
    assert!(
        dashboard.body.contains("X-Amz-Signature"),
        "the task page links a signed URL"
    );

    // Proxy mode: Tessera streams the object to the labeler who holds the task, nobody else.
    let on = admin
        .submit("/integrations/proxy", &[("proxy", "on")])
        .await;
    assert!(on.body.contains("Proxy mode is on"), "{}", on.body);
    let page = labeler.get(&format!("/label/{task_id}")).await;
    let proxied = format!("/label/{task_id}/attachment");
    assert!(
        page.body.contains(&format!("src=\"{proxied}\"")),
        "{}",
        page.body
    );
    let (status, headers, body) = labeler.get_bytes(&proxied).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, CAT_PNG);
    assert_eq!(headers["content-type"], "image/png");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert!(headers["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("sandbox"));
    let other = join_as(&app, &mut admin, "lab2@label-s3.test", "labeler").await;
    let (status, _, _) = other.get_bytes(&proxied).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "only the labeler holding the task"
    );
    let stranger = app.sign_up("admin@label-other.test", "Other Co").await;
    let (status, _, _) = stranger
        .get_bytes(&format!("/tasks/{task_id}/attachment"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another team");
    let (status, _, body) = admin
        .get_bytes(&format!("/tasks/{task_id}/attachment"))
        .await;
    assert_eq!((status, body.as_slice()), (StatusCode::OK, CAT_PNG));

    // The integration removed: the page says why and the report ends the task unbilled.
    let role_id = role["id"].as_str().unwrap();
    let removed = admin
        .submit(&format!("/integrations/{role_id}/remove"), &[])
        .await;
    assert!(
        removed.body.contains("Integration removed"),
        "{}",
        removed.body
    );
    let page = labeler.get(&format!("/label/{task_id}")).await;
    assert!(
        page.body.contains("id=\"attachment-problem\""),
        "{}",
        page.body
    );
    assert!(page.body.contains("no longer connected"), "{}", page.body);
    assert!(
        page.body
            .contains("value=\"The attachment could not be read"),
        "reason filled in"
    );
    let reported = labeler
        .post_form(
            &format!("/label/{task_id}/error"),
            &[("reason", "The attachment could not be read: gone")],
        )
        .await;
    assert_eq!(reported.status, StatusCode::SEE_OTHER, "{}", reported.body);
    let (_, ended) = live.get(&format!("/task/{task_id}")).await;
    assert_eq!(ended["status"], "error", "{ended}");
    let (_, scope, _) = team_of(&app, "admin@label-s3.test").await;
    assert_eq!(
        app.store.usage_record_count(&scope).await.unwrap(),
        0,
        "not billed"
    );
}
backend_test!(attachments_for_labelers);

/// `--file-store s3://…`: uploads go to the operator's bucket (in parts), not to the data
/// directory, and the partial file is gone afterwards.
async fn files_in_the_operators_bucket(backend: Backend) {
    let moto = Moto::start().await;
    let world = moto.setup("file-store-unused").await;
    let file_store = tessera_server::config::FileStore::Remote {
        url: format!("s3://{}/uploads", world.bucket),
        options: [
            ("aws_access_key_id", moto.admin.access_key_id.as_str()),
            (
                "aws_secret_access_key",
                moto.admin.secret_access_key.as_str(),
            ),
            ("aws_endpoint", world.endpoint.as_str()),
            ("aws_allow_http", "true"),
            ("aws_region", "us-east-1"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .to_vec(),
    };
    let app = TestApp::spawn_with(
        &backend,
        Options {
            file_store: Some(file_store),
            ..Default::default()
        },
    )
    .await;
    let mut admin = app.sign_up("admin@files-s3.test", "Files S3 Co").await;
    let key = create_key(&mut admin, "live", "ci").await;
    let bytes: Vec<u8> = (0..12 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(bytes.clone()).file_name("frames.bin"),
    );
    let response = reqwest::Client::new()
        .post(format!("{}/v1/files/upload", app.base))
        .basic_auth(&key, Some(""))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let file: Value = response.json().await.unwrap();
    let id = file["id"].as_str().unwrap();
    let (team_id, _, _) = team_of(&app, "admin@files-s3.test").await;
    let object = format!("uploads/{team_id}/live/{id}");
    let stored = app
        .state
        .files
        .read(&tessera_store::BlobLocation::Remote(object.clone()))
        .await
        .unwrap_or_else(|e| panic!("{object} is not in the bucket: {e}"));
    assert!(stored == bytes, "the bucket holds the uploaded bytes");
    let local = app.db.dir.join("files").join(team_id.as_str());
    assert!(!local.exists(), "nothing under {}", local.display());
    let partials = app.db.dir.join("files/.partial");
    let left = TestApp::eventually(5, || async {
        let n = std::fs::read_dir(&partials).map(|d| d.count()).unwrap_or(0);
        (n == 0).then_some(n)
    })
    .await;
    assert_eq!(left, 0, "the partial file was removed");
}
backend_test!(files_in_the_operators_bucket);

/// Custom endpoints go through the outbound guard: with private targets refused (production's
/// default), a loopback or metadata-service endpoint is refused when connecting, and plain
/// http is refused for a public one.
async fn private_endpoints_are_refused(backend: Backend) {
    let app = TestApp::spawn_with(
        &backend,
        Options {
            refuse_private_callbacks: true,
            ..Default::default()
        },
    )
    .await;
    let mut admin = app.sign_up("admin@guard.test", "Guard Co").await;
    let live = Api::new(&app, &create_key(&mut admin, "live", "ci").await);
    for (endpoint, needle) in [
        ("http://127.0.0.1:9000", "not a public address"),
        ("http://169.254.169.254", "not a public address"),
        ("http://[::1]:9000", "not a public address"),
        ("http://storage.example.com", "https://"),
    ] {
        let (status, answer) = live
            .post(
                "/integrations",
                json!({"provider": "aws_s3", "name": "Guarded", "buckets": ["guarded-bucket"],
                       "access_key_id": "AKIAGUARDGUARDGUARD0", "secret_access_key": "s",
                       "endpoint": endpoint}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{endpoint}: {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(needle),
            "{endpoint}: {answer}"
        );
    }
    let (_, list) = live.get("/integrations").await;
    assert_eq!(list["docs"], json!([]), "nothing was stored");
}
backend_test!(private_endpoints_are_refused);
