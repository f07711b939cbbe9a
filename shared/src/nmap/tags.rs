//! Incremental scanner that picks a few named tags out of a byte stream fed in arbitrary
//! chunks, for progress tracking while nmap is still writing.
//!
//! It is deliberately not an XML parser: it needs no well-formed document (a stream of bare
//! `<taskprogress …/>` lines works), never fails, and keeps at most one interesting tag
//! ([`MAX_TAG_BYTES`]) as carry-over between chunks. Bytes outside tags, and tags whose name
//! is not asked for, are dropped as soon as they are seen.

/// Longest tag kept; a longer tag is skipped (progress tags are under 200 bytes).
pub(crate) const MAX_TAG_BYTES: usize = 4096;

/// One start, empty or end tag with its attributes decoded.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Tag {
    pub(crate) name: String,
    /// `</name>`.
    pub(crate) closing: bool,
    attrs: Vec<(String, String)>,
}

impl Tag {
    pub(crate) fn attr(&self, key: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between tags: looking for `<`.
    Outside,
    /// Inside a tag whose bytes are being kept in `carry`.
    Keeping,
    /// Inside a tag that is not wanted (or too long): looking for `>`.
    Skipping,
}

/// The scanner; `names` are the tag names to report (without `<` or `/`).
#[derive(Debug)]
pub(crate) struct TagScanner {
    names: &'static [&'static str],
    state: State,
    carry: Vec<u8>,
}

impl TagScanner {
    pub(crate) fn new(names: &'static [&'static str]) -> Self {
        Self {
            names,
            state: State::Outside,
            carry: Vec::new(),
        }
    }

    /// Scans `chunk`, calling `on_tag` for every complete wanted tag in it.
    pub(crate) fn feed(&mut self, mut chunk: &[u8], mut on_tag: impl FnMut(Tag)) {
        while !chunk.is_empty() {
            match self.state {
                State::Outside => match chunk.iter().position(|&b| b == b'<') {
                    Some(i) => {
                        chunk = &chunk[i + 1..];
                        self.carry.clear();
                        self.state = State::Keeping;
                    }
                    None => return,
                },
                State::Skipping => match chunk.iter().position(|&b| b == b'>') {
                    Some(i) => {
                        chunk = &chunk[i + 1..];
                        self.state = State::Outside;
                    }
                    None => return,
                },
                State::Keeping => {
                    let end = chunk.iter().position(|&b| b == b'>');
                    let take = end.unwrap_or(chunk.len());
                    self.carry.extend_from_slice(&chunk[..take]);
                    chunk = &chunk[end.map_or(take, |i| i + 1)..];
                    if !self.still_wanted() {
                        self.carry.clear();
                        self.state = if end.is_some() {
                            State::Outside
                        } else {
                            State::Skipping
                        };
                        continue;
                    }
                    if end.is_some() {
                        if let Some(tag) = parse_tag(&self.carry) {
                            on_tag(tag);
                        }
                        self.carry.clear();
                        self.state = State::Outside;
                    }
                }
            }
        }
    }

    /// Whether the tag being kept may still be one of `names` and fits in the carry limit.
    fn still_wanted(&self) -> bool {
        if self.carry.len() > MAX_TAG_BYTES {
            return false;
        }
        let body = self.carry.strip_prefix(b"/").unwrap_or(&self.carry);
        let name_len = body.iter().position(|&b| !is_name_byte(b));
        let Some(name_len) = name_len else {
            // The name may continue in the next chunk: keep it while it is a prefix.
            return self.names.iter().any(|n| n.as_bytes().starts_with(body));
        };
        self.names.iter().any(|n| n.as_bytes() == &body[..name_len])
    }
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':')
}

/// Parses the inside of `<…>` (without the brackets).
fn parse_tag(raw: &[u8]) -> Option<Tag> {
    let text = std::str::from_utf8(raw).ok()?;
    let (closing, text) = match text.strip_prefix('/') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let text = text.strip_suffix('/').unwrap_or(text);
    let name_end = text.find(|c: char| !is_name_byte(c as u8) || !c.is_ascii());
    let (name, mut rest) = text.split_at(name_end.unwrap_or(text.len()));
    let mut attrs = Vec::new();
    loop {
        rest = rest.trim_start();
        let Some(eq) = rest.find('=') else { break };
        let key = rest[..eq].trim();
        let after = rest[eq + 1..].trim_start();
        let quote = after.chars().next()?;
        if quote != '"' && quote != '\'' {
            return None;
        }
        let close = after[1..].find(quote)?;
        attrs.push((key.to_owned(), unescape(&after[1..1 + close])));
        rest = &after[close + 2..];
    }
    Some(Tag {
        name: name.to_owned(),
        closing,
        attrs,
    })
}

/// Resolves the five predefined entities and numeric character references.
fn unescape(value: &str) -> String {
    if !value.contains('&') {
        return value.to_owned();
    }
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let Some(semi) = rest.find(';') else { break };
        let entity = &rest[1..semi];
        let resolved = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .map(|hex| u32::from_str_radix(hex, 16))
                .or_else(|| entity.strip_prefix('#').map(str::parse))
                .and_then(Result::ok)
                .and_then(char::from_u32),
        };
        match resolved {
            Some(c) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_all(names: &'static [&'static str], chunks: &[&[u8]]) -> Vec<Tag> {
        let mut scanner = TagScanner::new(names);
        let mut tags = Vec::new();
        for chunk in chunks {
            scanner.feed(chunk, |t| tags.push(t));
        }
        tags
    }

    #[test]
    fn wanted_tags_are_found_across_chunk_boundaries() {
        let tags = scan_all(
            &["taskprogress"],
            &[
                b"junk <taskpro",
                b"gress task=\"Connect Scan\" perc",
                b"ent=\"12.5\"/>\n",
            ],
        );
        assert_eq!(tags.len(), 1);
        assert_eq!(tags[0].name, "taskprogress");
        assert_eq!(tags[0].attr("task"), Some("Connect Scan"));
        assert_eq!(tags[0].attr("percent"), Some("12.5"));
    }

    #[test]
    fn similar_names_and_unwanted_tags_are_skipped() {
        let tags = scan_all(
            &["host"],
            &[b"<hostnames><hostname name=\"a\"/></hostnames><host starttime=\"1\"></host>"],
        );
        let summary: Vec<_> = tags.iter().map(|t| (t.name.as_str(), t.closing)).collect();
        assert_eq!(summary, [("host", false), ("host", true)]);
    }

    #[test]
    fn oversized_tags_are_dropped_without_growing_the_carry() {
        let mut scanner = TagScanner::new(&["taskprogress"]);
        let mut seen = 0;
        scanner.feed(b"<taskprogress task=\"", |_| seen += 1);
        for _ in 0..100 {
            scanner.feed(&[b'x'; 1000], |_| seen += 1);
            assert!(scanner.carry.len() <= MAX_TAG_BYTES + 1000);
        }
        scanner.feed(b"\"/><taskprogress percent=\"1\"/>", |_| seen += 1);
        assert_eq!(seen, 1);
    }

    #[test]
    fn entities_in_attribute_values_are_resolved() {
        assert_eq!(unescape("a&amp;b&#xa;c&#65;&bogus;"), "a&b\ncA&bogus;");
    }
}
