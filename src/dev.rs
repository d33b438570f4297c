//! Development mode: with no JWT key configured, the server signs tokens with a
//! generated secret kept in the data directory, so tokens survive restarts.

use std::path::Path;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use rand::RngCore;

use crate::auth::{Claims, mint_hs256};

const SECRET_FILE: &str = "dev-jwt-secret";

/// Reads the development secret, creating it on first use (the server).
pub fn secret(data_dir: &Path) -> Result<String, String> {
    if let Some(secret) = existing_secret(data_dir) {
        return Ok(secret);
    }
    let path = data_dir.join(SECRET_FILE);
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

/// The development secret a server created in `data_dir`, if there is one.
pub fn existing_secret(data_dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(data_dir.join(SECRET_FILE)).ok()?;
    let text = text.trim();
    (text.len() >= 32).then(|| text.to_owned())
}

/// For `servicegraph token` with no key configured: the secret of the server
/// whose data directory is `data_dir`, never a new one (a token signed with
/// an invented secret would be refused by the running server).
pub fn token_secret(data_dir: &Path) -> Result<String, String> {
    existing_secret(data_dir).ok_or_else(|| {
        let dir = std::path::absolute(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
        format!(
            "no JWT key is configured and {} holds no development secret: run `token` with the server's \
             data directory (--data-dir or SERVICEGRAPH_DATA_DIR; start the server once to create the secret), \
             or configure auth.hs256_secret",
            dir.join(SECRET_FILE).display()
        )
    })
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
