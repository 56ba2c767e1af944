//! Who is calling: the principal every later stage (limits, audit) keys on.

/// How the caller proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// A public route: nobody proved anything.
    Anonymous,
    ApiKey,
    Jwt,
    ClientCertificate,
}

impl Credential {
    pub fn as_str(self) -> &'static str {
        match self {
            Credential::Anonymous => "anonymous",
            Credential::ApiKey => "api_key",
            Credential::Jwt => "jwt",
            Credential::ClientCertificate => "client_certificate",
        }
    }
}

/// An allow-list that may be "everything": empty lists in key files mean "as the
/// roles allow", so keys can only narrow what their roles grant.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scope(pub Vec<String>);

impl Scope {
    /// True when the scope does not restrict, or names `item` (or `*`).
    pub fn permits(&self, item: &str) -> bool {
        self.0.is_empty() || self.0.iter().any(|s| s == "*" || s == item)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub subject: String,
    pub tenant: Option<String>,
    pub roles: Vec<String>,
    pub credential: Credential,
    /// API key id or JWT `kid`/issuer-derived id; never secret.
    pub key_id: Option<String>,
    /// Narrowing scopes carried by the credential itself.
    pub routes: Scope,
    pub models: Scope,
}

impl Principal {
    pub fn anonymous() -> Self {
        Self {
            subject: "anonymous".into(),
            tenant: None,
            roles: Vec::new(),
            credential: Credential::Anonymous,
            key_id: None,
            routes: Scope::default(),
            models: Scope::default(),
        }
    }
}
