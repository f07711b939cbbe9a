//! The text side of the merge: one streaming pass over a chunk's nmap XML at a time, with
//! quick-xml's slice reader, copying byte ranges of the input and never building a tree.
//! [`read_header`] reads only up to the first host (prolog, `<nmaprun>` attributes, the
//! `scaninfo`/`verbose`/`debugging` preamble); [`copy_hosts`] copies each top-level `<host>`
//! element byte for byte and skips everything else (`<hosthint>`, task progress, pre- and
//! post-scan scripts, `<runstats>`).

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

/// What the merged document takes from a chunk's XML before its first host.
#[derive(Debug, Default)]
pub(super) struct Header<'a> {
    /// The XML declaration, `<!DOCTYPE nmaprun>` and the stylesheet PI, as written
    /// (comments are left out: nmap's says "scan initiated … as: <one chunk's command>").
    pub prolog: Vec<&'a str>,
    /// `<nmaprun>`'s attributes in order, values raw (still escaped) as written.
    pub attrs: Vec<(String, String)>,
    /// `<nmaprun start>`, Unix seconds.
    pub start: Option<u64>,
    /// `<scaninfo>`, `<verbose>` and `<debugging>`, as written.
    pub preamble: Vec<&'a str>,
}

impl Header<'_> {
    /// The raw value of `<nmaprun>` attribute `key`.
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Top-level elements kept from the first chunk's preamble.
const PREAMBLE: &[&[u8]] = &[b"scaninfo", b"verbose", b"debugging"];

/// The header of one chunk's XML, or `None` when it holds no `<nmaprun>` start tag.
pub(super) fn read_header(xml: &str) -> Option<Header<'_>> {
    let mut reader = Reader::from_str(xml);
    let mut header = Header::default();
    let mut in_root = false;
    loop {
        let before = position(&reader);
        let event = reader.read_event().ok()?;
        let raw = &xml[before..position(&reader)];
        let empty = matches!(event, Event::Empty(_));
        match event {
            Event::Decl(_) | Event::DocType(_) | Event::PI(_) if !in_root => {
                header.prolog.push(raw);
            }
            Event::Start(e) | Event::Empty(e) if !in_root => {
                if e.local_name().as_ref() != b"nmaprun" {
                    return None;
                }
                header.attrs = raw_attrs(&e)?;
                header.start = header.attr("start").and_then(|s| s.trim().parse().ok());
                in_root = true;
            }
            Event::Start(e) | Event::Empty(e) if PREAMBLE.contains(&e.local_name().as_ref()) => {
                if empty {
                    header.preamble.push(raw);
                } else {
                    reader.read_to_end(e.name()).ok()?;
                    header.preamble.push(&xml[before..position(&reader)]);
                }
            }
            Event::Start(_) | Event::Empty(_) | Event::End(_) | Event::Eof => {
                return in_root.then_some(header);
            }
            _ => {}
        }
    }
}

/// Why [`copy_hosts`] stopped.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Copied {
    /// Every complete host of the chunk was copied.
    All,
    /// The next host would have passed `limit`; it and the rest were left out.
    Full,
}

/// Appends every complete top-level `<host>…</host>` of `xml` to `out`, each followed by a
/// line break, as long as `out` stays within `limit` bytes; counts them in `kept`. A host cut
/// off by the end of the input (a truncated chunk) is not copied, as the parser drops it too.
pub(super) fn copy_hosts(xml: &str, out: &mut String, limit: usize, kept: &mut usize) -> Copied {
    let mut reader = Reader::from_str(xml);
    let mut in_root = false;
    loop {
        let before = position(&reader);
        let Ok(event) = reader.read_event() else {
            return Copied::All;
        };
        match event {
            Event::Start(e) if !in_root => in_root = e.local_name().as_ref() == b"nmaprun",
            Event::Start(e) => {
                if reader.read_to_end(e.name()).is_err() {
                    return Copied::All;
                }
                if e.local_name().as_ref() == b"host" {
                    let host = &xml[before..position(&reader)];
                    if out.len() + host.len() + 1 > limit {
                        return Copied::Full;
                    }
                    out.push_str(host);
                    out.push('\n');
                    *kept += 1;
                }
            }
            Event::End(_) if in_root => return Copied::All,
            Event::Eof => return Copied::All,
            _ => {}
        }
    }
}

/// `<nmaprun>`'s attributes with their raw values, or `None` if one is malformed.
fn raw_attrs(e: &BytesStart<'_>) -> Option<Vec<(String, String)>> {
    e.attributes()
        .map(|a| {
            let a = a.ok()?;
            let key = std::str::from_utf8(a.key.as_ref()).ok()?.to_owned();
            let value = std::str::from_utf8(&a.value).ok()?.to_owned();
            Some((key, value))
        })
        .collect()
}

/// The reader's byte offset; the input is a `&str` held in memory, so it fits a `usize`.
fn position(reader: &Reader<&[u8]>) -> usize {
    usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX)
}
