//! File bytes: `<team>/<mode>/<file id>` under the data directory, or under a bucket prefix
//! when the operator gives `--file-store s3://…` (or `gs://`, `az://`) so that replicas on
//! several hosts share them. Either way a file is first written through a [`PartialFile`] in
//! `ROOT/.partial/`, so that it appears under its final name only once it is complete, and
//! the bytes stream chunk by chunk instead of being held in memory.

use std::{
    io,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, SystemTime},
};

use object_store::{path::Path as ObjectPath, ObjectStore, ObjectStoreExt, WriteMultipart};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::new_id;

/// Where a partial file lives while it is written; never a team id (those start `team_`).
const PARTIAL_DIR: &str = ".partial";

/// Where stored files go: the local directory, or a bucket (its partial files still go
/// to the local directory first).
#[derive(Clone)]
pub struct FileStorage {
    root: PathBuf,
    remote: Option<RemoteFiles>,
}

/// The operator's bucket for files.
#[derive(Clone)]
struct RemoteFiles {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    url: String,
}

impl std::fmt::Debug for FileStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileStorage")
            .field("root", &self.root)
            .field("remote", &self.remote.as_ref().map(|r| r.url.as_str()))
            .finish()
    }
}

/// Size of the parts a file is uploaded in (S3's minimum is 5 MiB).
const PART_BYTES: usize = 8 * 1024 * 1024;

/// A file that stopped receiving bytes because it passed its byte cap.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("the file passed its limit of {cap} bytes")]
    TooLarge { cap: u64 },
    #[error("writing the file: {0}")]
    Io(#[from] io::Error),
}

/// A file being written: counted and hashed as bytes arrive, removed unless persisted (also
/// when the request is dropped half-way, e.g. the client disconnects).
#[derive(Debug)]
pub struct PartialFile {
    path: PathBuf,
    file: Option<tokio::fs::File>,
    hasher: Sha256,
    size: u64,
    cap: u64,
}

/// A complete file under its final name.
#[derive(Debug, Clone)]
pub struct StoredBlob {
    pub location: BlobLocation,
    pub size: u64,
    /// Hex SHA-256 of the content.
    pub sha256: String,
}

/// Where a stored file is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobLocation {
    Local(PathBuf),
    /// The object's path in the file store's bucket.
    Remote(String),
}

impl FileStorage {
    /// Files in the local directory `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            remote: None,
        }
    }

    /// Files in the bucket at `url` (`s3://bucket/prefix`, `gs://…`, `az://container/prefix`),
    /// with the operator's credentials from the environment (`AWS_*`, `GOOGLE_*`, `AZURE_*`:
    /// the operator's identity, not a team's) and `options` over them (object_store's
    /// configuration keys, e.g. `aws_endpoint`); partial files stay under `root`. Nothing is
    /// contacted yet.
    pub fn remote(
        root: impl Into<PathBuf>,
        url: &str,
        options: &[(String, String)],
    ) -> Result<Self, String> {
        use object_store::{
            aws::AmazonS3Builder, azure::MicrosoftAzureBuilder, gcp::GoogleCloudStorageBuilder,
        };
        let parsed = url::Url::parse(url)
            .map_err(|_| format!("--file-store: \"{url}\" is neither a directory nor a URL"))?;
        let bad = |e: object_store::Error| format!("--file-store {url}: {e}");
        let bucket_url = format!(
            "{}://{}",
            parsed.scheme(),
            parsed.host_str().unwrap_or_default()
        );
        let store: Arc<dyn ObjectStore> = match parsed.scheme() {
            "s3" => {
                let mut b = AmazonS3Builder::from_env().with_url(&bucket_url);
                for (k, v) in options {
                    b = b.with_config(k.parse().map_err(bad)?, v);
                }
                Arc::new(b.build().map_err(bad)?)
            }
            "gs" => {
                let mut b = GoogleCloudStorageBuilder::from_env().with_url(&bucket_url);
                for (k, v) in options {
                    b = b.with_config(k.parse().map_err(bad)?, v);
                }
                Arc::new(b.build().map_err(bad)?)
            }
            "az" => {
                let mut b = MicrosoftAzureBuilder::from_env().with_url(&bucket_url);
                for (k, v) in options {
                    b = b.with_config(k.parse().map_err(bad)?, v);
                }
                Arc::new(b.build().map_err(bad)?)
            }
            other => {
                return Err(format!(
                    "--file-store: \"{other}://\" is not supported; use a directory, s3://, gs:// or az://"
                ))
            }
        };
        Ok(Self {
            root: root.into(),
            remote: Some(RemoteFiles {
                store,
                prefix: parsed.path().trim_matches('/').to_owned(),
                url: url.to_owned(),
            }),
        })
    }

    /// Where files go, for the startup banner.
    pub fn describe(&self) -> String {
        match &self.remote {
            Some(remote) => remote.url.clone(),
            None => self.root.display().to_string(),
        }
    }

    /// The local path of a stored file (local storage).
    pub fn path(&self, storage_key: &str) -> PathBuf {
        self.root.join(storage_key)
    }

    fn object_path(remote: &RemoteFiles, storage_key: &str) -> ObjectPath {
        if remote.prefix.is_empty() {
            ObjectPath::from(storage_key)
        } else {
            ObjectPath::from(format!("{}/{storage_key}", remote.prefix))
        }
    }

    /// The bytes of a stored file (tests, and the day files are served).
    pub async fn read(&self, location: &BlobLocation) -> io::Result<Vec<u8>> {
        match (location, &self.remote) {
            (BlobLocation::Local(path), _) => tokio::fs::read(path).await,
            (BlobLocation::Remote(key), Some(remote)) => {
                let got = remote
                    .store
                    .get(&ObjectPath::from(key.as_str()))
                    .await
                    .map_err(io::Error::other)?;
                Ok(got.bytes().await.map_err(io::Error::other)?.to_vec())
            }
            (BlobLocation::Remote(_), None) => Err(io::Error::other(
                "a file in a bucket, but no --file-store bucket is configured",
            )),
        }
    }

    /// Removes a stored file whose database row could not be written.
    pub async fn remove(&self, location: &BlobLocation) {
        match (location, &self.remote) {
            (BlobLocation::Local(path), _) => remove_blob(path).await,
            (BlobLocation::Remote(key), Some(remote)) => {
                if let Err(err) = remote.store.delete(&ObjectPath::from(key.as_str())).await {
                    tracing::warn!(error = %err, key = %key, "removing an unrecorded file failed");
                }
            }
            (BlobLocation::Remote(_), None) => {}
        }
    }

    /// Starts a file that accepts at most `cap` bytes.
    pub async fn begin(&self, cap: u64) -> io::Result<PartialFile> {
        let dir = self.root.join(PARTIAL_DIR);
        tokio::fs::create_dir_all(&dir).await?;
        let path = dir.join(format!("{}.partial", new_id("up")));
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .await?;
        Ok(PartialFile {
            path,
            file: Some(file),
            hasher: Sha256::new(),
            size: 0,
            cap,
        })
    }

    /// Removes partial files untouched for `older_than`: left by a crash or a kill, since
    /// every other ending removes its own. Returns how many were removed.
    pub async fn sweep_partials(&self, older_than: Duration) -> io::Result<usize> {
        let dir = self.root.join(PARTIAL_DIR);
        let mut entries = match tokio::fs::read_dir(&dir).await {
            Ok(entries) => entries,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(err) => return Err(err),
        };
        let now = SystemTime::now();
        let mut removed = 0;
        while let Some(entry) = entries.next_entry().await? {
            let Ok(meta) = entry.metadata().await else {
                continue;
            };
            let age = meta
                .modified()
                .ok()
                .and_then(|m| now.duration_since(m).ok())
                .unwrap_or_default();
            if meta.is_file() && age >= older_than {
                match tokio::fs::remove_file(entry.path()).await {
                    Ok(()) => removed += 1,
                    Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                    Err(err) => return Err(err),
                }
            }
        }
        Ok(removed)
    }
}

impl PartialFile {
    /// Appends `chunk`, or refuses it (writing nothing of it) when the file would pass its cap.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), WriteError> {
        let len = chunk.len() as u64;
        if self.size.saturating_add(len) > self.cap {
            return Err(WriteError::TooLarge { cap: self.cap });
        }
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| io::Error::other("the partial file is closed"))?;
        file.write_all(chunk).await?;
        self.hasher.update(chunk);
        self.size += len;
        Ok(())
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Flushes the bytes to disk and moves the file to `storage_key`.
    pub async fn persist(
        mut self,
        storage: &FileStorage,
        storage_key: &str,
    ) -> io::Result<StoredBlob> {
        let mut file = self
            .file
            .take()
            .ok_or_else(|| io::Error::other("the partial file is closed"))?;
        file.flush().await?;
        file.sync_all().await?;
        drop(file);
        let sha256 = hex::encode(std::mem::take(&mut self.hasher).finalize());
        if let Some(remote) = &storage.remote {
            let key = FileStorage::object_path(remote, storage_key);
            upload(remote, &key, &self.path).await?;
            // Uploaded: `Drop` removes the local partial file.
            return Ok(StoredBlob {
                location: BlobLocation::Remote(key.to_string()),
                size: self.size,
                sha256,
            });
        }
        let path = storage.path(storage_key);
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await?;
        }
        tokio::fs::rename(&self.path, &path).await?;
        // Renamed: nothing left for `Drop` to remove.
        self.path = PathBuf::new();
        Ok(StoredBlob {
            location: BlobLocation::Local(path),
            size: self.size,
            sha256,
        })
    }

    /// Removes the partial file now (error paths call this so the file is gone before the
    /// answer is sent; `Drop` covers the rest).
    pub async fn discard(mut self) {
        self.file.take();
        let path = std::mem::take(&mut self.path);
        if let Err(err) = tokio::fs::remove_file(&path).await {
            if err.kind() != io::ErrorKind::NotFound {
                tracing::warn!(error = %err, path = %path.display(), "removing a partial file failed");
            }
        }
    }
}

impl Drop for PartialFile {
    fn drop(&mut self) {
        if self.path.as_os_str().is_empty() {
            return;
        }
        self.file.take();
        remove_soon(std::mem::take(&mut self.path));
    }
}

/// Streams the local file at `from` to `key` in the bucket, a part at a time.
async fn upload(remote: &RemoteFiles, key: &ObjectPath, from: &Path) -> io::Result<()> {
    let upload = remote
        .store
        .put_multipart(key)
        .await
        .map_err(io::Error::other)?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
    let sent: io::Result<()> = async {
        let mut file = tokio::fs::File::open(from).await?;
        let mut buffer = vec![0u8; 1024 * 1024];
        loop {
            let n = file.read(&mut buffer).await?;
            if n == 0 {
                return Ok(());
            }
            writer
                .wait_for_capacity(4)
                .await
                .map_err(io::Error::other)?;
            writer.write(&buffer[..n]);
        }
    }
    .await;
    match sent {
        Ok(()) => writer.finish().await.map(|_| ()).map_err(io::Error::other),
        Err(err) => {
            // An unfinished multipart upload is stored (and billed) until aborted.
            if let Err(abort) = writer.abort().await {
                tracing::warn!(error = %abort, "aborting an unfinished upload failed");
            }
            Err(err)
        }
    }
}

/// Removes `path` off the async threads when a runtime is there, else at once.
fn remove_soon(path: PathBuf) {
    let remove = move || {
        if let Err(err) = std::fs::remove_file(&path) {
            if err.kind() != io::ErrorKind::NotFound {
                tracing::warn!(error = %err, path = %path.display(), "removing a partial file failed");
            }
        }
    };
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => {
            handle.spawn_blocking(remove);
        }
        Err(_) => remove(),
    }
}

/// Removes a stored file whose database row could not be written.
pub async fn remove_blob(path: &Path) {
    if let Err(err) = tokio::fs::remove_file(path).await {
        if err.kind() != io::ErrorKind::NotFound {
            tracing::warn!(error = %err, path = %path.display(), "removing an unrecorded file failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_root() -> PathBuf {
        std::env::temp_dir().join(new_id("tessera-blobs"))
    }

    fn partials(root: &Path) -> usize {
        std::fs::read_dir(root.join(PARTIAL_DIR))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    #[tokio::test]
    async fn a_persisted_file_is_complete_hashed_and_leaves_no_partial() {
        let root = temp_root();
        let storage = FileStorage::new(&root);
        let mut file = storage.begin(10).await.unwrap();
        file.write(b"hello").await.unwrap();
        file.write(b"!").await.unwrap();
        let blob = file.persist(&storage, "team_x/test/file_1").await.unwrap();
        assert_eq!(blob.size, 6);
        assert_eq!(
            blob.sha256,
            "ce06092fb948d9ffac7d1a376e404b26b7575bcc11ee05a4615fef4fec3a308b"
        );
        assert_eq!(
            blob.location,
            BlobLocation::Local(root.join("team_x/test/file_1"))
        );
        assert_eq!(storage.read(&blob.location).await.unwrap(), b"hello!");
        assert_eq!(partials(&root), 0);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[tokio::test]
    async fn passing_the_cap_refuses_the_chunk_and_dropping_removes_the_file() {
        let root = temp_root();
        let storage = FileStorage::new(&root);
        let mut file = storage.begin(4).await.unwrap();
        file.write(b"abcd").await.unwrap();
        assert!(matches!(
            file.write(b"e").await,
            Err(WriteError::TooLarge { cap: 4 })
        ));
        assert_eq!(file.size(), 4);
        assert_eq!(partials(&root), 1);
        file.discard().await;
        assert_eq!(partials(&root), 0);

        let mut dropped = storage.begin(4).await.unwrap();
        dropped.write(b"ab").await.unwrap();
        drop(dropped);
        for _ in 0..100 {
            if partials(&root) == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(partials(&root), 0, "dropped partial files are removed");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[tokio::test]
    async fn the_sweep_removes_only_stale_partials() {
        let root = temp_root();
        let storage = FileStorage::new(&root);
        assert_eq!(storage.sweep_partials(Duration::ZERO).await.unwrap(), 0);
        std::fs::create_dir_all(root.join(PARTIAL_DIR)).unwrap();
        let stale = root.join(PARTIAL_DIR).join("up_old.partial");
        std::fs::write(&stale, b"left by a crash").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&stale)
            .unwrap()
            .set_modified(SystemTime::now() - Duration::from_secs(7200))
            .unwrap();
        let fresh = storage.begin(10).await.unwrap();
        assert_eq!(
            storage
                .sweep_partials(Duration::from_secs(3600))
                .await
                .unwrap(),
            1
        );
        assert!(!stale.exists());
        assert_eq!(partials(&root), 1, "an upload in progress is kept");
        fresh.discard().await;
        std::fs::remove_dir_all(&root).unwrap();
    }
}
