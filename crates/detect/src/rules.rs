//! The detection rules: one pattern each, compiled together into one multi-pattern
//! automaton (see `scan.rs`), with the validators and context words that turn a match
//! into a finding. Patterns are ASCII-only and bounded in length (except the private
//! key block, which has no validator), so re-searching after a rejected match stays
//! linear. Order matters: where two patterns match at the same place the earlier wins.

use crate::checks;
use crate::kinds::Kind;

pub type Check = fn(&str) -> Option<(usize, usize)>;

/// What one match may be, tried in order: the first candidate whose check passes and
/// whose context (when required) is present becomes the finding.
#[derive(Debug, Clone, Copy)]
pub struct Candidate {
    pub kind: Kind,
    pub check: Option<Check>,
    /// Confidence when the check passes and no context word is near.
    pub base: f32,
    /// Words (lower case) near the match that raise confidence.
    pub context: &'static [&'static str],
    /// Without a context word, the candidate is dropped (bare digit runs).
    pub needs_context: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub pattern: &'static str,
    pub candidates: &'static [Candidate],
}

const fn c(kind: Kind, check: Option<Check>, base: f32, context: &'static [&'static str]) -> Candidate {
    Candidate {
        kind,
        check,
        base,
        context,
        needs_context: false,
    }
}

const fn ctx_only(kind: Kind, check: Check, context: &'static [&'static str]) -> Candidate {
    Candidate {
        kind,
        check: Some(check),
        base: 0.85,
        context,
        needs_context: true,
    }
}

const PHONE_WORDS: &[&str] = &[
    "phone",
    "tel",
    "call",
    "mobile",
    "cell",
    "fax",
    "whatsapp",
    "sms",
    "telefon",
    "handy",
    "téléphone",
    "portable",
    "teléfono",
    "telefono",
    "cellulare",
    "numer",
];
const SSN_WORDS: &[&str] = &["ssn", "social security", "social sec"];
const DE_TAX_WORDS: &[&str] = &["steuer", "idnr", "tax id", "tin", "identifikationsnummer"];
const PESEL_WORDS: &[&str] = &["pesel"];
const BSN_WORDS: &[&str] = &["bsn", "burgerservicenummer", "sofinummer", "sofi"];
const NIR_WORDS: &[&str] = &[
    "nir",
    "sécurité sociale",
    "securite sociale",
    "insee",
    "social security",
];
const DNI_WORDS: &[&str] = &["dni", "nie", "nif", "documento"];
const CF_WORDS: &[&str] = &["codice fiscale", "cf", "fiscale"];
const CARD_WORDS: &[&str] = &[
    "card",
    "visa",
    "mastercard",
    "amex",
    "credit",
    "debit",
    "karte",
    "carte",
    "tarjeta",
];
const IBAN_WORDS: &[&str] = &["iban", "account", "konto", "compte", "cuenta", "bank"];
const DOB_WORDS: &[&str] = &[
    "born",
    "birth",
    "dob",
    "d.o.b",
    "geboren",
    "geburts",
    "né le",
    "née le",
    "naissance",
    "nacimiento",
    "nascita",
    "urodzon",
    "geboortedatum",
];
const IP_WORDS: &[&str] = &["ip", "address", "host", "server", "client"];
const WALLET_WORDS: &[&str] = &["wallet", "eth", "ether", "address", "send", "btc", "bitcoin"];

/// The rules, in priority order.
pub static RULES: &[Rule] = &[
    // --- secrets with a recognisable shape ---------------------------------------
    Rule {
        pattern: r"-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY-----(?s:.)*?-----END [A-Z0-9 ]{0,40}PRIVATE KEY-----",
        candidates: &[c(Kind::PrivateKey, None, 0.99, &[])],
    },
    Rule {
        // A block cut short (a stream, a truncated paste): the header and its base64.
        pattern: r"-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY-----(?:[\r\n]{1,2}[A-Za-z0-9+/=]{16,80}){0,200}",
        candidates: &[c(Kind::PrivateKey, None, 0.95, &[])],
    },
    Rule {
        pattern: r"\brk_[a-z0-9]{1,16}_[A-Za-z0-9]{12}_[A-Za-z0-9]{40}\b",
        candidates: &[c(Kind::RampartKey, None, 0.99, &[])],
    },
    Rule {
        pattern: r"\b(?:AKIA|ASIA|ABIA|ACCA|AIDA|AROA|AIPA|ANPA|ANVA|AGPA)[A-Z0-9]{16}\b",
        candidates: &[c(Kind::AwsAccessKey, None, 0.95, &[])],
    },
    Rule {
        pattern: r"\b(?:gh[pousr]_[A-Za-z0-9]{36,251}|github_pat_[A-Za-z0-9_]{22,242})\b",
        candidates: &[c(Kind::GithubToken, None, 0.99, &[])],
    },
    Rule {
        pattern: r"\bglpat-[A-Za-z0-9_\-]{20,50}",
        candidates: &[c(Kind::GitlabToken, None, 0.99, &[])],
    },
    Rule {
        pattern: r"\b(?:xox[abposr]-[A-Za-z0-9\-]{10,250}|https://hooks\.slack\.com/services/[A-Za-z0-9/_]{20,120})",
        candidates: &[c(Kind::SlackToken, None, 0.95, &[])],
    },
    Rule {
        pattern: r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,247}\b",
        candidates: &[c(Kind::StripeKey, None, 0.95, &[])],
    },
    Rule {
        pattern: r"\bsk-ant-[A-Za-z0-9_\-]{20,200}",
        candidates: &[c(Kind::AnthropicKey, None, 0.95, &[])],
    },
    Rule {
        pattern: r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,200}",
        candidates: &[c(Kind::OpenaiKey, None, 0.9, &[])],
    },
    Rule {
        pattern: r"\bAIza[0-9A-Za-z_\-]{35}",
        candidates: &[c(Kind::GoogleApiKey, None, 0.95, &[])],
    },
    Rule {
        pattern: r"\beyJ[A-Za-z0-9_\-]{8,2000}\.eyJ[A-Za-z0-9_\-]{8,8000}\.[A-Za-z0-9_\-]{16,1400}",
        candidates: &[c(Kind::Jwt, None, 0.95, &[])],
    },
    Rule {
        pattern: r"\b[A-Za-z][A-Za-z0-9+.\-]{1,15}://[A-Za-z0-9._~%!$&'()*+,;=\-]{1,64}:[A-Za-z0-9._~%!$&'()*+,;=\-]{1,128}@[A-Za-z0-9.\-]{1,253}",
        candidates: &[c(Kind::UrlCredentials, Some(checks::url_credentials), 0.95, &[])],
    },
    Rule {
        pattern: r#"(?i:api[_\-]?key|apikey|secret[_\-]?key|client[_\-]?secret|secret|access[_\-]?token|auth[_\-]?token|refresh[_\-]?token|token|passwd|password|pwd|private[_\-]?key)[A-Za-z0-9_\-]{0,30}["']?[ \t]{0,4}[:=][ \t]{0,4}["']?[A-Za-z0-9/+_\-=.]{16,256}"#,
        candidates: &[c(Kind::AssignedSecret, Some(checks::assigned_secret), 0.8, &[])],
    },
    // --- personal data ------------------------------------------------------------
    Rule {
        pattern: r"[A-Za-z0-9._%+\-\x80-\xFF]{1,64}@[A-Za-z0-9\-]{1,63}(?:\.[A-Za-z0-9\-]{1,63}){0,6}\.[A-Za-z]{2,24}\b",
        candidates: &[c(Kind::Email, None, 0.95, &[])],
    },
    Rule {
        pattern: r"\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,32}",
        candidates: &[c(Kind::Iban, Some(checks::iban), 0.9, IBAN_WORDS)],
    },
    Rule {
        pattern: r"\b[1-478] ?[0-9]{2} ?(?:0[1-9]|1[0-2]|[2-9][0-9]) ?(?:[0-9]{2}|2[ABab]) ?[0-9]{3} ?[0-9]{3} ?[0-9]{2}\b",
        candidates: &[c(Kind::FrNir, Some(checks::fr_nir), 0.8, NIR_WORDS)],
    },
    Rule {
        pattern: r"\b[0-9](?:[ \-]?[0-9]){12,18}\b",
        candidates: &[c(Kind::Card, Some(checks::card), 0.85, CARD_WORDS)],
    },
    Rule {
        pattern: r"\b[0-9]{3}[\- ][0-9]{2}[\- ][0-9]{4}\b",
        candidates: &[c(Kind::UsSsn, Some(checks::us_ssn), 0.6, SSN_WORDS)],
    },
    Rule {
        pattern: r"\b(?:[0-9]{8}-?[A-Z]|[XYZ]-?[0-9]{7}-?[A-Z])\b",
        candidates: &[c(Kind::EsDni, Some(checks::es_dni), 0.7, DNI_WORDS)],
    },
    Rule {
        pattern: r"\b[A-Z]{6}[0-9LMNPQRSTUV]{2}[ABCDEHLMPRST][0-9LMNPQRSTUV]{2}[A-Z][0-9LMNPQRSTUV]{3}[A-Z]\b",
        candidates: &[c(Kind::ItCodiceFiscale, Some(checks::it_codice_fiscale), 0.9, CF_WORDS)],
    },
    Rule {
        pattern: r"\b(?:[0-9]{11}|[0-9]{2} [0-9]{3} [0-9]{3} [0-9]{3})\b",
        candidates: &[
            ctx_only(Kind::DeTaxId, checks::de_tax_id, DE_TAX_WORDS),
            ctx_only(Kind::PlPesel, checks::pl_pesel, PESEL_WORDS),
        ],
    },
    Rule {
        pattern: r"\b(?:[0-9]{9}|[0-9]{4}\.[0-9]{2}\.[0-9]{3})\b",
        candidates: &[
            ctx_only(Kind::NlBsn, checks::nl_bsn, BSN_WORDS),
            ctx_only(Kind::UsSsn, checks::us_ssn, SSN_WORDS),
        ],
    },
    Rule {
        pattern: r"\b(?:[0-9]{4}-[0-9]{2}-[0-9]{2}|[0-9]{1,2}[./\-][0-9]{1,2}[./\-][0-9]{4})\b",
        candidates: &[ctx_only(Kind::DateOfBirth, checks::date, DOB_WORDS)],
    },
    Rule {
        pattern: r"\b[0-9A-Fa-f]{2}(?:[:\-][0-9A-Fa-f]{2}){5}\b",
        candidates: &[c(
            Kind::Mac,
            Some(checks::mac),
            0.8,
            &["mac", "hardware", "ethernet", "wifi"],
        )],
    },
    Rule {
        pattern: r"\b[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\b",
        candidates: &[c(Kind::Ipv4, Some(checks::ipv4), 0.7, IP_WORDS)],
    },
    Rule {
        pattern: r"(?:\b[0-9A-Fa-f]{1,4}|:)(?::[0-9A-Fa-f]{0,4}){2,7}(?:%[A-Za-z0-9]{1,15})?",
        candidates: &[c(Kind::Ipv6, Some(checks::ipv6), 0.8, IP_WORDS)],
    },
    Rule {
        pattern: r"(?:\+[1-9][0-9]{0,2}[ .\-]?(?:\([0-9]{1,4}\)[ .\-]?)?[0-9]{1,4}(?:[ .\-]?[0-9]{2,4}){1,5})\b",
        candidates: &[c(Kind::Phone, Some(phone_e164), 0.8, PHONE_WORDS)],
    },
    Rule {
        pattern: r"(?:\([0-9]{3}\) ?|\b[0-9]{3}[.\- ])[0-9]{3}[.\- ][0-9]{4}\b",
        candidates: &[c(Kind::Phone, Some(phone_national), 0.65, PHONE_WORDS)],
    },
    Rule {
        pattern: r"\b0[1-9][0-9]{0,3}[ /.\-][0-9]{2,4}(?:[ .\-]?[0-9]{2,4}){1,3}\b",
        candidates: &[c(Kind::Phone, Some(phone_national), 0.45, PHONE_WORDS)],
    },
    Rule {
        pattern: r"\b(?:[13][1-9A-HJ-NP-Za-km-z]{25,34}|bc1[02-9ac-hj-np-z]{11,71})\b",
        candidates: &[c(Kind::CryptoWallet, Some(wallet_btc), 0.85, WALLET_WORDS)],
    },
    Rule {
        pattern: r"\b0x[0-9a-fA-F]{40}\b",
        candidates: &[c(Kind::CryptoWallet, None, 0.55, WALLET_WORDS)],
    },
];

/// The longest prefix of `s`, ending at the end of a digit group, that holds at most
/// `max` digits; `None` when that prefix has fewer than `min`. A phone pattern may run on
/// into the numbers after it; this cuts it back.
fn digit_groups(s: &str, min: usize, max: usize) -> Option<(usize, usize)> {
    let mut count = 0;
    let mut end = 0;
    for (i, b) in s.bytes().enumerate() {
        if b.is_ascii_digit() {
            count += 1;
            if count > max {
                break;
            }
            let next_is_digit = s.as_bytes().get(i + 1).is_some_and(u8::is_ascii_digit);
            if !next_is_digit {
                end = i + 1;
            }
        }
    }
    let kept = s[..end].bytes().filter(u8::is_ascii_digit).count();
    (kept >= min).then_some((0, end))
}

/// E.164: 8 to 15 digits after the `+`.
fn phone_e164(s: &str) -> Option<(usize, usize)> {
    digit_groups(s, 8, 15)
}

/// National formats: 9 to 12 digits with separators.
fn phone_national(s: &str) -> Option<(usize, usize)> {
    digit_groups(s, 9, 12)
}

fn wallet_btc(s: &str) -> Option<(usize, usize)> {
    if s.starts_with("bc1") {
        checks::btc_bech32(s)
    } else {
        checks::btc_base58(s)
    }
}

/// Words near a number that say it is something else (an order or a version).
pub const NEGATIVE_WORDS: &[&str] = &[
    "order",
    "invoice",
    "tracking",
    "isbn",
    "serial",
    "version",
    "ticket",
    "build",
    "sku",
    "reference",
];
