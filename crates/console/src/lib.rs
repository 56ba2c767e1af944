//! The admin web console's presentation and session state: pages rendered on the
//! server from the same JSON the admin API returns (`pages`), the layout and escaping
//! (`html`), sessions with idle and absolute expiry, CSRF tokens and one-time sign-in
//! links (`session`), urlencoded forms (`form`), and the one stylesheet and one small
//! script every page uses (`assets`).
//!
//! It owns no gateway state and performs no action: the gateway's admin listener
//! (`rampart_gateway::server::console`) authenticates, authorizes every request against
//! the caller's roles, runs the action through the admin API's own code, and hands
//! this crate the data to render. Every value that reaches a page goes through
//! [`html::esc`]; no page loads anything from another origin.

pub mod assets;
pub mod form;
pub mod html;
pub mod pages;
pub mod session;

pub use session::{Can, Role, Session, Sessions};
