use std::collections::BTreeSet;

use crate::error::{AppError, AppResult};

/// A role granted by the token's `roles` claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Admin,
    Agent,
    Requester,
    Integration,
}

impl Role {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "admin" => Some(Self::Admin),
            "agent" => Some(Self::Agent),
            "requester" => Some(Self::Requester),
            "integration" => Some(Self::Integration),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Agent => "agent",
            Self::Requester => "requester",
            Self::Integration => "integration",
        }
    }
}

/// Which organizations' records a principal may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantScope {
    All,
    /// Sorted, de-duplicated organization ids.
    Organizations(Vec<i64>),
}

/// Who is calling: the verified token's subject, tenant and roles.
#[derive(Debug, Clone)]
pub struct Principal {
    pub subject: String,
    /// The caller's own organization (the token's `tenant`).
    pub organization_id: i64,
    pub roles: BTreeSet<Role>,
    pub scope: TenantScope,
}

impl Principal {
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    pub fn is_admin(&self) -> bool {
        self.has_role(Role::Admin)
    }

    /// Agents and admins work on records; requesters only read and raise their own.
    pub fn is_staff(&self) -> bool {
        self.is_admin() || self.has_role(Role::Agent)
    }

    /// Only requester-like roles: sees the customer-facing view of the catalogue.
    pub fn is_customer_view(&self) -> bool {
        !self.is_staff()
    }

    pub fn can_see(&self, organization_id: i64) -> bool {
        match &self.scope {
            TenantScope::All => true,
            TenantScope::Organizations(ids) => ids.binary_search(&organization_id).is_ok(),
        }
    }

    /// The organization ids visible to the caller, or `None` for all of them.
    pub fn visible_organizations(&self) -> Option<&[i64]> {
        match &self.scope {
            TenantScope::All => None,
            TenantScope::Organizations(ids) => Some(ids),
        }
    }

    pub fn require_admin(&self) -> AppResult<()> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(AppError::Forbidden(
                "this operation needs the admin role".into(),
            ))
        }
    }

    pub fn require_staff(&self) -> AppResult<()> {
        if self.is_staff() {
            Ok(())
        } else {
            Err(AppError::Forbidden(
                "this operation needs the agent or admin role".into(),
            ))
        }
    }
}
