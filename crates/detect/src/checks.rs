//! Check-digit and shape validators that turn a pattern match into a finding or throw
//! it away. Each takes the matched text and returns the part of it that is the value
//! (`Some((start, end))`, byte offsets into the match) or `None`. Pure functions, no
//! allocation beyond small fixed buffers; they never panic on any input.

/// The ASCII digits of `s` as numbers, ignoring separators (space, dash, dot, slash).
fn digits(s: &str) -> Vec<u32> {
    s.bytes()
        .filter(u8::is_ascii_digit)
        .map(|b| u32::from(b - b'0'))
        .collect()
}

/// The ASCII letters and digits of `s`, upper-cased.
fn alnum_upper(s: &str) -> Vec<u8> {
    s.bytes()
        .filter(u8::is_ascii_alphanumeric)
        .map(|b| b.to_ascii_uppercase())
        .collect()
}

/// A small index (a table position) as `u32`.
fn small(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

fn whole(s: &str) -> Option<(usize, usize)> {
    Some((0, s.len()))
}

/// Luhn over the digits, right to left.
pub fn luhn_ok(d: &[u32]) -> bool {
    let mut sum = 0;
    for (i, &x) in d.iter().rev().enumerate() {
        sum += if i % 2 == 1 {
            let y = x * 2;
            if y > 9 { y - 9 } else { y }
        } else {
            x
        };
    }
    !d.is_empty() && sum % 10 == 0
}

/// Payment card: 13–19 digits, a known issuer prefix, Luhn.
pub fn card(s: &str) -> Option<(usize, usize)> {
    let d = digits(s);
    if !(13..=19).contains(&d.len()) || s.contains('.') || !luhn_ok(&d) || !card_grouping(s) {
        return None;
    }
    let n2 = d[0] * 10 + d[1];
    let n4 = n2 * 100 + d[2] * 10 + d[3];
    let known = d[0] == 4                       // Visa
        || (51..=55).contains(&n2)              // Mastercard
        || (2221..=2720).contains(&n4)          // Mastercard 2-series
        || n2 == 34 || n2 == 37                 // Amex
        || n4 == 6011 || n2 == 65 || (644..=649).contains(&(n4 / 10)) // Discover
        || (3528..=3589).contains(&n4)          // JCB
        || n2 == 36 || n2 == 38 || (300..=305).contains(&(n4 / 10)) // Diners
        || n2 == 62                             // UnionPay
        || n2 == 50 || (56..=69).contains(&n2); // Maestro
    // All one digit repeated passes Luhn for some lengths; never a real card.
    let varied = d.iter().any(|&x| x != d[0]);
    (known && varied).then(|| whole(s)).flatten()
}

/// A card number (as [`card`]) written with separators in its issuer's groups.
pub fn card_grouped(s: &str) -> Option<(usize, usize)> {
    if s.contains([' ', '-']) { card(s) } else { None }
}

/// A card number whatever its issuer (old JCB `1800`/`2131`, Maestro, UnionPay,
/// issuers not in the table): 12–19 digits, Luhn, not one digit repeated, in groups
/// of at least three. Used only next to card words.
pub fn card_in_context(s: &str) -> Option<(usize, usize)> {
    let d = digits(s);
    let grouped = s.split([' ', '-', '.']).all(|g| g.len() >= 3);
    let varied = d.iter().any(|&x| x != d[0]);
    // Issuer ranges that carry payment cards: 0604 (Maestro UK), 1800 and 2131 (old
    // JCB), 2221–2720 (Mastercard), 30/34–39 (Amex, JCB, Diners), and 4, 5, 6 whole
    // (Visa, Mastercard, Maestro, Discover, UnionPay, national schemes).
    let n4 = d.iter().take(4).fold(0, |n, &x| n * 10 + x);
    let issuer = matches!(n4, 604 | 1800 | 2131 | 2221..=2720 | 3000..=3099 | 3400..=3999 | 4000..=6999);
    ((12..=19).contains(&d.len()) && issuer && luhn_ok(&d) && grouped && varied)
        .then(|| whole(s))
        .flatten()
}

/// Written with separators, a card number comes in its issuer's groups: fours (the
/// last group may be shorter), or 4-6-5 / 4-6-4 (Amex, Diners).
fn card_grouping(s: &str) -> bool {
    let groups: Vec<usize> = s.split([' ', '-']).map(str::len).collect();
    match groups.as_slice() {
        [_] => true,
        [4, 6, 5] | [4, 6, 4] => true,
        [init @ .., last] => init.iter().all(|&g| g == 4) && (1..=4).contains(last),
        [] => false,
    }
}

/// IBAN lengths of the SEPA countries (and a few more that use IBAN widely).
const IBAN_LENGTHS: &[(&[u8; 2], usize)] = &[
    (b"AD", 24),
    (b"AT", 20),
    (b"BE", 16),
    (b"BG", 22),
    (b"CH", 21),
    (b"CY", 28),
    (b"CZ", 24),
    (b"DE", 22),
    (b"DK", 18),
    (b"EE", 20),
    (b"ES", 24),
    (b"FI", 18),
    (b"FR", 27),
    (b"GB", 22),
    (b"GI", 23),
    (b"GR", 27),
    (b"HR", 21),
    (b"HU", 28),
    (b"IE", 22),
    (b"IS", 26),
    (b"IT", 27),
    (b"LI", 21),
    (b"LT", 20),
    (b"LU", 20),
    (b"LV", 21),
    (b"MC", 27),
    (b"MT", 31),
    (b"NL", 18),
    (b"NO", 15),
    (b"PL", 28),
    (b"PT", 25),
    (b"RO", 24),
    (b"SE", 24),
    (b"SI", 19),
    (b"SK", 24),
    (b"SM", 27),
    (b"VA", 22),
    (b"AL", 28),
    (b"BA", 20),
    (b"ME", 22),
    (b"MK", 19),
    (b"RS", 22),
    (b"TR", 26),
    (b"UA", 29),
    (b"AE", 23),
    (b"SA", 24),
    (b"IL", 23),
    (b"BR", 29),
];

/// ISO 13616 mod-97 over an upper-case alphanumeric IBAN.
fn iban_mod97(iban: &[u8]) -> bool {
    let mut rem: u32 = 0;
    for &c in iban[4..].iter().chain(&iban[..4]) {
        let v = match c {
            b'0'..=b'9' => u32::from(c - b'0'),
            b'A'..=b'Z' => u32::from(c - b'A') + 10,
            _ => return false,
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

/// IBAN: a known country, its exact length, mod 97. The pattern may run on into a
/// following word; the value is cut at the country's length.
pub fn iban(s: &str) -> Option<(usize, usize)> {
    let b = s.as_bytes();
    let country = [b.first()?.to_ascii_uppercase(), b.get(1)?.to_ascii_uppercase()];
    let len = IBAN_LENGTHS.iter().find(|(c, _)| **c == country)?.1;
    // Walk to the byte where the len-th alphanumeric character ends.
    let mut seen = 0;
    let mut end = 0;
    for (i, c) in b.iter().enumerate() {
        if c.is_ascii_alphanumeric() {
            seen += 1;
            if seen == len {
                end = i + 1;
                break;
            }
        }
    }
    if seen < len {
        return None;
    }
    let value = alnum_upper(&s[..end]);
    iban_mod97(&value).then_some((0, end))
}

/// An IBAN whose length is off its country's (generators and hand-typed values get
/// it wrong) but whose mod-97 check holds: the longest run, ending at a group
/// boundary, of 15–34 letters and digits after a known country code that passes.
/// Used only next to IBAN words.
pub fn iban_in_context(s: &str) -> Option<(usize, usize)> {
    let b = s.as_bytes();
    let country = [b.first()?.to_ascii_uppercase(), b.get(1)?.to_ascii_uppercase()];
    IBAN_LENGTHS.iter().find(|(c, _)| **c == country)?;
    let mut ends: Vec<usize> = s.match_indices(' ').map(|(i, _)| i).collect();
    ends.push(s.len());
    ends.into_iter().rev().find_map(|end| {
        let value = alnum_upper(&s[..end]);
        ((15..=34).contains(&value.len()) && iban_mod97(&value)).then_some((0, end))
    })
}

/// US Social Security number: area not 000, 666 or 9xx; group not 00; serial not 0000.
pub fn us_ssn(s: &str) -> Option<(usize, usize)> {
    let d = digits(s);
    if d.len() != 9 {
        return None;
    }
    let area = d[0] * 100 + d[1] * 10 + d[2];
    let group = d[3] * 10 + d[4];
    let serial = d[5] * 1000 + d[6] * 100 + d[7] * 10 + d[8];
    let ok = area != 0 && area != 666 && area < 900 && group != 0 && serial != 0;
    // Well-known invalid example numbers.
    let example = matches!(area * 1_000_000 + group * 10_000 + serial, 123_456_789 | 78_051_120);
    (ok && !example).then(|| whole(s)).flatten()
}

/// German tax identification number (Steuer-IdNr): 11 digits, no leading zero, in the
/// first ten exactly one digit repeated (twice or three times), ISO 7064 MOD 11,10.
pub fn de_tax_id(s: &str) -> Option<(usize, usize)> {
    let d = digits(s);
    if d.len() != 11 || d[0] == 0 {
        return None;
    }
    let mut counts = [0u8; 10];
    for &x in &d[..10] {
        counts[x as usize] += 1;
    }
    let repeated = counts.iter().filter(|&&c| c > 1).count();
    if repeated != 1 || counts.iter().any(|&c| c > 3) {
        return None;
    }
    let mut product = 10;
    for &x in &d[..10] {
        let mut sum = (x + product) % 10;
        if sum == 0 {
            sum = 10;
        }
        product = (sum * 2) % 11;
    }
    let check = (11 - product) % 10;
    (check == d[10]).then(|| whole(s)).flatten()
}

/// French social security number (NIR): sex, year, month, department (2A/2B for
/// Corsica), commune, order, and a key of 97 minus the number mod 97.
pub fn fr_nir(s: &str) -> Option<(usize, usize)> {
    let v = alnum_upper(s);
    if v.len() != 15 || !matches!(v[0], b'1' | b'2' | b'3' | b'4' | b'7' | b'8') {
        return None;
    }
    let month = (v[3].wrapping_sub(b'0')) * 10 + v[4].wrapping_sub(b'0');
    if !(1..=12).contains(&month) && !(20..=42).contains(&month) && !(50..=99).contains(&month) {
        return None;
    }
    let mut number: u64 = 0;
    let correction: u64 = match (v[5], v[6]) {
        (b'2', b'A') => 1_000_000,
        (b'2', b'B') => 2_000_000,
        _ => 0,
    };
    for (i, &c) in v[..13].iter().enumerate() {
        let x = match c {
            b'0'..=b'9' => u64::from(c - b'0'),
            b'A' | b'B' if i == 6 => 0, // 2A → 20…, minus the correction below
            _ => return None,
        };
        number = number * 10 + x;
    }
    number -= correction;
    let key = u64::from(v[13].wrapping_sub(b'0')) * 10 + u64::from(v[14].wrapping_sub(b'0'));
    (v[13..].iter().all(u8::is_ascii_digit) && key == 97 - number % 97)
        .then(|| whole(s))
        .flatten()
}

const DNI_LETTERS: &[u8; 23] = b"TRWAGMYFPDXBNJZSQVHLCKE";

/// Spanish DNI (8 digits and a letter) and NIE (X/Y/Z, 7 digits, a letter): the letter
/// is the number mod 23.
pub fn es_dni(s: &str) -> Option<(usize, usize)> {
    let v = alnum_upper(s);
    if v.len() != 9 {
        return None;
    }
    let (lead, rest) = match v[0] {
        b'X' => (0, &v[1..8]),
        b'Y' => (1, &v[1..8]),
        b'Z' => (2, &v[1..8]),
        _ => (-1, &v[..8]),
    };
    let mut n: u32 = if lead >= 0 { lead as u32 } else { 0 };
    for &c in rest {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u32::from(c - b'0');
    }
    (DNI_LETTERS[(n % 23) as usize] == v[8]).then(|| whole(s)).flatten()
}

/// Italian codice fiscale: 16 characters, the last a check letter over odd and even
/// positions (omocodia letters allowed in the digit positions).
pub fn it_codice_fiscale(s: &str) -> Option<(usize, usize)> {
    const ODD: [u32; 36] = [
        1, 0, 5, 7, 9, 13, 15, 17, 19, 21, // 0-9
        1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24, 23, // A-Z
    ];
    let v = alnum_upper(s);
    if v.len() != 16 {
        return None;
    }
    let mut sum = 0;
    for (i, &c) in v[..15].iter().enumerate() {
        let idx = match c {
            b'0'..=b'9' => usize::from(c - b'0'),
            b'A'..=b'Z' => usize::from(c - b'A') + 10,
            _ => return None,
        };
        sum += if i % 2 == 0 {
            ODD[idx]
        } else if idx < 10 {
            small(idx)
        } else {
            small(idx - 10)
        };
    }
    (u32::from(v[15]) == u32::from(b'A') + sum % 26)
        .then(|| whole(s))
        .flatten()
}

/// Dutch citizen service number (BSN): 9 digits, the "eleven test" with the last
/// weight −1.
pub fn nl_bsn(s: &str) -> Option<(usize, usize)> {
    let d = digits(s);
    if d.len() != 9 || d.iter().all(|&x| x == d[0]) {
        return None;
    }
    let sum: i64 = d[..8]
        .iter()
        .enumerate()
        .map(|(i, &x)| i64::from(x) * (9 - i as i64))
        .sum::<i64>()
        - i64::from(d[8]);
    (sum % 11 == 0 && sum != 0).then(|| whole(s)).flatten()
}

/// Polish PESEL: 11 digits, a real birth date (the month carries the century), and
/// weights 1-3-7-9.
pub fn pl_pesel(s: &str) -> Option<(usize, usize)> {
    const W: [u32; 10] = [1, 3, 7, 9, 1, 3, 7, 9, 1, 3];
    let d = digits(s);
    if d.len() != 11 {
        return None;
    }
    let month = d[2] * 10 + d[3];
    let day = d[4] * 10 + d[5];
    if !(1..=31).contains(&day) || !matches!(month % 20, 1..=12) || month >= 100 {
        return None;
    }
    let sum: u32 = d[..10].iter().zip(W).map(|(x, w)| x * w).sum();
    ((10 - sum % 10) % 10 == d[10]).then(|| whole(s)).flatten()
}

/// IPv4: four octets of at most 255, not a version-like `0.x.y.z`.
pub fn ipv4(s: &str) -> Option<(usize, usize)> {
    let addr: std::net::Ipv4Addr = s.parse().ok()?;
    (addr.octets()[0] != 0).then(|| whole(s)).flatten()
}

/// IPv6: what the standard library parses, with at least one colon group of hex.
pub fn ipv6(s: &str) -> Option<(usize, usize)> {
    let addr: std::net::Ipv6Addr = s.parse().ok()?;
    (!addr.is_unspecified() && s.bytes().filter(|&b| b == b':').count() >= 2)
        .then(|| whole(s))
        .flatten()
}

/// MAC address: six hex pairs with one kind of separator throughout.
pub fn mac(s: &str) -> Option<(usize, usize)> {
    let seps: Vec<u8> = s.bytes().filter(|b| matches!(b, b':' | b'-')).collect();
    let same = seps.windows(2).all(|w| w[0] == w[1]);
    let zero = s.bytes().all(|b| matches!(b, b'0' | b':' | b'-'));
    (same && seps.len() == 5 && !zero).then(|| whole(s)).flatten()
}

fn leap(y: u32) -> bool {
    (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400)
}

fn real_date(y: u32, m: u32, d: u32) -> bool {
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap(y) => 29,
        2 => 28,
        _ => return false,
    };
    (1900..=2100).contains(&y) && (1..=days).contains(&d)
}

/// A calendar date: `YYYY-MM-DD`, or `DD.MM.YYYY` / `DD/MM/YYYY` / `MM/DD/YYYY` (either
/// order accepted when it makes a real date).
pub fn date(s: &str) -> Option<(usize, usize)> {
    let parts: Vec<u32> = s
        .split(['-', '.', '/'])
        .map(|p| p.trim().parse::<u32>())
        .collect::<Result<_, _>>()
        .ok()?;
    let [a, b, c] = parts[..] else { return None };
    let ok = if a >= 1000 {
        real_date(a, b, c)
    } else {
        real_date(c, b, a) || real_date(c, a, b)
    };
    ok.then(|| whole(s)).flatten()
}

/// A URL with `user:password@`: the value reported is the password only, so a
/// redaction keeps the URL readable.
pub fn url_credentials(s: &str) -> Option<(usize, usize)> {
    let after_scheme = s.find("://")? + 3;
    let at = after_scheme + s[after_scheme..].find('@')?;
    let colon = after_scheme + s[after_scheme..at].find(':')?;
    (at > colon + 1).then_some((colon + 1, at))
}

const BASE58: &[u8; 58] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

/// Bitcoin legacy / P2SH address: base58check with a double SHA-256 checksum.
pub fn btc_base58(s: &str) -> Option<(usize, usize)> {
    // Decode base58 into a 25-byte big-endian number.
    let mut bytes = [0u8; 25];
    for c in s.bytes() {
        let mut carry = small(BASE58.iter().position(|&x| x == c)?);
        for b in bytes.iter_mut().rev() {
            carry += u32::from(*b) * 58;
            *b = (carry & 0xff) as u8;
            carry >>= 8;
        }
        if carry != 0 {
            return None;
        }
    }
    if !matches!(bytes[0], 0x00 | 0x05) {
        return None;
    }
    let first = ring::digest::digest(&ring::digest::SHA256, &bytes[..21]);
    let second = ring::digest::digest(&ring::digest::SHA256, first.as_ref());
    (second.as_ref()[..4] == bytes[21..]).then(|| whole(s)).flatten()
}

const BECH32: &[u8; 32] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";

fn bech32_polymod(values: impl Iterator<Item = u32>) -> u32 {
    const GEN: [u32; 5] = [0x3b6a_57b2, 0x2650_8e6d, 0x1ea1_19fa, 0x3d42_33dd, 0x2a14_62b3];
    let mut chk: u32 = 1;
    for v in values {
        let top = chk >> 25;
        chk = ((chk & 0x1ff_ffff) << 5) ^ v;
        for (i, g) in GEN.iter().enumerate() {
            if (top >> i) & 1 == 1 {
                chk ^= g;
            }
        }
    }
    chk
}

/// Bitcoin segwit address (`bc1…`): bech32 or bech32m checksum.
pub fn btc_bech32(s: &str) -> Option<(usize, usize)> {
    let lower = s.to_ascii_lowercase();
    let (hrp, data) = lower.rsplit_once('1')?;
    let data: Vec<u32> = data
        .bytes()
        .map(|c| BECH32.iter().position(|&x| x == c).map(small))
        .collect::<Option<_>>()?;
    if data.len() < 7 {
        return None;
    }
    let expanded = hrp
        .bytes()
        .map(|c| u32::from(c) >> 5)
        .chain(std::iter::once(0))
        .chain(hrp.bytes().map(|c| u32::from(c) & 31))
        .chain(data.iter().copied());
    let pm = bech32_polymod(expanded);
    (pm == 1 || pm == 0x2bc8_30a3).then(|| whole(s)).flatten()
}

/// Shannon entropy in bits per character.
pub fn entropy(s: &str) -> f64 {
    let mut counts = [0u32; 256];
    for b in s.bytes() {
        counts[usize::from(b)] += 1;
    }
    let n = s.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

/// `name = value` where the name looks like a secret: the value is reported when it
/// is long and random-looking (entropy, and both letters and digits), so `password =
/// "changeme"` in a question about config files is not.
pub fn assigned_secret(s: &str) -> Option<(usize, usize)> {
    let sep = s.find([':', '='])?;
    let rest = &s[sep + 1..];
    let start = sep + 1 + rest.find(|c: char| !matches!(c, ' ' | '\t' | '"' | '\''))?;
    let value_len = s[start..]
        .find(|c: char| !(c.is_ascii_alphanumeric() || "/+_-=.".contains(c)))
        .unwrap_or(s.len() - start);
    let value = &s[start..start + value_len];
    let letters = value.bytes().any(|b| b.is_ascii_alphabetic());
    let numbers = value.bytes().any(|b| b.is_ascii_digit());
    (value.len() >= 16 && letters && numbers && entropy(value) >= 3.5).then_some((start, start + value_len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cards() {
        for ok in [
            "4111 1111 1111 1111",
            "5500-0000-0000-0004",
            "340000000000009",
            "6011000000000004",
        ] {
            assert!(card(ok).is_some(), "{ok}");
        }
        // Luhn fails / unknown issuer / repeated digit / not a card's grouping.
        for bad in [
            "4111 1111 1111 1112",
            "1234567812345678",
            "0000000000000000",
            "9999999999999995",
            "2 55 08 14 168 025 38",
        ] {
            assert!(card(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn ibans() {
        for ok in [
            "DE89 3704 0044 0532 0130 00",
            "GB82 WEST 1234 5698 7654 32",
            "FR14 2004 1010 0505 0001 3M02 606",
            "NL91ABNA0417164300",
            "ES9121000418450200051332",
            "IT60X0542811101000000123456",
            "BE68539007547034",
            "NO9386011117947",
            "MT84MALT011000012345MTLCAST001S",
        ] {
            assert_eq!(iban(ok), Some((0, ok.len())), "{ok}");
        }
        // One digit changed; unknown country; too short.
        for bad in ["DE89 3704 0044 0532 0130 01", "XX89370400440532013000", "DE89 3704"] {
            assert!(iban(bad).is_none(), "{bad}");
        }
        // Runs on into the next word: cut at the country's length.
        let s = "DE89 3704 0044 0532 0130 00 AND";
        assert_eq!(iban(s), Some((0, 27)));
    }

    #[test]
    fn national_ids() {
        assert!(us_ssn("536-22-8726").is_some());
        for bad in [
            "000-12-3456",
            "666-12-3456",
            "912-12-3456",
            "536-00-8726",
            "536-22-0000",
            "123-45-6789",
        ] {
            assert!(us_ssn(bad).is_none(), "{bad}");
        }
        assert!(de_tax_id("86095742719").is_some());
        assert!(de_tax_id("86095742718").is_none()); // check digit
        assert!(de_tax_id("12345678901").is_none()); // no repeated digit
        assert!(fr_nir("2 55 08 14 168 025 38").is_some());
        assert!(fr_nir("2 55 08 14 168 025 39").is_none());
        assert!(fr_nir("1 69 05 2A 004 011 79").is_some(), "Corsica");
        assert!(fr_nir("1 69 05 2B 004 011 79").is_none());
        assert!(es_dni("12345678Z").is_some());
        assert!(es_dni("12345678A").is_none());
        assert!(es_dni("X1234567L").is_some(), "NIE");
        assert!(it_codice_fiscale("RSSMRA85T10A562S").is_some());
        assert!(it_codice_fiscale("RSSMRA85T10A562T").is_none());
        assert!(nl_bsn("111222333").is_some());
        assert!(nl_bsn("111222334").is_none());
        assert!(nl_bsn("999999999").is_none());
        assert!(pl_pesel("44051401359").is_some());
        assert!(pl_pesel("44051401358").is_none());
        assert!(pl_pesel("44135401359").is_none(), "month 13");
    }

    #[test]
    fn network_and_dates() {
        assert!(ipv4("192.168.1.20").is_some());
        assert!(ipv4("256.1.1.1").is_none());
        assert!(ipv4("0.9.1.2").is_none());
        assert!(ipv6("2001:db8::8a2e:370:7334").is_some());
        assert!(ipv6("12:30:45").is_none());
        assert!(ipv6("::").is_none());
        assert!(mac("00:1A:2B:3C:4D:5E").is_some());
        assert!(mac("00:1A-2B:3C:4D:5E").is_none());
        assert!(date("1985-03-12").is_some());
        assert!(date("12.03.1985").is_some());
        assert!(date("02/29/2001").is_none());
        assert!(date("31.04.1990").is_none());
        assert_eq!(
            url_credentials("postgres://app:s3cr3t@db.internal:5432/x"),
            Some((15, 21))
        );
        assert!(url_credentials("https://example.com/a:b@c").is_some_and(|(a, b)| a < b));
        assert!(url_credentials("https://user@example.com").is_none());
    }

    #[test]
    fn wallets_and_entropy() {
        assert!(btc_base58("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa").is_some());
        assert!(btc_base58("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNb").is_none());
        assert!(btc_bech32("bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq").is_some());
        assert!(btc_bech32("bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdp").is_none());
        assert!(assigned_secret("api_key = \"Zk3vQ9pL2mX8rT4wN7yB\"").is_some());
        assert!(assigned_secret("password = \"changeme\"").is_none());
        assert!(assigned_secret("token: aaaaaaaaaaaaaaaaaaaa1").is_none());
    }
}
