//! File storage limits: the largest single file, and each team's quota of stored bytes and
//! files. The quota covers a team's live and test files together, since both take the same
//! disk.

/// Largest file accepted by upload or import (50 MiB).
pub const MAX_FILE_BYTES: u64 = 50 * 1024 * 1024;

/// Default quota of stored bytes per team (5 GiB).
pub const DEFAULT_QUOTA_BYTES: u64 = 5 * 1024 * 1024 * 1024;

/// Default quota of stored files per team.
pub const DEFAULT_QUOTA_FILES: u64 = 100_000;

/// How much one team may store, both modes together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StorageQuota {
    pub bytes: u64,
    pub files: u64,
}

impl Default for StorageQuota {
    fn default() -> Self {
        Self {
            bytes: DEFAULT_QUOTA_BYTES,
            files: DEFAULT_QUOTA_FILES,
        }
    }
}

/// What a team stores now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StorageUsage {
    pub bytes: u64,
    pub files: u64,
}

/// Why a file does not fit, with a message that states what is used and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuotaExceeded {
    #[error(
        "Your team's file storage quota is used up: {used} files stored of {limit} allowed. \
         Ask the operator to raise the limit."
    )]
    Files { used: u64, limit: u64 },
    #[error(
        "Your team's file storage quota would be exceeded: {used} bytes ({}) stored of {limit} \
         bytes ({}) allowed, so a file of at most {} bytes ({}) fits. Ask the operator to raise \
         the limit.",
        human(*.used), human(*.limit), .limit.saturating_sub(*.used),
        human(.limit.saturating_sub(*.used))
    )]
    Bytes { used: u64, limit: u64 },
}

impl StorageQuota {
    /// Bytes the team may still add (0 when full or over, e.g. after the quota was lowered).
    pub fn free_bytes(&self, usage: StorageUsage) -> u64 {
        self.bytes.saturating_sub(usage.bytes)
    }

    /// Whether one more file of `size` bytes fits beside `usage`.
    pub fn admit(&self, usage: StorageUsage, size: u64) -> Result<(), QuotaExceeded> {
        if usage.files >= self.files {
            return Err(QuotaExceeded::Files {
                used: usage.files,
                limit: self.files,
            });
        }
        if size > self.free_bytes(usage) {
            return Err(QuotaExceeded::Bytes {
                used: usage.bytes,
                limit: self.bytes,
            });
        }
        Ok(())
    }

    /// The largest file the team may send now: the per-file limit or the free bytes, whichever
    /// is smaller. Uploads stop writing once they pass it.
    pub fn largest_file(&self, usage: StorageUsage) -> u64 {
        MAX_FILE_BYTES.min(self.free_bytes(usage))
    }
}

/// A byte count for people: `512 B`, `1.5 KiB`, `5.0 GiB`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUOTA: StorageQuota = StorageQuota {
        bytes: 1000,
        files: 3,
    };

    fn usage(bytes: u64, files: u64) -> StorageUsage {
        StorageUsage { bytes, files }
    }

    #[test]
    fn a_file_fits_up_to_the_last_byte() {
        assert_eq!(QUOTA.admit(usage(400, 1), 600), Ok(()));
        assert_eq!(
            QUOTA.admit(usage(400, 1), 601),
            Err(QuotaExceeded::Bytes {
                used: 400,
                limit: 1000
            })
        );
        assert_eq!(QUOTA.largest_file(usage(400, 1)), 600);
        assert_eq!(
            StorageQuota::default().largest_file(usage(0, 0)),
            MAX_FILE_BYTES
        );
    }

    #[test]
    fn the_file_count_is_a_limit_too() {
        assert_eq!(QUOTA.admit(usage(0, 2), 0), Ok(()));
        let err = QUOTA.admit(usage(0, 3), 0).unwrap_err();
        assert_eq!(err, QuotaExceeded::Files { used: 3, limit: 3 });
        assert!(err.to_string().contains("3 files stored of 3 allowed"));
    }

    #[test]
    fn a_lowered_quota_leaves_no_room_rather_than_underflowing() {
        assert_eq!(QUOTA.free_bytes(usage(5000, 1)), 0);
        assert_eq!(QUOTA.largest_file(usage(5000, 1)), 0);
        assert!(QUOTA.admit(usage(5000, 1), 1).is_err());
    }

    #[test]
    fn messages_state_used_and_limit() {
        let err = StorageQuota::default()
            .admit(usage(DEFAULT_QUOTA_BYTES - 10, 5), 1024)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("5368709110 bytes (5.0 GiB) stored of 5368709120 bytes (5.0 GiB)"),
            "{err}"
        );
        assert!(err.contains("at most 10 bytes (10 B) fits"), "{err}");
        assert_eq!(human(1536), "1.5 KiB");
    }
}
