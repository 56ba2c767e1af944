//! The scanner: every enabled rule compiled into one multi-pattern regex
//! (regex-automata's meta engine: a lazy DFA, linear in the input, no backtracking), one
//! pass over the text. A match is checked by its rule's validators and context words;
//! when all its candidates are rejected, the other rules are tried anchored at the
//! same position, then the search resumes one byte later. Findings never overlap.

use aho_corasick::AhoCorasick;
use regex_automata::meta::Regex;
use regex_automata::util::syntax;
use regex_automata::{Anchored, Input, PatternID};

use crate::kinds::Kind;
use crate::rules::{Candidate, NEGATIVE_WORDS, RULES, Rule};

/// Bytes before a match searched for context words.
const CONTEXT_BEFORE: usize = 48;
/// Bytes after a match searched for context words.
const CONTEXT_AFTER: usize = 24;
/// Added to a candidate's confidence when a context word is near.
const CONTEXT_BOOST: f32 = 0.3;
/// Taken off when a word like "order" or "version" is near a number.
const NEGATIVE_PENALTY: f32 = 0.3;

/// One detected value: its kind, where it is (byte offsets), how sure we are.
/// The value itself is `&text[start..end]`; findings never carry it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Finding {
    pub kind: Kind,
    pub start: usize,
    pub end: usize,
    pub confidence: f32,
}

#[derive(Debug, thiserror::Error)]
#[error("detector patterns do not compile: {0}")]
pub struct BuildError(String);

/// An enabled candidate and the index of its context words' automaton.
type Judged = (Candidate, Option<usize>);

/// A compiled set of rules. Cheap to share (`Sync`); build once per policy.
#[derive(Debug)]
pub struct Scanner {
    regex: Option<Regex>,
    /// Pattern id → rule, with only the enabled candidates, each with the index of
    /// its context words' automaton in `words`.
    rules: Vec<(Rule, Vec<Judged>)>,
    /// One automaton per context-word list and one for the negative words: matching
    /// them is most of the work of judging a match.
    words: Vec<AhoCorasick>,
    negative: AhoCorasick,
    min_confidence: f32,
}

impl Scanner {
    /// A scanner for these kinds, reporting findings at or above `min_confidence`.
    pub fn new(kinds: &[Kind], min_confidence: f32) -> Result<Self, BuildError> {
        let rules: Vec<(Rule, Vec<Candidate>)> = RULES
            .iter()
            .filter_map(|r| {
                let enabled: Vec<Candidate> = r
                    .candidates
                    .iter()
                    .filter(|c| kinds.contains(&c.kind))
                    .copied()
                    .collect();
                (!enabled.is_empty()).then_some((*r, enabled))
            })
            .collect();
        let regex = if rules.is_empty() {
            None
        } else {
            let patterns: Vec<&str> = rules.iter().map(|(r, _)| r.pattern).collect();
            Some(
                Regex::builder()
                    .syntax(syntax::Config::new().unicode(false).utf8(false))
                    .configure(Regex::config().utf8_empty(false))
                    .build_many(&patterns)
                    .map_err(|e| BuildError(e.to_string()))?,
            )
        };
        let automaton = |list: &[&str]| {
            AhoCorasick::builder()
                .ascii_case_insensitive(true)
                .build(list)
                .map_err(|e| BuildError(e.to_string()))
        };
        // Lists shared by several candidates (PHONE_WORDS …) get one automaton.
        let mut lists: Vec<usize> = Vec::new();
        let mut words: Vec<AhoCorasick> = Vec::new();
        let mut indexed = Vec::with_capacity(rules.len());
        for (rule, candidates) in rules {
            let mut with = Vec::with_capacity(candidates.len());
            for c in candidates {
                let key = c.context.as_ptr() as usize;
                let index = if c.context.is_empty() {
                    None
                } else if let Some(i) = lists.iter().position(|k| *k == key) {
                    Some(i)
                } else {
                    lists.push(key);
                    words.push(automaton(c.context)?);
                    Some(words.len() - 1)
                };
                with.push((c, index));
            }
            indexed.push((rule, with));
        }
        Ok(Self {
            regex,
            rules: indexed,
            words,
            negative: automaton(NEGATIVE_WORDS)?,
            min_confidence,
        })
    }

    /// Every kind this crate detects.
    pub fn all(min_confidence: f32) -> Result<Self, BuildError> {
        Self::new(Kind::ALL, min_confidence)
    }

    /// Finds every value in `text`, left to right, without overlaps.
    pub fn scan(&self, text: &str) -> Vec<Finding> {
        let mut out = Vec::new();
        self.scan_into(text, &mut out);
        out
    }

    /// As [`Scanner::scan`], appending to `out`. Text with full-width or compatibility
    /// forms (`＠`, `．`, full-width letters, other scripts' digits) is scanned folded to
    /// ASCII, and the findings' offsets point into the original text.
    pub fn scan_into(&self, text: &str, out: &mut Vec<Finding>) {
        if !text.is_ascii()
            && let Some((folded, map)) = crate::normalize::fold_compat(text)
        {
            let from = out.len();
            self.scan_plain(&folded, out);
            for f in &mut out[from..] {
                f.start = map[f.start];
                f.end = map[f.end];
            }
            return;
        }
        self.scan_plain(text, out);
    }

    fn scan_plain(&self, text: &str, out: &mut Vec<Finding>) {
        let Some(regex) = &self.regex else { return };
        let bytes = text.as_bytes();
        let mut at = 0;
        while at < bytes.len() {
            let Some(m) = regex.search(&Input::new(bytes).range(at..)) else {
                break;
            };
            if let Some(f) = self.judge(text, m.pattern(), m.start(), m.end()) {
                at = f.end.max(m.start() + 1);
                out.push(f);
                continue;
            }
            // Rejected: try the other rules anchored at the same start.
            let mut found = None;
            for pid in (m.pattern().as_usize() + 1)..self.rules.len() {
                let Ok(pid) = PatternID::try_from(pid) else { break };
                let input = Input::new(bytes).range(m.start()..).anchored(Anchored::Pattern(pid));
                if let Some(m2) = regex.search(&input)
                    && let Some(f) = self.judge(text, pid, m2.start(), m2.end())
                {
                    found = Some(f);
                    break;
                }
            }
            match found {
                Some(f) => {
                    at = f.end.max(m.start() + 1);
                    out.push(f);
                }
                None => at = next_char(text, m.start()),
            }
        }
    }

    /// A value assigned to a secret-looking name may itself be a known key shape
    /// (`TOKEN=sk_live_…`): then it is reported as that kind.
    fn specific_secret(&self, text: &str, start: usize, end: usize) -> Option<Finding> {
        let regex = self.regex.as_ref()?;
        for (i, (_, candidates)) in self.rules.iter().enumerate() {
            let Some((cand, _)) = candidates.first() else { continue };
            if !cand.kind.is_secret() || cand.kind == Kind::AssignedSecret || cand.check.is_some() {
                continue;
            }
            let pid = PatternID::try_from(i).ok()?;
            let input = Input::new(text.as_bytes())
                .range(start..end)
                .anchored(Anchored::Pattern(pid));
            if let Some(m) = regex.search(&input) {
                return Some(Finding {
                    kind: cand.kind,
                    start: m.start(),
                    end: m.end(),
                    confidence: cand.base,
                });
            }
        }
        None
    }

    /// Turns one match into a finding, or rejects it.
    fn judge(&self, text: &str, pid: PatternID, start: usize, end: usize) -> Option<Finding> {
        let (_, candidates) = self.rules.get(pid.as_usize())?;
        let matched = text.get(start..end)?;
        for (cand, words) in candidates {
            let (s, e) = match cand.check {
                Some(check) => match check(matched) {
                    Some(range) => range,
                    None => continue,
                },
                None => (0, matched.len()),
            };
            let (vs, ve) = (start + s, start + e);
            // Digits right after mask characters are what is left of a masked value
            // (`**** **** **** 0002`), not a new one.
            let before = text[floor_char(text, vs.saturating_sub(CONTEXT_BEFORE))..vs].trim_end_matches([' ', '-']);
            let last_token = before.rsplit(char::is_whitespace).next().unwrap_or("");
            // The hash inside a redaction tag (`[CARD:7053390182]`) is Rampart's own.
            let in_tag = before.rfind('[').is_some_and(|i| {
                let inside = &before[i + 1..];
                inside.ends_with(':')
                    && inside[..inside.len() - 1]
                        .bytes()
                        .all(|b| b.is_ascii_uppercase() || b == b'_')
            });
            let masked = in_tag || last_token.contains('*') || text[ve..].starts_with('*');
            if masked && !text[vs..ve].bytes().any(|b| b.is_ascii_alphabetic()) {
                continue;
            }
            let said = words.and_then(|i| self.words.get(i));
            // The text around the value, made only when a word list asks for it.
            let around = std::cell::OnceCell::new();
            let near = |a: &AhoCorasick| {
                let (before, after) = around.get_or_init(|| context(text, vs, ve));
                a.is_match(before.as_ref()) || a.is_match(after.as_ref())
            };
            // A value that counts only because of a word near it needs that word on
            // its own line (a form's next label is about the next field), and no word
            // there saying it is something else.
            let has_context = if cand.needs_context {
                if !said.is_some_and(|a| self.line_says(text, vs, ve, a)) || !stands_alone(text, vs, ve) {
                    continue;
                }
                true
            } else {
                said.is_some_and(near)
            };
            let mut confidence = cand.base;
            if has_context && !cand.needs_context {
                confidence += CONTEXT_BOOST;
            }
            // "order", "version" and the like say a *number* is something else; a value
            // with letters in it (an IBAN, an address) has its own checks.
            let numeric = !text[vs..ve].bytes().any(|b| b.is_ascii_alphabetic());
            if numeric && !cand.kind.is_secret() && near(&self.negative) {
                confidence -= NEGATIVE_PENALTY;
            }
            let confidence = confidence.clamp(0.0, 0.99);
            if confidence < self.min_confidence {
                continue;
            }
            if cand.kind == Kind::AssignedSecret
                && let Some(specific) = self.specific_secret(text, vs, ve)
            {
                return Some(specific);
            }
            return Some(Finding {
                kind: cand.kind,
                start: vs,
                end: ve,
                confidence,
            });
        }
        None
    }
}

/// The text around a value (not the value itself), redaction tags blanked: before it
/// and after it.
fn context(text: &str, start: usize, end: usize) -> (std::borrow::Cow<'_, str>, std::borrow::Cow<'_, str>) {
    let from = floor_char(text, start.saturating_sub(CONTEXT_BEFORE));
    let to = ceil_char(text, (end + CONTEXT_AFTER).min(text.len()));
    (without_tags(&text[from..start]), without_tags(&text[end..to]))
}

impl Scanner {
    /// Whether a value that counts only with a word near it has one: a context word
    /// (`said`) on its own line (a form's next label is about the next field), nearer
    /// to the value than any word saying it is something else ("order", "tracking", …).
    fn line_says(&self, text: &str, start: usize, end: usize, said: &AhoCorasick) -> bool {
        let from = floor_char(text, start.saturating_sub(CONTEXT_BEFORE));
        let to = ceil_char(text, (end + CONTEXT_AFTER).min(text.len()));
        let before = &text[from..start];
        // The start of the text is the start of a line ("\nt:" is a signature's label).
        let at_line_start = from == 0 && !before.contains('\n');
        let before = before.rfind('\n').map_or(before, |i| &before[i..]);
        let before: std::borrow::Cow<'_, str> = if at_line_start {
            format!("\n{}", without_tags(before)).into()
        } else {
            without_tags(before)
        };
        // After the value, only its own clause: ". The app says ref 1902…" is about
        // the next number.
        let after = &text[end..to];
        let after = after
            .find(['\n', '.', ';', ',', '|', '!', '?'])
            .map_or(after, |i| &after[..i]);
        let after = without_tags(after);
        // Distance from the value: to the end of the last occurrence before it, to the
        // start of the first after it.
        let distance = |a: &AhoCorasick| {
            let b = a
                .find_overlapping_iter(before.as_ref())
                .map(|m| m.end())
                .max()
                .map(|e| before.len() - e);
            let f = a.find(after.as_ref()).map(|m| m.start());
            b.into_iter().chain(f).min()
        };
        match (distance(said), distance(&self.negative)) {
            (Some(s), Some(d)) => s < d,
            (Some(_), None) => true,
            (None, _) => false,
        }
    }
}

/// A value that counts only because of a word near it must stand alone: not start
/// inside a number (`v1.2 42…`), and not run into more digits or a redaction tag
/// (`… 2024 [CARD]`) — there it is a fragment of something longer, and calling it a
/// value would depend on how that something was written or redacted.
fn stands_alone(text: &str, start: usize, end: usize) -> bool {
    let before = &text.as_bytes()[..start];
    let inside_number = matches!(before, [.., d, b'.' | b',' | b'-' | b'/'] if d.is_ascii_digit());
    let next = text[end..].trim_start_matches([' ', '-', '.', '/']);
    let mut next_bytes = next.bytes();
    let runs_on = match next_bytes.next() {
        Some(b) if b.is_ascii_digit() => true,
        Some(b'[' | b'<') => next_bytes.next().is_some_and(|b| b.is_ascii_uppercase()),
        _ => false,
    };
    !inside_number && !runs_on
}

/// Redaction tags (`[PHONE:3f2a…]`, `[CARD]`, `<PHONE_1>`) are Rampart's own words,
/// not the writer's: their names are blanked before context words are looked for.
fn without_tags(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains(['[', '<']) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find(['[', '<']) {
        out.push_str(&rest[..i]);
        let open = &rest[i..=i];
        let tail = &rest[i + 1..];
        let name = tail
            .bytes()
            .take_while(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b'_')
            .count();
        if name > 0 && matches!(tail.as_bytes().get(name), Some(b':' | b']' | b'>')) {
            out.push(' ');
            rest = &tail[name..];
        } else {
            out.push_str(open);
            rest = tail;
        }
    }
    out.push_str(rest);
    std::borrow::Cow::Owned(out)
}

fn floor_char(text: &str, mut i: usize) -> usize {
    while i > 0 && !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_char(text: &str, mut i: usize) -> usize {
    while i < text.len() && !text.is_char_boundary(i) {
        i += 1;
    }
    i
}

fn next_char(text: &str, i: usize) -> usize {
    ceil_char(text, i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<(Kind, String)> {
        let s = Scanner::all(0.5).unwrap();
        s.scan(text)
            .into_iter()
            .map(|f| (f.kind, text[f.start..f.end].to_owned()))
            .collect()
    }

    fn finds(text: &str, kind: Kind, value: &str) {
        let got = kinds(text);
        assert!(
            got.iter().any(|(k, v)| *k == kind && v == value),
            "{kind} {value:?} not found in {text:?}: {got:?}"
        );
    }

    fn clean(text: &str) {
        let got = kinds(text);
        assert!(got.is_empty(), "false positive in {text:?}: {got:?}");
    }

    #[test]
    fn personal_data() {
        finds(
            "mail me at jane.doe+x@mail.example.co.uk.",
            Kind::Email,
            "jane.doe+x@mail.example.co.uk",
        );
        finds("card 4111 1111 1111 1111 exp 12/29", Kind::Card, "4111 1111 1111 1111");
        finds(
            "IBAN DE89 3704 0044 0532 0130 00 please",
            Kind::Iban,
            "DE89 3704 0044 0532 0130 00",
        );
        finds("my SSN is 536-22-8726", Kind::UsSsn, "536-22-8726");
        finds("ssn 536228726", Kind::UsSsn, "536228726");
        finds("Steuer-IdNr: 86095742719", Kind::DeTaxId, "86095742719");
        finds(
            "n° sécurité sociale 2 55 08 14 168 025 38",
            Kind::FrNir,
            "2 55 08 14 168 025 38",
        );
        finds("DNI 12345678Z", Kind::EsDni, "12345678Z");
        finds("NIE X1234567L", Kind::EsDni, "X1234567L");
        finds("CF RSSMRA85T10A562S", Kind::ItCodiceFiscale, "RSSMRA85T10A562S");
        finds("mijn BSN is 111222333", Kind::NlBsn, "111222333");
        finds("PESEL 44051401359", Kind::PlPesel, "44051401359");
        finds("from 203.0.113.9 at noon", Kind::Ipv4, "203.0.113.9");
        finds(
            "host 2001:db8::8a2e:370:7334 down",
            Kind::Ipv6,
            "2001:db8::8a2e:370:7334",
        );
        finds("mac 00:1A:2B:3C:4D:5E", Kind::Mac, "00:1A:2B:3C:4D:5E");
        finds("date of birth: 12.03.1985", Kind::DateOfBirth, "12.03.1985");
        finds("call +49 30 1234 5678 now", Kind::Phone, "+49 30 1234 5678");
        finds("call (415) 555-0132", Kind::Phone, "(415) 555-0132");
        finds("Telefon 030 12345678", Kind::Phone, "030 12345678");
        finds(
            "send to 1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa",
            Kind::CryptoWallet,
            "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa",
        );
        finds(
            "db postgres://app:s3cr3tpw@db.internal:5432/x",
            Kind::UrlCredentials,
            "s3cr3tpw",
        );
    }

    #[test]
    fn secrets() {
        finds(
            "key AKIAIOSFODNN7EXAMPLE ok",
            Kind::AwsAccessKey,
            "AKIAIOSFODNN7EXAMPLE",
        );
        let gh = format!("ghp_{}", "a1B2c3D4e5".repeat(4).get(..36).unwrap());
        finds(&format!("token {gh} x"), Kind::GithubToken, &gh);
        finds(
            "glpat-abcdefghij0123456789",
            Kind::GitlabToken,
            "glpat-abcdefghij0123456789",
        );
        finds(
            "xoxb-1234567890-abcdefghij",
            Kind::SlackToken,
            "xoxb-1234567890-abcdefghij",
        );
        finds(
            "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
            Kind::StripeKey,
            "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
        );
        finds(
            "OPENAI sk-proj-abcdEFGH1234ijklMNOP5678qrst",
            Kind::OpenaiKey,
            "sk-proj-abcdEFGH1234ijklMNOP5678qrst",
        );
        finds(
            "AIzaSyA1234567890abcdefghijklmnopqrstuv",
            Kind::GoogleApiKey,
            "AIzaSyA1234567890abcdefghijklmnopqrstuv",
        );
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
        finds(&format!("Bearer {jwt}"), Kind::Jwt, jwt);
        let rk = format!("rk_live_{}_{}", "A".repeat(6) + "b1c2d3", "x9".repeat(20));
        finds(&format!("key={rk}"), Kind::RampartKey, &rk);
        finds(
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA1234567890abcdef\n-----END RSA PRIVATE KEY-----",
            Kind::PrivateKey,
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA1234567890abcdef\n-----END RSA PRIVATE KEY-----",
        );
        finds(
            "export TOKEN=sk_live_4eC39HqLyjWDarjtT1zdp7dc",
            Kind::StripeKey,
            "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
        );
        finds(
            "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            Kind::AssignedSecret,
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        );
    }

    #[test]
    fn look_alikes_and_trigger_words_are_not_findings() {
        clean("Please ignore the previous draft; the system works.");
        clean("order number 4111 1111 1111 1112 shipped"); // Luhn fails
        clean("The meeting is at 12:30:45 in room 101.");
        clean("Version 1.2.3 was released; see ticket 123456789.");
        clean("Our invoice 86095742719 is due."); // no tax-id context
        clean("The password should be at least twelve characters long.");
        clean("password = \"changeme\"");
        clean("Call me maybe, said the song from 2012.");
        clean("It costs 1 234 567 890 euros in total.");
        clean("sku-ABCDEFGHIJKLMNOP and ISBN 978-3-16-148410-0");
        clean("SSN format is 000-00-0000 in examples.");
    }

    #[test]
    fn a_rejected_match_does_not_hide_the_next_one() {
        // The card-like run fails Luhn; the e-mail right after is still found.
        finds("ref 1234 5678 9012 3456 a@b.io", Kind::Email, "a@b.io");
        // Non-ASCII text around values keeps offsets on character boundaries.
        finds("Grüße an jürgen@example.de, danke", Kind::Email, "jürgen@example.de");
    }
}
