use std::{
    collections::{BTreeSet, HashMap},
    time::{Duration, Instant},
};

use jsonwebtoken::{
    Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, decode_header, encode,
    jwk::{JwkSet, KeyAlgorithm},
};
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, RwLock};

use super::{Principal, Role, TenantScope};
use crate::{
    config::{AuthConfig, JwtAlgorithm},
    error::AppError,
};

/// The claims ServiceGraph reads from a token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    /// Code of the caller's organization.
    pub tenant: String,
    #[serde(default)]
    pub roles: Vec<String>,
    /// For agents: codes of the customer organizations they serve (`*` for all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub orgs: Vec<String>,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
}

fn to_alg(a: JwtAlgorithm) -> Algorithm {
    match a {
        JwtAlgorithm::HS256 => Algorithm::HS256,
        JwtAlgorithm::RS256 => Algorithm::RS256,
        JwtAlgorithm::ES256 => Algorithm::ES256,
    }
}

struct JwksState {
    keys: HashMap<String, (DecodingKey, Option<Algorithm>)>,
    last_fetch: Option<Instant>,
}

/// Verifies bearer tokens against the configured keys. Algorithms are pinned by
/// configuration; the token's header only selects among them.
pub struct Authenticator {
    algorithms: Vec<Algorithm>,
    hs256: Option<DecodingKey>,
    pem: Option<(DecodingKey, Algorithm)>,
    jwks: Option<RwLock<JwksState>>,
    jwks_url: Option<String>,
    jwks_refresh_interval: Duration,
    jwks_fetch_lock: Mutex<()>,
    http: reqwest::Client,
    issuer: Option<String>,
    audience: Option<String>,
    leeway: u64,
}

impl Authenticator {
    /// Builds the verifier from configuration, reading PEM and JWKS files and
    /// fetching a JWKS URL once. `dev_secret` stands in for an unconfigured HS256 secret.
    pub async fn from_config(cfg: &AuthConfig, dev_secret: Option<&str>) -> Result<Self, String> {
        let hs_secret = cfg.hs256_secret.as_deref().or(dev_secret);
        let hs256 = hs_secret.map(|s| DecodingKey::from_secret(s.as_bytes()));
        let pem = match &cfg.public_key_pem_file {
            Some(path) => {
                let bytes = std::fs::read(path)
                    .map_err(|e| format!("auth.public_key_pem_file {}: {e}", path.display()))?;
                let key = DecodingKey::from_rsa_pem(&bytes)
                    .map(|k| (k, Algorithm::RS256))
                    .or_else(|_| DecodingKey::from_ec_pem(&bytes).map(|k| (k, Algorithm::ES256)))
                    .map_err(|_| {
                        format!(
                            "auth.public_key_pem_file {} holds no RSA or EC public key",
                            path.display()
                        )
                    })?;
                Some(key)
            }
            None => None,
        };
        let mut jwks_keys = HashMap::new();
        if let Some(path) = &cfg.jwks_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("auth.jwks_file {}: {e}", path.display()))?;
            let set: JwkSet = serde_json::from_str(&text)
                .map_err(|e| format!("auth.jwks_file {}: {e}", path.display()))?;
            jwks_keys = keys_of(&set);
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        let jwks = (cfg.jwks_file.is_some() || cfg.jwks_url.is_some()).then(|| {
            RwLock::new(JwksState {
                keys: jwks_keys,
                last_fetch: None,
            })
        });

        let algorithms = if cfg.algorithms.is_empty() {
            let mut algs = Vec::new();
            if hs256.is_some() {
                algs.push(Algorithm::HS256);
            }
            if let Some((_, alg)) = &pem {
                algs.push(*alg);
            }
            if jwks.is_some() {
                algs.extend([Algorithm::RS256, Algorithm::ES256]);
            }
            algs
        } else {
            cfg.algorithms.iter().copied().map(to_alg).collect()
        };
        if algorithms.is_empty() {
            return Err("auth: no signing key configured".into());
        }
        let auth = Self {
            algorithms,
            hs256,
            pem,
            jwks,
            jwks_url: cfg.jwks_url.clone(),
            jwks_refresh_interval: cfg.jwks_refresh_interval,
            jwks_fetch_lock: Mutex::new(()),
            http,
            issuer: cfg.issuer.clone(),
            audience: cfg.audience.clone(),
            leeway: cfg.leeway_seconds,
        };
        if auth.jwks_url.is_some()
            && let Err(e) = auth.refresh_jwks().await
        {
            // Not fatal: the identity provider may come up after us; tokens fail until it does.
            tracing::warn!(error = %e, "could not fetch the JWKS at start-up");
        }
        Ok(auth)
    }

    /// Verifies signature, algorithm, expiry and (when configured) issuer and audience.
    pub async fn verify(&self, token: &str) -> Result<Claims, AppError> {
        let unauth = |m: &str| AppError::Unauthenticated(m.to_owned());
        let header = decode_header(token).map_err(|_| unauth("malformed bearer token"))?;
        if !self.algorithms.contains(&header.alg) {
            return Err(unauth(
                "token signed with an algorithm this server does not accept",
            ));
        }
        let key = self.key_for(header.alg, header.kid.as_deref()).await?;
        let mut validation = Validation::new(header.alg);
        validation.leeway = self.leeway;
        validation.validate_exp = true;
        let mut required = vec!["exp"];
        match &self.issuer {
            Some(iss) => {
                validation.set_issuer(&[iss]);
                required.push("iss");
            }
            None => validation.iss = None,
        }
        match &self.audience {
            Some(aud) => {
                validation.set_audience(&[aud]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        decode::<Claims>(token, &key, &validation)
            .map(|d| d.claims)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind as K;
                match e.kind() {
                    K::ExpiredSignature => unauth("token has expired"),
                    K::InvalidSignature => unauth("token signature is invalid"),
                    K::InvalidIssuer => unauth("token issuer is not accepted"),
                    K::InvalidAudience => unauth("token audience is not accepted"),
                    K::MissingRequiredClaim(c) => {
                        unauth(&format!("token lacks the required claim {c}"))
                    }
                    K::ImmatureSignature => unauth("token is not valid yet"),
                    _ => unauth("malformed bearer token"),
                }
            })
    }

    async fn key_for(&self, alg: Algorithm, kid: Option<&str>) -> Result<DecodingKey, AppError> {
        let unauth = |m: &str| AppError::Unauthenticated(m.to_owned());
        if alg == Algorithm::HS256 {
            return self
                .hs256
                .clone()
                .ok_or_else(|| unauth("no HS256 key configured"));
        }
        if let (Some(jwks), Some(kid)) = (&self.jwks, kid) {
            if let Some(key) = lookup(&*jwks.read().await, kid, alg) {
                return Ok(key);
            }
            if self.jwks_url.is_some()
                && self.refresh_jwks().await.unwrap_or(false)
                && let Some(key) = lookup(&*jwks.read().await, kid, alg)
            {
                return Ok(key);
            }
            return Err(unauth("token key id (kid) is unknown"));
        }
        match &self.pem {
            Some((key, key_alg)) if *key_alg == alg => Ok(key.clone()),
            _ => Err(unauth("no key for this token")),
        }
    }

    /// Refetches the JWKS unless it was fetched within the refresh interval.
    /// Returns whether a fetch happened.
    async fn refresh_jwks(&self) -> Result<bool, String> {
        let (Some(url), Some(jwks)) = (&self.jwks_url, &self.jwks) else {
            return Ok(false);
        };
        let _guard = self.jwks_fetch_lock.lock().await;
        if let Some(at) = jwks.read().await.last_fetch
            && at.elapsed() < self.jwks_refresh_interval
        {
            return Ok(false);
        }
        // Record the attempt first: a failing endpoint is not hammered either.
        jwks.write().await.last_fetch = Some(Instant::now());
        let set: JwkSet = self
            .http
            .get(url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        let keys = keys_of(&set);
        tracing::info!(keys = keys.len(), "fetched JWKS");
        let mut state = jwks.write().await;
        state.keys.extend(keys);
        Ok(true)
    }
}

fn lookup(state: &JwksState, kid: &str, alg: Algorithm) -> Option<DecodingKey> {
    state
        .keys
        .get(kid)
        .filter(|(_, key_alg)| key_alg.is_none_or(|a| a == alg))
        .map(|(k, _)| k.clone())
}

fn keys_of(set: &JwkSet) -> HashMap<String, (DecodingKey, Option<Algorithm>)> {
    set.keys
        .iter()
        .filter_map(|jwk| {
            let kid = jwk.common.key_id.clone()?;
            let alg = match jwk.common.key_algorithm {
                Some(KeyAlgorithm::RS256) => Some(Algorithm::RS256),
                Some(KeyAlgorithm::ES256) => Some(Algorithm::ES256),
                Some(_) => return None,
                None => None,
            };
            let key = DecodingKey::from_jwk(jwk).ok()?;
            Some((kid, (key, alg)))
        })
        .collect()
}

/// Turns verified claims into a principal, resolving organization codes to ids.
pub fn principal_from_claims(
    claims: &Claims,
    resolve: impl Fn(&str) -> Option<i64>,
) -> Result<Principal, AppError> {
    let organization_id = resolve(&claims.tenant).ok_or_else(|| {
        AppError::Unauthenticated("token tenant is not a known, active organization".into())
    })?;
    let roles: BTreeSet<Role> = claims.roles.iter().filter_map(|r| Role::parse(r)).collect();
    if roles.is_empty() {
        return Err(AppError::Unauthenticated(
            "token grants none of the roles admin, agent, requester, integration".into(),
        ));
    }
    let scope = if roles.contains(&Role::Admin)
        || (roles.contains(&Role::Agent) && claims.orgs.iter().any(|o| o == "*"))
    {
        TenantScope::All
    } else {
        let mut ids = vec![organization_id];
        if roles.contains(&Role::Agent) {
            ids.extend(claims.orgs.iter().filter_map(|code| resolve(code)));
        }
        ids.sort_unstable();
        ids.dedup();
        TenantScope::Organizations(ids)
    };
    Ok(Principal {
        subject: claims.sub.clone(),
        organization_id,
        roles,
        scope,
    })
}

/// Mints an HS256 token, for the `token` subcommand and for tests.
pub fn mint_hs256(secret: &str, claims: &Claims) -> Result<String, String> {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(|e| e.to_string())
}
