//! Console sessions, held in this process's memory only (a restart signs everyone
//! out; sessions are never written anywhere).
//!
//! - A session id is 32 random bytes (base64url) in a cookie that scripts cannot
//!   read (`HttpOnly`), only sent to this origin (`SameSite=Strict`, `__Host-`,
//!   `Secure`).
//! - It ends after `idle` without a request and at `max` after sign-in, whatever
//!   happens; signing out ends it at once.
//! - Each session has its own CSRF token, which every form carries and every POST must
//!   match (compared in constant time).
//! - The session keeps the credential it was opened with, so the gateway checks it
//!   again on every request: a revoked or expired key ends the session at its next
//!   request.
//! - One-time sign-in links (`rampart demo`) are single-use and short-lived.
//!
//! Bounded: at most `cap` sessions; the oldest goes first.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use ring::rand::SecureRandom;

/// What a console user is, from the actions their roles grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Viewer,
    Reviewer,
    Operator,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Reviewer => "reviewer",
            Self::Operator => "operator",
            Self::Admin => "admin",
        }
    }
}

/// What the user may do, as their roles grant it (checked again by the gateway on
/// every action: this only decides which controls a page shows).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Can {
    pub view: bool,
    pub review: bool,
    pub operate: bool,
    pub admin: bool,
    /// Open captured payloads.
    pub audit_read: bool,
}

impl Can {
    /// The highest role these permissions amount to; `None`: not a console user.
    pub fn role(self) -> Option<Role> {
        if self.admin {
            Some(Role::Admin)
        } else if self.operate {
            Some(Role::Operator)
        } else if self.review {
            Some(Role::Reviewer)
        } else if self.view || self.audit_read {
            Some(Role::Viewer)
        } else {
            None
        }
    }
}

/// One signed-in user.
#[derive(Clone)]
pub struct Session {
    /// The `Authorization` header value the session was opened with.
    pub credential: String,
    /// Who, for pages and audit records (`subject (key id)`).
    pub name: String,
    pub csrf: String,
    created: Instant,
    last: Instant,
    /// A message for the next page (after a redirect), and a secret to show once.
    flash: Option<(bool, String, Option<String>)>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Random bytes as base64url (no padding).
pub fn token(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    if ring::rand::SystemRandom::new().fill(&mut b).is_err() {
        // Without randomness no session may be made: an empty token matches nothing.
        return String::new();
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// Constant-time equality of two tokens.
pub fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && !a.is_empty() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Sessions a console keeps at once (the least recently used goes first).
pub const MAX_SESSIONS: usize = 1000;

#[derive(Debug)]
struct OneTime {
    credential: String,
    expires: Instant,
}

/// The sessions of one console.
#[derive(Debug)]
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
    links: Mutex<HashMap<String, OneTime>>,
    /// OIDC sign-ins under way: state → (PKCE verifier, nonce, expiry).
    oidc: Mutex<HashMap<String, (String, String, Instant)>>,
    idle: Duration,
    max: Duration,
    cap: usize,
}

impl Sessions {
    pub fn new(idle: Duration, max: Duration, cap: usize) -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
            links: Mutex::new(HashMap::new()),
            oidc: Mutex::new(HashMap::new()),
            idle,
            max,
            cap: cap.max(1),
        }
    }

    /// Opens a session; returns its id (the cookie value) — empty if no randomness.
    pub fn open(&self, credential: String, name: String) -> Option<String> {
        let id = token(32);
        let csrf = token(32);
        if id.is_empty() || csrf.is_empty() {
            return None;
        }
        let now = Instant::now();
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, s| self.alive(s, now));
        while map.len() >= self.cap {
            let oldest = map.iter().min_by_key(|(_, s)| s.last).map(|(k, _)| k.clone());
            match oldest {
                Some(k) => map.remove(&k),
                None => break,
            };
        }
        map.insert(
            id.clone(),
            Session {
                credential,
                name,
                csrf,
                created: now,
                last: now,
                flash: None,
            },
        );
        Some(id)
    }

    fn alive(&self, s: &Session, now: Instant) -> bool {
        now.duration_since(s.last) < self.idle && now.duration_since(s.created) < self.max
    }

    /// The live session with this id (its idle clock restarts), or `None`.
    pub fn get(&self, id: &str) -> Option<Session> {
        if id.is_empty() {
            return None;
        }
        let now = Instant::now();
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let alive = map.get(id).is_some_and(|s| self.alive(s, now));
        if !alive {
            map.remove(id);
            return None;
        }
        let s = map.get_mut(id)?;
        s.last = now;
        Some(s.clone())
    }

    /// Leaves a message (and optionally a secret to show once) for the next page.
    pub fn flash(&self, id: &str, ok: bool, text: String, secret: Option<String>) {
        if let Some(s) = self.map.lock().unwrap_or_else(|p| p.into_inner()).get_mut(id) {
            s.flash = Some((ok, text, secret));
        }
    }

    /// The message left for this page, once.
    pub fn take_flash(&self, id: &str) -> Option<(bool, String, Option<String>)> {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(id)
            .and_then(|s| s.flash.take())
    }

    pub fn close(&self, id: &str) {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
    }

    /// Ends every session opened with `credential` (its key was revoked).
    pub fn close_credential(&self, credential: &str) {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, s| !same(&s.credential, credential));
    }

    pub fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A single-use sign-in link token for `credential`, valid for `ttl`.
    pub fn link(&self, credential: String, ttl: Duration) -> String {
        let t = token(24);
        let mut links = self.links.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        links.retain(|_, l| l.expires > now);
        links.insert(
            t.clone(),
            OneTime {
                credential,
                expires: now + ttl,
            },
        );
        t
    }

    /// Starts an OIDC sign-in: returns (state, PKCE verifier, nonce), kept for 10 minutes
    /// (at most `cap` at once: the oldest go first).
    pub fn begin_oidc(&self) -> Option<(String, String, String)> {
        let (state, verifier, nonce) = (token(24), token(48), token(24));
        if state.is_empty() || verifier.is_empty() || nonce.is_empty() {
            return None;
        }
        let now = Instant::now();
        let mut m = self.oidc.lock().unwrap_or_else(|p| p.into_inner());
        m.retain(|_, (_, _, exp)| *exp > now);
        while m.len() >= self.cap {
            let oldest = m.iter().min_by_key(|(_, (_, _, e))| *e).map(|(k, _)| k.clone());
            match oldest {
                Some(k) => m.remove(&k),
                None => break,
            };
        }
        m.insert(
            state.clone(),
            (verifier.clone(), nonce.clone(), now + Duration::from_secs(600)),
        );
        Some((state, verifier, nonce))
    }

    /// Ends an OIDC sign-in (once): its PKCE verifier and nonce.
    pub fn finish_oidc(&self, state: &str) -> Option<(String, String)> {
        let mut m = self.oidc.lock().unwrap_or_else(|p| p.into_inner());
        let found = m.keys().find(|k| same(k, state)).cloned()?;
        let (verifier, nonce, exp) = m.remove(&found)?;
        (exp > Instant::now()).then_some((verifier, nonce))
    }

    /// Redeems a link token (once): the credential it stands for.
    pub fn redeem(&self, t: &str) -> Option<String> {
        let mut links = self.links.lock().unwrap_or_else(|p| p.into_inner());
        let found = links.keys().find(|k| same(k, t)).cloned()?;
        let l = links.remove(&found)?;
        (l.expires > Instant::now()).then_some(l.credential)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sessions_expire_when_idle_and_at_their_maximum_age() {
        let s = Sessions::new(Duration::from_millis(60), Duration::from_millis(150), 10);
        let id = s.open("Bearer k".into(), "ops".into()).unwrap();
        assert_eq!(id.len(), 43);
        let csrf = s.get(&id).unwrap().csrf;
        assert!(same(&csrf, &s.get(&id).unwrap().csrf));
        // Kept alive by use until the absolute limit.
        for _ in 0..4 {
            std::thread::sleep(Duration::from_millis(30));
            assert!(s.get(&id).is_some());
        }
        std::thread::sleep(Duration::from_millis(40));
        assert!(s.get(&id).is_none(), "past the maximum age");
        let id = s.open("Bearer k".into(), "ops".into()).unwrap();
        std::thread::sleep(Duration::from_millis(80));
        assert!(s.get(&id).is_none(), "idle too long");
        assert!(s.get("").is_none() && s.get("nope").is_none());
    }

    #[test]
    fn links_work_once_and_sessions_are_bounded() {
        let s = Sessions::new(Duration::from_secs(60), Duration::from_secs(60), 2);
        let t = s.link("Bearer k".into(), Duration::from_secs(60));
        assert_eq!(s.redeem(&t).as_deref(), Some("Bearer k"));
        assert_eq!(s.redeem(&t), None);
        let expired = s.link("Bearer k".into(), Duration::ZERO);
        assert_eq!(s.redeem(&expired), None);
        let a = s.open("a".into(), "a".into()).unwrap();
        std::thread::sleep(Duration::from_millis(2));
        let b = s.open("b".into(), "b".into()).unwrap();
        let _ = s.get(&a);
        let c = s.open("c".into(), "c".into()).unwrap();
        assert!(s.get(&b).is_none(), "the least recently used goes");
        assert!(s.get(&a).is_some() && s.get(&c).is_some());
        s.close_credential("a");
        assert!(s.get(&a).is_none());
    }

    #[test]
    fn roles_follow_the_strongest_permission() {
        assert_eq!(Can::default().role(), None);
        let viewer = Can {
            view: true,
            ..Can::default()
        };
        assert_eq!(viewer.role(), Some(Role::Viewer));
        assert_eq!(Can { review: true, ..viewer }.role(), Some(Role::Reviewer));
        assert_eq!(
            Can {
                admin: true,
                ..Can::default()
            }
            .role(),
            Some(Role::Admin)
        );
        assert!(!same("", ""));
        assert!(!same("abc", "abd"));
    }
}
