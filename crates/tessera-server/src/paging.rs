//! The opaque page cursor of keyset-paged lists (`next_token` in the v1 API, `cursor` in
//! dashboard links): where the next page starts, as the last row's creation time and id.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};

/// A cursor that was not made by [`encode_token`]; each caller words the refusal its own way.
#[derive(Debug)]
pub struct InvalidToken;

/// The cursor of the page after the row created at `created_at` with `id`.
pub fn encode_token(created_at: i64, id: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{created_at}.{id}"))
}

/// The row a cursor points after.
pub fn decode_token(token: &str) -> Result<(i64, String), InvalidToken> {
    let bytes = URL_SAFE_NO_PAD
        .decode(token.trim())
        .map_err(|_| InvalidToken)?;
    let text = String::from_utf8(bytes).map_err(|_| InvalidToken)?;
    let (at, id) = text.split_once('.').ok_or(InvalidToken)?;
    if id.is_empty() || id.len() > 64 {
        return Err(InvalidToken);
    }
    Ok((at.parse().map_err(|_| InvalidToken)?, id.to_owned()))
}
