//! `application/x-www-form-urlencoded` bodies (what HTML forms send).

/// Decodes a form body into `(name, value)` pairs; malformed escapes are kept as
/// they are, invalid UTF-8 is replaced.
pub fn parse(body: &[u8]) -> Vec<(String, String)> {
    body.split(|b| *b == b'&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let mut it = pair.splitn(2, |b| *b == b'=');
            let k = decode(it.next().unwrap_or_default());
            let v = decode(it.next().unwrap_or_default());
            (k, v)
        })
        .collect()
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn decode(s: &[u8]) -> String {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < s.len() => match (hex(s[i + 1]), hex(s[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The first value of `name`.
pub fn get<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// Percent-encodes a value for a URL query.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode_like_browsers_send_them() {
        let f = parse(b"scope=route%3Achat&reason=a+b%20c&cut_streams=on&bad=%zz&end=%4");
        assert_eq!(get(&f, "scope"), Some("route:chat"));
        assert_eq!(get(&f, "reason"), Some("a b c"));
        assert_eq!(get(&f, "cut_streams"), Some("on"));
        assert_eq!(get(&f, "bad"), Some("%zz"));
        assert_eq!(get(&f, "end"), Some("%4"));
        assert_eq!(get(&f, "missing"), None);
        assert_eq!(decode(encode("a b/ü&=").as_bytes()), "a b/ü&=");
    }
}
