//! The TOTP and recovery-code glue: RFC 6238 codes as every authenticator app makes them
//! (HMAC-SHA1, 6 digits, 30-second steps, through `totp-rs`), one step of clock skew either
//! way, the matched step returned so the caller can refuse a code used before, the
//! enrollment QR code as inline SVG, and recovery codes.

use qrcode::{render::svg, EcLevel, QrCode};
use rand::RngCore;
use totp_rs::{Algorithm, Secret, TOTP};

/// Seconds per time step (the authenticator apps' default).
pub const STEP_SECS: u64 = 30;
/// Digits of a code.
pub const DIGITS: usize = 6;
/// Bytes of a new secret: 160 bits, the HMAC-SHA1 block RFC 4226 recommends.
const SECRET_BYTES: usize = 20;
/// Recovery codes made at set-up and on regeneration.
pub const RECOVERY_CODES: usize = 10;
/// Characters of a recovery code (base32: 5 bits each, 80 bits).
const RECOVERY_CODE_CHARS: usize = 16;
/// What the authenticator app lists the account under.
const ISSUER: &str = "Tessera";

/// A fresh random secret.
pub fn new_secret() -> Vec<u8> {
    let mut secret = vec![0u8; SECRET_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    secret
}

/// The secret as people type it into an app: base32, in groups of four.
pub fn secret_text(secret: &[u8]) -> String {
    let encoded = match Secret::Raw(secret.to_vec()).to_encoded() {
        Secret::Encoded(text) => text,
        Secret::Raw(_) => unreachable!("to_encoded returns the encoded form"),
    };
    grouped(&encoded, 4)
}

fn totp(secret: &[u8], digits: usize, account: &str) -> anyhow::Result<TOTP> {
    // The app shows "Tessera (account)"; the URI format reserves ':' for that separator.
    TOTP::new(
        Algorithm::SHA1,
        digits,
        1,
        STEP_SECS,
        secret.to_vec(),
        Some(ISSUER.to_owned()),
        account.replace(':', "_"),
    )
    .map_err(|e| anyhow::anyhow!("two-factor secret unusable: {e}"))
}

/// The `otpauth://` URI the QR code carries.
pub fn otpauth_uri(secret: &[u8], account: &str) -> anyhow::Result<String> {
    Ok(totp(secret, DIGITS, account)?.get_url())
}

/// The code for `unix_secs` (what an app shows then).
pub fn code_at(secret: &[u8], unix_secs: u64) -> anyhow::Result<String> {
    Ok(totp(secret, DIGITS, "")?.generate(unix_secs))
}

/// The time step of `unix_secs`.
pub fn step_of(unix_secs: u64) -> i64 {
    i64::try_from(unix_secs / STEP_SECS).unwrap_or(i64::MAX)
}

/// Whether `input` has the shape of a code (six digits, spaces allowed as apps show them).
pub fn looks_like_code(input: &str) -> Option<String> {
    let digits: String = input.chars().filter(|c| !c.is_whitespace()).collect();
    (digits.len() == DIGITS && digits.chars().all(|c| c.is_ascii_digit())).then_some(digits)
}

/// The time step whose code `input` is, among the current step and one either side (clock
/// skew), and only later than `last_used_step`: a code accepted once never matches again.
/// Compared in constant time.
pub fn matching_step(
    secret: &[u8],
    input: &str,
    unix_secs: u64,
    last_used_step: i64,
) -> anyhow::Result<Option<i64>> {
    let Some(code) = looks_like_code(input) else {
        return Ok(None);
    };
    let totp = totp(secret, DIGITS, "")?;
    let now = step_of(unix_secs);
    for step in [now - 1, now, now + 1] {
        if step <= last_used_step || step < 0 {
            continue;
        }
        let at = u64::try_from(step).unwrap_or(0) * STEP_SECS;
        if crate::crypto::secure_eq(&totp.generate(at), &code) {
            return Ok(Some(step));
        }
    }
    Ok(None)
}

/// The QR code of `uri` as an inline `<svg>` element (no XML prolog), sized by CSS.
pub fn qr_svg(uri: &str) -> anyhow::Result<String> {
    let code = QrCode::with_error_correction_level(uri.as_bytes(), EcLevel::M)
        .map_err(|e| anyhow::anyhow!("QR code: {e}"))?;
    let image = code
        .render::<svg::Color<'_>>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .build();
    let start = image.find("<svg").unwrap_or(0);
    Ok(image[start..].replacen(
        "<svg ",
        "<svg role=\"img\" aria-label=\"QR code for your authenticator app\" class=\"qr\" ",
        1,
    ))
}

/// New recovery codes, as shown once (`abcd-efgh-ijkl-mnop`).
pub fn new_recovery_codes() -> Vec<String> {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    (0..RECOVERY_CODES)
        .map(|_| {
            let mut bytes = [0u8; RECOVERY_CODE_CHARS];
            rand::rngs::OsRng.fill_bytes(&mut bytes);
            let raw: String = bytes
                .iter()
                .map(|b| char::from(ALPHABET[usize::from(b & 31)]))
                .collect();
            grouped(&raw, 4).replace(' ', "-")
        })
        .collect()
}

/// A recovery code as typed, reduced to its characters (case, dashes and spaces dropped);
/// `None` when it cannot be one.
pub fn normalize_recovery_code(input: &str) -> Option<String> {
    let code: String = input
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    (code.len() == RECOVERY_CODE_CHARS && code.chars().all(|c| c.is_ascii_alphanumeric()))
        .then_some(code)
}

/// The digest a recovery code is stored under.
pub fn recovery_code_digest(normalized: &str) -> String {
    crate::crypto::token_digest(&format!("recovery-code:{normalized}"))
}

fn grouped(text: &str, size: usize) -> String {
    text.as_bytes()
        .chunks(size)
        .map(|chunk| String::from_utf8_lossy(chunk).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, HMAC-SHA1 (its 20-byte ASCII key).
    const RFC_SECRET: &[u8] = b"12345678901234567890";
    const RFC_VECTORS: [(u64, &str); 6] = [
        (59, "94287082"),
        (1_111_111_109, "07081804"),
        (1_111_111_111, "14050471"),
        (1_234_567_890, "89005924"),
        (2_000_000_000, "69279037"),
        (20_000_000_000, "65353130"),
    ];

    #[test]
    fn rfc_6238_vectors() {
        let eight = totp(RFC_SECRET, 8, "").unwrap();
        for (time, expected) in RFC_VECTORS {
            assert_eq!(eight.generate(time), expected, "t={time}");
            // Six digits are the same number modulo 10^6, as apps show it.
            assert_eq!(
                code_at(RFC_SECRET, time).unwrap(),
                expected[2..],
                "t={time}"
            );
        }
    }

    #[test]
    fn one_step_of_skew_and_no_replay() {
        let now = 1_234_567_890;
        let step = step_of(now);
        for (offset, accepted) in [
            (-60i64, false),
            (-30, true),
            (0, true),
            (30, true),
            (60, false),
        ] {
            let at = now.checked_add_signed(offset).unwrap();
            let code = code_at(RFC_SECRET, at).unwrap();
            let found = matching_step(RFC_SECRET, &code, now, 0).unwrap();
            assert_eq!(found.is_some(), accepted, "offset {offset}");
            if accepted {
                assert_eq!(found, Some(step_of(at)));
            }
        }
        let code = code_at(RFC_SECRET, now).unwrap();
        assert_eq!(
            matching_step(RFC_SECRET, &code, now, step).unwrap(),
            None,
            "used already"
        );
        assert_eq!(
            matching_step(RFC_SECRET, &code, now, step - 1).unwrap(),
            Some(step)
        );
        let spaced = format!("{} {}", &code[..3], &code[3..]);
        assert_eq!(
            matching_step(RFC_SECRET, &spaced, now, 0).unwrap(),
            Some(step)
        );
        for bad in ["", "12345", "1234567", "abcdef", "١٢٣٤٥٦"] {
            assert_eq!(
                matching_step(RFC_SECRET, bad, now, 0).unwrap(),
                None,
                "{bad}"
            );
        }
    }

    #[test]
    fn secrets_uris_and_qr() {
        let secret = new_secret();
        assert_eq!(secret.len(), 20);
        assert_ne!(secret, new_secret());
        let text = secret_text(RFC_SECRET);
        assert_eq!(text, "GEZD GNBV GY3T QOJQ GEZD GNBV GY3T QOJQ");
        let uri = otpauth_uri(RFC_SECRET, "ada:x@example.com").unwrap();
        assert!(
            uri.starts_with("otpauth://totp/Tessera:ada_x%40example.com?"),
            "{uri}"
        );
        assert!(
            uri.contains("secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"),
            "{uri}"
        );
        assert!(uri.contains("issuer=Tessera"), "{uri}");
        let svg = qr_svg(&uri).unwrap();
        assert!(svg.starts_with("<svg role=\"img\""), "{svg}");
        assert!(svg.ends_with("</svg>"));
        assert!(
            totp(&[1u8; 8], DIGITS, "").is_err(),
            "a short secret is refused"
        );
    }

    #[test]
    fn recovery_codes() {
        let codes = new_recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODES);
        let unique: std::collections::HashSet<_> = codes.iter().collect();
        assert_eq!(unique.len(), RECOVERY_CODES);
        for code in &codes {
            assert_eq!(code.len(), 19, "{code}");
            let normalized = normalize_recovery_code(code).unwrap();
            assert_eq!(normalized.len(), 16);
            assert_eq!(
                normalize_recovery_code(&code.to_uppercase().replace('-', " ")),
                Some(normalized.clone())
            );
            assert_eq!(recovery_code_digest(&normalized).len(), 64);
        }
        assert_eq!(normalize_recovery_code("short"), None);
        assert_eq!(normalize_recovery_code("abcd-efgh-ijkl-mno!"), None);
    }
}
