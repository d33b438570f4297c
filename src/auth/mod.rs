//! Authentication and tenancy: verifying bearer JWTs, turning their claims into a
//! [`Principal`], and the rules of who may see which organization's records.

pub mod guard;
mod jwt;
mod principal;

pub use guard::{Admin, Staff};
pub use jwt::{Authenticator, Claims, mint_hs256, principal_from_claims};
pub use principal::{Principal, Role, TenantScope};
