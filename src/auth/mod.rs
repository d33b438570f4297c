//! Authentication and tenancy: verifying bearer JWTs (or integration secrets),
//! turning their claims into a [`Principal`] through the tenant directory, and
//! the rules of who may see which organization's records.

pub mod guard;
mod jwt;
mod principal;
mod tenants;

pub use guard::{Admin, Staff};
pub use jwt::{Authenticator, Claims, mint_hs256, principal_from_claims};
pub use principal::{Principal, Role, TenantScope};
pub use tenants::{TENANT_CACHE_TTL, TenantDirectory, authenticate};
