//! Transformations of detected values: mask, type tag, keyed hash (a consistent
//! pseudonym per key, e.g. per tenant), and reversible pseudonymisation through a
//! [`Vault`] whose placeholders (`<EMAIL_1>`) are restored later — in one piece with
//! [`Vault::restore`], or as a stream with [`Restorer`], which holds back only a tail
//! that could still become a placeholder.

use std::collections::HashMap;

use ring::hmac;

use crate::kinds::Kind;
use crate::scan::Finding;

/// What to write in place of a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transform {
    /// Letters and digits become `*`; for cards, IBANs and phones the last four stay.
    Mask,
    /// `[EMAIL]`.
    Tag,
    /// `[EMAIL:5f1c0a9e2b]`: HMAC-SHA256 of the value under the hash key, so the same
    /// value gives the same pseudonym for one key and nothing readable for others.
    Hash,
    /// `<EMAIL_1>`, restored from the vault in the response.
    Pseudonymise,
}

/// Longest placeholder the vault writes (`<` + tag + `_` + number + `>`).
pub const MAX_PLACEHOLDER: usize = 40;

/// The originals behind one exchange's placeholders. Same value, same placeholder.
#[derive(Debug, Default, Clone)]
pub struct Vault {
    by_value: HashMap<(Kind, String), String>,
    by_placeholder: HashMap<String, String>,
    next: HashMap<Kind, u32>,
}

impl Vault {
    pub fn is_empty(&self) -> bool {
        self.by_placeholder.is_empty()
    }

    pub fn len(&self) -> usize {
        self.by_placeholder.len()
    }

    /// The placeholders this vault issued.
    pub fn placeholders(&self) -> impl Iterator<Item = &str> {
        self.by_placeholder.keys().map(String::as_str)
    }

    /// The placeholder for a value, issuing a new one if needed. A placeholder that
    /// already occurs in `text` (the caller wrote `<EMAIL_1>` themselves) is skipped, so
    /// restoring never rewrites the caller's own words.
    fn placeholder(&mut self, kind: Kind, value: &str, text: &str) -> String {
        if let Some(p) = self.by_value.get(&(kind, value.to_owned())) {
            return p.clone();
        }
        let n = self.next.entry(kind).or_insert(0);
        let p = loop {
            *n += 1;
            let p = format!("<{}_{}>", kind.tag(), n);
            if !text.contains(&p) {
                break p;
            }
        };
        self.by_value.insert((kind, value.to_owned()), p.clone());
        self.by_placeholder.insert(p.clone(), value.to_owned());
        p
    }

    /// Replaces every placeholder this vault issued with its original.
    pub fn restore(&self, text: &str) -> String {
        if self.is_empty() {
            return text.to_owned();
        }
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(i) = rest.find('<') {
            out.push_str(&rest[..i]);
            let tail = &rest[i..];
            match placeholder_len(tail).and_then(|n| self.by_placeholder.get(&tail[..n]).map(|v| (n, v))) {
                Some((n, original)) => {
                    out.push_str(original);
                    rest = &tail[n..];
                }
                None => {
                    out.push('<');
                    rest = &tail[1..];
                }
            }
        }
        out.push_str(rest);
        out
    }
}

/// Length of a `<TAG_N>` placeholder at the start of `s`, if one is there.
fn placeholder_len(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let end = b.iter().take(MAX_PLACEHOLDER).position(|&c| c == b'>')?;
    let inner = &b[1..end];
    let ok = inner.len() >= 3
        && inner
            .iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == b'_')
        && inner.last().is_some_and(u8::is_ascii_digit);
    ok.then_some(end + 1)
}

/// Whether `s` (starting with `<`) could still grow into a placeholder.
fn placeholder_prefix(s: &str) -> bool {
    s.len() < MAX_PLACEHOLDER
        && s.bytes()
            .skip(1)
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'_')
}

/// Applies transformations to `text` at the given findings (sorted, not overlapping, as
/// the scanner returns them). `transform` picks what happens to each finding; `None`
/// leaves it as it is.
pub fn apply(
    text: &str,
    findings: &[Finding],
    mut transform: impl FnMut(&Finding) -> Option<Transform>,
    hash_key: Option<&hmac::Key>,
    vault: &mut Vault,
) -> String {
    let mut out = String::with_capacity(text.len() + 16 * findings.len());
    let mut at = 0;
    for f in findings {
        let (Some(t), Some(value)) = (transform(f), text.get(f.start..f.end)) else {
            continue;
        };
        if f.start < at {
            continue; // overlapping input: keep the first
        }
        out.push_str(&text[at..f.start]);
        match t {
            Transform::Mask => mask(f.kind, value, &mut out),
            Transform::Tag => {
                out.push('[');
                out.push_str(f.kind.tag());
                out.push(']');
            }
            Transform::Hash => {
                out.push('[');
                out.push_str(f.kind.tag());
                out.push(':');
                let tag = match hash_key {
                    Some(k) => hmac::sign(k, value.as_bytes()),
                    None => hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, b"rampart"), value.as_bytes()),
                };
                for b in &tag.as_ref()[..5] {
                    out.push_str(&format!("{b:02x}"));
                }
                out.push(']');
            }
            Transform::Pseudonymise => out.push_str(&vault.placeholder(f.kind, value, text)),
        }
        at = f.end;
    }
    out.push_str(&text[at..]);
    out
}

fn mask(kind: Kind, value: &str, out: &mut String) {
    let keep_last = matches!(kind, Kind::Card | Kind::Iban | Kind::Phone);
    let total = value.chars().filter(char::is_ascii_alphanumeric).count();
    let mut seen = 0;
    for c in value.chars() {
        if c.is_ascii_alphanumeric() {
            seen += 1;
            if keep_last && total >= 8 && seen > total - 4 {
                out.push(c);
            } else {
                out.push('*');
            }
        } else if c.is_alphanumeric() {
            out.push('*');
        } else {
            out.push(c);
        }
    }
}

/// Restores placeholders in a stream of text pieces. Each `push` returns what can be
/// sent now; only a tail that could still become a placeholder (at most
/// [`MAX_PLACEHOLDER`] bytes) is held back until the next piece or `finish`. The vault
/// is passed in on each call, so one exchange can keep a restorer per stream beside it.
#[derive(Debug, Default, Clone)]
pub struct Restorer {
    held: String,
}

impl Restorer {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, vault: &Vault, piece: &str) -> String {
        self.held.push_str(piece);
        let cut = match self.held.rfind('<') {
            Some(i) if placeholder_prefix(&self.held[i..]) => i,
            _ => self.held.len(),
        };
        let ready = vault.restore(&self.held[..cut]);
        self.held.drain(..cut);
        ready
    }

    pub fn finish(&mut self, vault: &Vault) -> String {
        let rest = std::mem::take(&mut self.held);
        vault.restore(&rest)
    }

    /// Bytes held back right now.
    pub fn held(&self) -> usize {
        self.held.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::Scanner;

    #[test]
    fn transforms() {
        let text = "mail jane@example.com, card 4111 1111 1111 1111, mail jane@example.com again";
        let s = Scanner::all(0.5).unwrap();
        let found = s.scan(text);
        assert_eq!(found.len(), 3);
        let mut v = Vault::default();
        assert_eq!(
            apply(text, &found, |_| Some(Transform::Tag), None, &mut v),
            "mail [EMAIL], card [CARD], mail [EMAIL] again"
        );
        assert_eq!(
            apply(text, &found, |_| Some(Transform::Mask), None, &mut v),
            "mail ****@*******.***, card **** **** **** 1111, mail ****@*******.*** again"
        );
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"tenant-a");
        let hashed = apply(text, &found, |_| Some(Transform::Hash), Some(&key), &mut v);
        let parts: Vec<&str> = hashed.split("[EMAIL:").collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[1][..10], parts[2][..10], "same value, same pseudonym");
        let other = hmac::Key::new(hmac::HMAC_SHA256, b"tenant-b");
        assert_ne!(
            apply(text, &found, |_| Some(Transform::Hash), Some(&other), &mut v),
            hashed
        );
        let pseudo = apply(text, &found, |_| Some(Transform::Pseudonymise), None, &mut v);
        assert_eq!(pseudo, "mail <EMAIL_1>, card <CARD_1>, mail <EMAIL_1> again");
        assert_eq!(v.restore(&pseudo), text);
    }

    #[test]
    fn a_callers_own_placeholder_text_is_never_rewritten() {
        let text = "literal <EMAIL_1> and real bob@example.org";
        let s = Scanner::all(0.5).unwrap();
        let mut v = Vault::default();
        let out = apply(text, &s.scan(text), |_| Some(Transform::Pseudonymise), None, &mut v);
        assert_eq!(out, "literal <EMAIL_1> and real <EMAIL_2>");
        assert_eq!(v.restore(&out), text);
    }

    #[test]
    fn streaming_restore_holds_back_only_a_possible_placeholder() {
        let s = Scanner::all(0.5).unwrap();
        let text = "write to bob@example.org or call +49 30 1234 5678 <b>now</b> a<b";
        let mut v = Vault::default();
        let sent = apply(text, &s.scan(text), |_| Some(Transform::Pseudonymise), None, &mut v);
        for size in 1..8 {
            let mut r = Restorer::new();
            let mut out = String::new();
            let chars: Vec<char> = sent.chars().collect();
            for piece in chars.chunks(size) {
                out.push_str(&r.push(&v, &piece.iter().collect::<String>()));
                assert!(r.held() <= MAX_PLACEHOLDER);
            }
            out.push_str(&r.finish(&v));
            assert_eq!(out, text, "pieces of {size}");
        }
    }
}
