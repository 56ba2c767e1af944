//! Rampart identity: the API key format and its peppered hashing (`apikey`), the key
//! file that stores only hashes (`keyfile`), verification of presented keys (`store`),
//! the principal later stages key on (`principal`), and deny-by-default authorization
//! by roles, routes, models, actions and tenants (`authz`), and JWT verification with
//! the RFC 8725 rules (`jwt`). Pure: no sockets, no async — except the PostgreSQL key
//! store (`keystore_pg`, behind the `postgres` feature), which holds the same records
//! in a table many gateways share. It never logs a key and never keeps a key's secret
//! part.

pub mod apikey;
pub mod authz;
pub mod jwt;
pub mod keyfile;
#[cfg(feature = "postgres")]
pub mod keystore_pg;
#[cfg(feature = "postgres")]
pub mod manage;
pub mod principal;
pub mod store;
pub mod time;

pub use apikey::{ApiKey, Pepper};
pub use authz::{Action, Denied, Policy, Role};
pub use keyfile::{KeyFile, KeyRecord, NewKey};
pub use principal::{Credential, Principal, Scope};
pub use store::{AuthError, KeyChanges, KeyStore};
