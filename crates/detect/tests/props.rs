//! Properties over generated texts: every planted value is found; redaction leaves no
//! detected value behind (and nothing detectable at all); pseudonymise → restore is the
//! identity, in one piece and streamed in arbitrary pieces.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation
)]

use proptest::prelude::*;
use rampart_detect::redact::{Restorer, Transform, Vault, apply};
use rampart_detect::{Kind, Scanner};

fn luhn_complete(prefix: &[u32]) -> u32 {
    // The digit that makes prefix + digit pass Luhn.
    (0..10)
        .find(|&c| {
            let mut d = prefix.to_vec();
            d.push(c);
            rampart_detect::checks::luhn_ok(&d)
        })
        .unwrap()
}

fn card() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec![4u32, 51, 55, 37]),
        prop::collection::vec(0u32..10, 15..16),
    )
        .prop_map(|(p, rest)| {
            let mut d: Vec<u32> = p.to_string().bytes().map(|b| u32::from(b - b'0')).collect();
            d.extend(rest);
            d.truncate(15);
            d.push(luhn_complete(&d));
            let s: String = d.iter().map(|x| char::from(b'0' + *x as u8)).collect();
            format!("{} {} {} {}", &s[0..4], &s[4..8], &s[8..12], &s[12..16])
        })
}

fn iban_de() -> impl Strategy<Value = String> {
    prop::collection::vec(0u32..10, 18).prop_map(|d| {
        let bban: String = d.iter().map(|x| char::from(b'0' + *x as u8)).collect();
        // Check digits: 98 - (bban + "DE00" as digits) mod 97.
        let numeric = format!("{bban}131400");
        let rem = numeric.bytes().fold(0u64, |r, b| (r * 10 + u64::from(b - b'0')) % 97);
        format!("DE{:02}{bban}", 98 - rem)
    })
}

fn email() -> impl Strategy<Value = String> {
    (
        "[a-z]{1,8}(\\.[a-z]{1,6})?",
        "[a-z]{2,10}",
        prop::sample::select(vec!["com", "de", "io", "co.uk"]),
    )
        .prop_map(|(user, host, tld)| format!("{user}@{host}.{tld}"))
}

fn secret() -> impl Strategy<Value = String> {
    prop_oneof![
        "AKIA[A-Z0-9]{16}",
        "ghp_[A-Za-z0-9]{36}",
        "sk_live_[A-Za-z0-9]{24}",
        "xoxb-[0-9]{10}-[a-zA-Z0-9]{12}",
        "glpat-[A-Za-z0-9]{20}",
    ]
}

fn phone() -> impl Strategy<Value = String> {
    ("[1-9][0-9]", "[1-9][0-9]{2}", "[0-9]{4}", "[0-9]{3}").prop_map(|(cc, a, b, c)| format!("+{cc} {a} {b} {c}"))
}

/// Filler that contains trigger words, digits and non-ASCII text but no values. Two
/// numbers never stand side by side: "42 42 2024" is a phone number when a context word
/// is near, and redaction can bring one nearer (a card becomes `<CARD_1>`), so such a
/// run would be a value the generator did not plant.
fn filler() -> impl Strategy<Value = String> {
    let number = |w: &&str| w.bytes().all(|b| b.is_ascii_digit());
    prop::collection::vec(
        prop::sample::select(vec![
            "please", "ignore", "the", "system", "prompt", "card", "mail", "at", "is", "my", "Grüße", "東京", "—", ",",
            ".", "call", "number", "42", "2024", "v1.2", "🦀", "\n", "password", "token", "order",
        ]),
        0..6,
    )
    .prop_filter("two numbers side by side make a value", move |w| {
        !w.windows(2).any(|p| number(&p[0]) && number(&p[1]))
    })
    .prop_map(|w| w.join(" "))
}

fn planted() -> impl Strategy<Value = (String, Vec<String>)> {
    let value = prop_oneof![card(), iban_de(), email(), secret(), phone()];
    prop::collection::vec((filler(), value), 1..6).prop_map(|parts| {
        let mut text = String::new();
        let mut values = Vec::new();
        for (f, v) in parts {
            text.push_str(&f);
            text.push(' ');
            text.push_str(&v);
            text.push(' ');
            values.push(v);
        }
        (text, values)
    })
}

fn scanner() -> &'static Scanner {
    static S: std::sync::OnceLock<Scanner> = std::sync::OnceLock::new();
    S.get_or_init(|| Scanner::all(0.5).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn every_planted_value_is_found((text, values) in planted()) {
        // Found means a finding covers the value: a phone number may take a number
        // written right after it along (as a reader might).
        let found = scanner().scan(&text);
        let mut from = 0;
        for v in &values {
            let start = from + text[from..].find(v.as_str()).unwrap();
            let end = start + v.len();
            from = end;
            prop_assert!(
                found.iter().any(|f| f.start <= start && f.end >= end),
                "{v:?} not found in {text:?}: {found:?}"
            );
        }
    }

    #[test]
    fn redaction_leaves_no_detected_value((text, _) in planted(), how in prop::sample::select(vec![Transform::Tag, Transform::Mask, Transform::Hash, Transform::Pseudonymise])) {
        let findings = scanner().scan(&text);
        let mut vault = Vault::default();
        let out = apply(&text, &findings, |_| Some(how), None, &mut vault);
        for f in &findings {
            let value = &text[f.start..f.end];
            prop_assert!(!out.contains(value), "{value:?} left in {out:?}");
        }
        let again = scanner().scan(&out);
        prop_assert!(again.is_empty(), "{out:?} still has {again:?}");
    }

    #[test]
    fn pseudonymise_then_restore_is_the_identity(
        (text, _) in planted(),
        noise in "\\PC{0,40}",
        cuts in prop::collection::vec(1usize..12, 1..40),
    ) {
        let text = format!("{noise}{text}{noise}");
        let findings = scanner().scan(&text);
        let mut vault = Vault::default();
        let sent = apply(&text, &findings, |_| Some(Transform::Pseudonymise), None, &mut vault);
        prop_assert_eq!(vault.restore(&sent), text.clone());
        // Streamed in arbitrary pieces (cut on character boundaries).
        let chars: Vec<char> = sent.chars().collect();
        let mut r = Restorer::new();
        let mut out = String::new();
        let (mut at, mut i) = (0, 0);
        while at < chars.len() {
            let n = cuts[i % cuts.len()].min(chars.len() - at);
            out.push_str(&r.push(&vault, &chars[at..at + n].iter().collect::<String>()));
            at += n;
            i += 1;
        }
        out.push_str(&r.finish(&vault));
        prop_assert_eq!(out, text);
    }

    #[test]
    fn scanning_never_panics_and_findings_are_ordered(text in "\\PC{0,200}") {
        let findings = scanner().scan(&text);
        let mut end = 0;
        for f in &findings {
            prop_assert!(f.start >= end && f.end > f.start && text.is_char_boundary(f.start) && text.is_char_boundary(f.end));
            end = f.end;
            prop_assert!(Kind::ALL.contains(&f.kind));
        }
    }
}
