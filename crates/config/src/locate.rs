//! Maps a key path such as `routes[1].timeouts.total` back to a line in the TOML source,
//! using the spans of toml's document parser. When the key itself is absent, the line of
//! its closest existing parent is returned.

use toml::de::{DeTable, DeValue};

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// A dotted key path, built while validating.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPath(pub Vec<Seg>);

impl KeyPath {
    pub fn key(&self, name: &str) -> KeyPath {
        let mut next = self.clone();
        next.0.push(Seg::Key(name.to_owned()));
        next
    }

    pub fn index(&self, i: usize) -> KeyPath {
        let mut next = self.clone();
        next.0.push(Seg::Index(i));
        next
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        for seg in &self.0 {
            match seg {
                Seg::Key(k) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(k);
                }
                Seg::Index(i) => out.push_str(&format!("[{i}]")),
            }
        }
        out
    }
}

/// Line numbers (1-based) for key paths of one source text.
#[derive(Debug)]
pub struct Locator<'a> {
    source: &'a str,
    root: Option<toml::Spanned<DeTable<'a>>>,
}

impl<'a> Locator<'a> {
    pub fn new(source: &'a str) -> Self {
        Self {
            source,
            root: DeTable::parse(source).ok(),
        }
    }

    /// The line where `path` (or its closest present parent) is written.
    pub fn line(&self, path: &KeyPath) -> Option<usize> {
        let root = self.root.as_ref()?;
        let mut best: Option<usize> = None;
        let mut table: Option<&DeTable<'_>> = Some(root.get_ref());
        let mut value: Option<&toml::Spanned<DeValue<'_>>> = None;
        for seg in &path.0 {
            let next = match seg {
                Seg::Key(k) => table.and_then(|t| {
                    t.iter()
                        .find(|(key, _)| key.get_ref().as_ref() == k.as_str())
                        .map(|(key, v)| {
                            best = Some(key.span().start);
                            v
                        })
                }),
                Seg::Index(i) => value.and_then(|v| v.get_ref().as_array()).and_then(|a| a.get(*i)),
            };
            match next {
                Some(v) => {
                    if matches!(seg, Seg::Index(_)) || !v.get_ref().is_table() {
                        best = Some(v.span().start);
                    }
                    table = v.get_ref().as_table();
                    value = Some(v);
                }
                None => break,
            }
        }
        best.map(|offset| line_of(self.source, offset))
    }
}

fn line_of(source: &str, offset: usize) -> usize {
    let end = offset.min(source.len());
    source.as_bytes()[..end].iter().filter(|&&b| b == b'\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_lines_of_nested_keys() {
        let src = "[server]\nnode_id = \"a\"\n\n[[routes]]\nname = \"x\"\n\n[[routes]]\nname = \"y\"\n[routes.timeouts]\ntotal = \"1s\"\n";
        let loc = Locator::new(src);
        let p = KeyPath::default().key("server").key("node_id");
        assert_eq!(loc.line(&p), Some(2));
        let p = KeyPath::default().key("routes").index(1).key("name");
        assert_eq!(loc.line(&p), Some(8));
        let p = KeyPath::default().key("routes").index(1).key("timeouts").key("total");
        assert_eq!(loc.line(&p), Some(10));
        // Absent key: falls back to the closest parent that exists.
        let p = KeyPath::default().key("routes").index(0).key("upstream");
        assert!(loc.line(&p).is_some());
        assert_eq!(path_text(), "routes[0].upstream");
    }

    fn path_text() -> String {
        KeyPath::default().key("routes").index(0).key("upstream").render()
    }
}
