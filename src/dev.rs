//! Development mode: with no JWT key configured, the server signs tokens with a
//! generated secret kept in the data directory, so tokens survive restarts.

use std::path::Path;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use rand::RngCore;

use crate::auth::{Claims, mint_hs256};

const SECRET_FILE: &str = "dev-jwt-secret";

/// Reads the development secret, creating it on first use.
pub fn secret(data_dir: &Path) -> Result<String, String> {
    let path = data_dir.join(SECRET_FILE);
    if let Ok(text) = std::fs::read_to_string(&path) {
        let text = text.trim().to_owned();
        if text.len() >= 32 {
            return Ok(text);
        }
    }
    std::fs::create_dir_all(data_dir)
        .map_err(|e| format!("cannot create data directory {}: {e}", data_dir.display()))?;
    let mut bytes = [0u8; 48];
    rand::rng().fill_bytes(&mut bytes);
    let secret = URL_SAFE_NO_PAD.encode(bytes);
    std::fs::write(&path, &secret).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
    }
    Ok(secret)
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A 30-day admin token for the provider organization.
pub fn admin_token(secret: &str, provider_code: &str) -> Result<String, String> {
    let now = unix_now();
    mint_hs256(
        secret,
        &Claims {
            sub: "dev-admin".into(),
            tenant: provider_code.into(),
            roles: vec!["admin".into()],
            orgs: Vec::new(),
            exp: now + 30 * 24 * 3600,
            iat: Some(now),
            iss: None,
            aud: None,
        },
    )
}
