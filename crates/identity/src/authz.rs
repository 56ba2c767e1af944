//! Authorization: deny by default. Roles grant actions on routes and models (`*` for
//! all); a principal may do what any of its roles grants, narrowed by the scopes its
//! credential carries. A route that belongs to a tenant is reachable only by
//! principals of that tenant, whatever their roles say.

use std::collections::HashMap;

use crate::principal::Principal;

/// What a principal wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Call models.
    Infer,
    /// Keys, config reload, erasure, and everything `operate` may do.
    Admin,
    /// Decide on review items.
    Review,
    /// Read the audit trail and captured payloads (decrypted).
    AuditRead,
    /// Read metrics, stops, alerts and the review queue (the console's viewer).
    Metrics,
    /// Stop switches and serious-incident records.
    Operate,
}

impl Action {
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "infer" => Action::Infer,
            "admin" => Action::Admin,
            "review" => Action::Review,
            "audit-read" => Action::AuditRead,
            "metrics" => Action::Metrics,
            "operate" => Action::Operate,
            _ => return None,
        })
    }

    pub const NAMES: &'static [&'static str] = &["infer", "admin", "review", "audit-read", "metrics", "operate"];
}

#[derive(Debug, Clone, Default)]
pub struct Role {
    pub routes: Vec<String>,
    pub models: Vec<String>,
    pub actions: Vec<Action>,
}

fn names(list: &[String], item: &str) -> bool {
    list.iter().any(|s| s == "*" || s == item)
}

/// Why a request was refused; the code goes into the 403 body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("this route belongs to another tenant")]
    Tenant,
    #[error("the caller may not use this route")]
    Route,
    #[error("the caller may not use this model")]
    Model,
    #[error("the caller may not perform this action")]
    Action,
}

impl Denied {
    pub fn code(self) -> &'static str {
        match self {
            Denied::Tenant => "tenant_mismatch",
            Denied::Route => "route_not_permitted",
            Denied::Model => "model_not_permitted",
            Denied::Action => "action_not_permitted",
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub roles: HashMap<String, Role>,
}

impl Policy {
    fn roles<'a>(&'a self, p: &'a Principal) -> impl Iterator<Item = &'a Role> + 'a {
        p.roles.iter().filter_map(|r| self.roles.get(r))
    }

    /// May `p` perform `action` on route `route` (owned by `route_tenant`, if any)?
    pub fn route(&self, p: &Principal, route: &str, route_tenant: Option<&str>, action: Action) -> Result<(), Denied> {
        if let Some(t) = route_tenant
            && p.tenant.as_deref() != Some(t)
        {
            return Err(Denied::Tenant);
        }
        if !self.roles(p).any(|r| r.actions.contains(&action)) {
            return Err(Denied::Action);
        }
        let granted = self
            .roles(p)
            .any(|r| r.actions.contains(&action) && names(&r.routes, route));
        if !granted || !p.routes.permits(route) {
            return Err(Denied::Route);
        }
        Ok(())
    }

    /// May `p` use `model`?
    pub fn model(&self, p: &Principal, model: &str) -> Result<(), Denied> {
        let granted = self.roles(p).any(|r| names(&r.models, model));
        if !granted || !p.models.permits(model) {
            return Err(Denied::Model);
        }
        Ok(())
    }

    /// May `p` use every model? (A request that names no model is then the
    /// upstream's business; for anyone else it is refused.)
    pub fn every_model(&self, p: &Principal) -> bool {
        self.roles(p).any(|r| r.models.iter().any(|m| m == "*")) && p.models.permits("*")
    }

    /// May `p` perform `action` at all (admin endpoints)?
    pub fn action(&self, p: &Principal, action: Action) -> Result<(), Denied> {
        if self.roles(p).any(|r| r.actions.contains(&action)) {
            Ok(())
        } else {
            Err(Denied::Action)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::principal::{Credential, Scope};

    fn principal(tenant: Option<&str>, roles: &[&str]) -> Principal {
        Principal {
            subject: "s".into(),
            tenant: tenant.map(str::to_owned),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            credential: Credential::ApiKey,
            key_id: None,
            routes: Scope::default(),
            models: Scope::default(),
        }
    }

    fn policy() -> Policy {
        let mut roles = HashMap::new();
        roles.insert(
            "chat".into(),
            Role {
                routes: vec!["chat".into()],
                models: vec!["small".into()],
                actions: vec![Action::Infer],
            },
        );
        roles.insert(
            "ops".into(),
            Role {
                routes: vec![],
                models: vec![],
                actions: vec![Action::Admin, Action::Metrics],
            },
        );
        Policy { roles }
    }

    #[test]
    fn deny_by_default() {
        let p = policy();
        assert_eq!(
            p.route(&principal(None, &[]), "chat", None, Action::Infer),
            Err(Denied::Action)
        );
        assert_eq!(
            p.route(&principal(None, &["unknown-role"]), "chat", None, Action::Infer),
            Err(Denied::Action)
        );
        assert_eq!(
            p.route(&principal(None, &["chat"]), "other", None, Action::Infer),
            Err(Denied::Route)
        );
        assert!(
            p.route(&principal(None, &["chat"]), "chat", None, Action::Infer)
                .is_ok()
        );
        assert_eq!(p.model(&principal(None, &["chat"]), "large"), Err(Denied::Model));
        assert!(p.model(&principal(None, &["chat"]), "small").is_ok());
        assert_eq!(
            p.route(&principal(None, &["ops"]), "chat", None, Action::Infer),
            Err(Denied::Action)
        );
        assert!(p.action(&principal(None, &["ops"]), Action::Admin).is_ok());
        assert_eq!(
            p.action(&principal(None, &["chat"]), Action::Admin),
            Err(Denied::Action)
        );
    }

    #[test]
    fn tenants_are_isolated_and_scopes_narrow() {
        let p = policy();
        let acme = principal(Some("acme"), &["chat"]);
        assert!(p.route(&acme, "chat", Some("acme"), Action::Infer).is_ok());
        assert_eq!(
            p.route(&acme, "chat", Some("globex"), Action::Infer),
            Err(Denied::Tenant)
        );
        assert_eq!(
            p.route(&principal(None, &["chat"]), "chat", Some("acme"), Action::Infer),
            Err(Denied::Tenant)
        );
        let mut narrowed = acme.clone();
        narrowed.models = Scope(vec!["tiny".into()]);
        assert_eq!(p.model(&narrowed, "small"), Err(Denied::Model));
        narrowed.routes = Scope(vec!["elsewhere".into()]);
        assert_eq!(
            p.route(&narrowed, "chat", Some("acme"), Action::Infer),
            Err(Denied::Route)
        );
    }
}
