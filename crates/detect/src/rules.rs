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
    "desk",
    "reach me",
    "reach us",
    "answering",
    "registered number",
    "contact number",
    "direct line",
    "landline",
    "hotline",
    "text me",
    "ring ",
    "dial",
    "ph:",
    "ph.",
    "mob:",
    "mob.",
    "office:",
    "\nt:",
    "\nm:",
    "\nf:",
    "| m:",
    "| f:",
    "| t:",
    "number is",
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
    "charge",
    "payment",
    "paid with",
    "pay with",
    "refund",
    "cc:",
    "cc ",
    "jcb",
    "maestro",
    "unionpay",
    "diners",
    "discover",
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
        // Upper or lower case, grouped in fours or not.
        pattern: r"\b[A-Za-z]{2}[0-9]{2}(?:[ \-]?[A-Za-z0-9]){11,32}",
        candidates: &[
            c(Kind::Iban, Some(checks::iban), 0.9, IBAN_WORDS),
            ctx_only(Kind::Iban, checks::iban_in_context, IBAN_WORDS),
        ],
    },
    Rule {
        pattern: r"\b[1-478] ?[0-9]{2} ?(?:0[1-9]|1[0-2]|[2-9][0-9]) ?(?:[0-9]{2}|2[ABab]) ?[0-9]{3} ?[0-9]{3} ?[0-9]{2}\b",
        candidates: &[c(Kind::FrNir, Some(checks::fr_nir), 0.8, NIR_WORDS)],
    },
    Rule {
        pattern: r"\b[0-9](?:[ \-.]?[0-9]){11,18}\b",
        candidates: &[
            // Written in its issuer's groups, a number is surer to be a card than a
            // bare run of digits is (order numbers are not grouped in fours).
            c(Kind::Card, Some(checks::card_grouped), 0.95, CARD_WORDS),
            c(Kind::Card, Some(checks::card), 0.75, CARD_WORDS),
            ctx_only(Kind::Card, checks::card_in_context, CARD_WORDS),
        ],
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
        // Phone numbers in any national grouping: an optional `+`, `00` or `(+NN)`
        // prefix, digit groups joined by spaces, dots, dashes, slashes or parentheses
        // (a trunk `(0)` included), and an optional extension (`x565`, `ext. 12`).
        // `phone_shape` decides how sure the shape alone is; any other run of 7–15
        // digits counts only next to a phone word.
        pattern: r"(?:\+ ?|\(\+?|\b)[0-9][0-9 .\-/()]{5,22}[0-9](?: ?(?:x|ext\.?|extension) ?[0-9]{1,6})?\b",
        candidates: &[
            c(Kind::Phone, Some(phone_international), 0.85, PHONE_WORDS),
            c(Kind::Phone, Some(phone_shape), 0.6, PHONE_WORDS),
            ctx_only(Kind::Phone, phone_in_context, PHONE_WORDS),
        ],
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

/// A phone-shaped match, split into the number and its extension, with the facts the
/// checks need. `None` when it cannot be a phone number (unbalanced parentheses, a
/// date, an IPv4 address, a decimal number, too few or too many digits).
struct PhoneShape {
    /// Digits of the number (the extension not counted).
    digits: usize,
    /// Digit groups' lengths, in order (`groups[..n_groups]`; no allocation per match).
    groups: [u8; 32],
    n_groups: usize,
    /// Starts with `+`, `(+` or `00` (an international prefix).
    international: bool,
    /// Starts with a trunk `0` (national format), or holds `(0)`.
    trunk: bool,
    /// Separators used between groups.
    dots: bool,
    slashes: bool,
    /// Byte length of the number with its extension.
    end: usize,
    /// The match ran on into more digits and was cut back.
    cut_back: bool,
}

impl PhoneShape {
    fn groups(&self) -> &[u8] {
        &self.groups[..self.n_groups]
    }
}

fn phone_parse(s: &str) -> Option<PhoneShape> {
    // The pattern allows letters only in the extension (`x565`, `ext. 12`).
    let number_end = s.bytes().position(|b| b.is_ascii_alphabetic()).unwrap_or(s.len());
    let mut number = s[..number_end].trim_end();
    let mut end = s.len();
    let mut cut_back = false;
    // Separators come one or two at a time (`) `, ` -`): a longer run (` . `) ends the
    // number, and what follows is something else.
    let mut run = 0;
    for (i, b) in number.bytes().enumerate() {
        run = if b.is_ascii_digit() { 0 } else { run + 1 };
        if run > 2 {
            number = number[..i].trim_end_matches(|c: char| !c.is_ascii_digit());
            end = number.len();
            cut_back = true;
            break;
        }
    }
    // A match that runs on into the next number is cut back, at the end of a digit
    // group, to the longest prefix of at most 15 digits.
    if number.bytes().filter(u8::is_ascii_digit).count() > 15 {
        let mut count = 0;
        let mut cut = 0;
        for (i, b) in number.bytes().enumerate() {
            if b.is_ascii_digit() {
                count += 1;
                if count > 15 {
                    break;
                }
                if !number.as_bytes().get(i + 1).is_some_and(u8::is_ascii_digit) {
                    cut = i + 1;
                }
            }
        }
        number = &number[..cut];
        end = cut;
        cut_back = true;
    }
    // No numbering plan starts a number with three zeros or a group of zeros.
    let first_group = number.trim_start_matches(|c: char| !c.is_ascii_digit());
    if first_group.starts_with("000") || first_group.bytes().take_while(u8::is_ascii_digit).all(|b| b == b'0') {
        return None;
    }
    let opens = number.matches('(').count();
    let closes = number.matches(')').count();
    if opens != closes || opens > 1 || number.find('(') > number.find(')') {
        return None;
    }
    let mut buf = [0u8; 32];
    let mut n_groups = 0;
    for g in number.split(|c: char| !c.is_ascii_digit()).filter(|g| !g.is_empty()) {
        let slot = buf.get_mut(n_groups)?;
        *slot = u8::try_from(g.len()).ok()?;
        n_groups += 1;
    }
    let groups = &buf[..n_groups];
    let digits: usize = groups.iter().map(|&g| usize::from(g)).sum();
    let bare = number.trim_start_matches(['+', '(', ' ']);
    // A country code never starts with 0.
    let country_code = |rest: &str| {
        rest.trim_start_matches([' ', '('])
            .starts_with(|c: char| matches!(c, '1'..='9'))
    };
    // `00` is an international prefix only in a grouped number: a bare run of digits
    // starting 00 is a tracking or customer number as often as a phone.
    let grouped = number.contains([' ', '.', '-', '/', '(']);
    let international = number
        .strip_prefix("(+")
        .or_else(|| number.strip_prefix('+'))
        .or_else(|| bare.strip_prefix("00").filter(|_| grouped && digits >= 10))
        .is_some_and(country_code);
    let trunk = !international && bare.starts_with('0') || number.contains("(0)");
    let dots = number.contains('.');
    let slashes = number.contains('/');
    // Dates and times (2024-01-31, 31.01.2024, 31/01/2024), IPv4 addresses and
    // decimal numbers are not phones.
    let looks_like_date = groups.len() == 3
        && (groups[0] == 4 && groups[1] <= 2 && groups[2] <= 2 || groups[2] == 4 && groups[0] <= 2 && groups[1] <= 2)
        && number
            .chars()
            .filter(|c| !c.is_ascii_digit())
            .all(|c| matches!(c, '-' | '.' | '/'));
    // A timestamp (2024-05-28 18…) or an ISBN-13 (978-…).
    let year_first = matches!(number.get(..5), Some(y) if (y.starts_with("19") || y.starts_with("20")) && matches!(y.as_bytes()[4], b'-' | b'.' | b'/'));
    let isbn = (number.starts_with("978") || number.starts_with("979")) && digits == 13;
    let looks_like_date = looks_like_date || year_first || isbn;
    let looks_like_ip = dots && groups.len() == 4 && groups.iter().all(|&g| g <= 3);
    // 25.322089 is a decimal; 7334.5989 (two groups of four) is how some write phones.
    let looks_like_decimal = dots && groups.len() == 2 && groups != [4, 4];
    if looks_like_date || looks_like_ip || looks_like_decimal || !(7..=15).contains(&digits) {
        return None;
    }
    Some(PhoneShape {
        digits,
        groups: buf,
        n_groups,
        international,
        trunk,
        dots,
        slashes,
        end,
        cut_back,
    })
}

/// Shapes that are phone numbers without a word saying so: international (`+`,
/// `00`) with 8–15 digits; North American 3-3-4 groups (with an optional `1` or
/// `001` in front); a national number with a trunk `0` in two to six groups and 9–12
/// digits.
fn phone_shape(s: &str) -> Option<(usize, usize)> {
    let p = phone_parse(s).filter(|p| !p.cut_back)?;
    let nanp = {
        let g = p.groups();
        let core = match g {
            [1, rest @ ..] | [3, rest @ ..] if g.len() == 4 => rest,
            _ => g,
        };
        core == [3, 3, 4] && (!p.dots || g.len() == 3)
    };
    let international = p.international && (8..=15).contains(&p.digits) && p.n_groups <= 7;
    let national = p.trunk && !p.slashes && (2..=6).contains(&p.n_groups) && (9..=12).contains(&p.digits);
    (nanp || international || national).then_some((0, p.end))
}

/// International format: `+`, `(+` or `00` and a country code, 8–15 digits.
fn phone_international(s: &str) -> Option<(usize, usize)> {
    let p = phone_parse(s)?;
    (p.international && (8..=15).contains(&p.digits) && p.n_groups <= 7).then_some((0, p.end))
}

/// Any phone-shaped run of 7–15 digits (used next to a phone word).
fn phone_in_context(s: &str) -> Option<(usize, usize)> {
    // A run of digits long enough to need cutting back is not one number: only the
    // surer shapes above may take a prefix of it.
    let years = s
        .split(|c: char| !c.is_ascii_digit())
        .filter(|g| !g.is_empty())
        .all(|g| g.len() == 4 && (g.starts_with("19") || g.starts_with("20")));
    if years {
        return None; // "2023 2024": years side by side, not a number
    }
    phone_parse(s).filter(|p| !p.cut_back).map(|p| (0, p.end))
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
    "ref ",
    "ref.",
    "ref:",
    "ref#",
    "meeting id",
    "case ",
    "case#",
    "postcode",
    "postal code",
    "zip code",
    "plz",
    "total",
    "amount",
    "account no",
    "customer id",
    "user id",
    "booking",
    "confirmation",
    "policy",
    "shipment",
    "parcel",
];
