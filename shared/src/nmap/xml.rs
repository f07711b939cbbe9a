//! Streaming parser for nmap's XML output (`-oX -`) into an [`NmapReport`].
//!
//! It owns the mapping from nmap's elements to report fields and the rules for cut-off
//! output. It reads events one at a time from a `BufRead` through one reused buffer and
//! never builds a tree of the document: memory is bounded by the report itself plus the
//! largest single element. Subtrees scanq does not keep (`<hosthint>`, script `<elem>`/`<table>`
//! children, pre- and post-scan scripts, `<trace>`) are skipped without being decoded.
//!
//! A document that stops before `</nmaprun>` (timeout, cancel, output cap) is not an error:
//! every `<host>` completed before the cut is returned and [`NmapReport::partial`] is set.
//! Input that is not nmap XML at all, or XML that is malformed before its end, is a
//! [`ParseError`].

use std::io::BufRead;

use quick_xml::Reader;
use quick_xml::encoding::Decoder;
use quick_xml::errors::{Error, IllFormedError};
use quick_xml::events::{BytesRef, BytesStart, Event};

use super::report::{
    Address, ExtraPorts, Host, HostStatus, Hostname, NmapReport, OsMatch, Port, RunStats, Script,
    Service,
};

/// Why nmap output could not be parsed.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// The input holds no `<nmaprun>` document.
    #[error("not nmap XML output: {0}")]
    NotNmap(&'static str),
    /// The XML is malformed somewhere other than at a cut-off end.
    #[error("malformed XML at byte {position}: {source}")]
    Xml {
        position: u64,
        #[source]
        source: Error,
    },
    /// A required attribute is missing.
    #[error("<{element}> at byte {position} has no `{attribute}` attribute")]
    MissingAttribute {
        element: &'static str,
        attribute: &'static str,
        position: u64,
    },
    /// An attribute's value does not parse as the number it must be.
    #[error("<{element}> at byte {position} has an invalid `{attribute}`: {value:?}")]
    InvalidValue {
        element: &'static str,
        attribute: &'static str,
        value: String,
        position: u64,
    },
}

/// Parses nmap XML from any buffered reader, streaming.
///
/// Tolerates a truncated document: hosts completed before the cut are returned and
/// `partial` is true.
pub fn parse_xml<R: BufRead>(reader: R) -> Result<NmapReport, ParseError> {
    let mut reader = Reader::from_reader(reader);
    let decoder = reader.decoder();
    let mut builder = Builder::new(decoder);
    let mut buf = Vec::with_capacity(4096);
    let mut skip_buf = Vec::new();
    loop {
        buf.clear();
        let position = reader.buffer_position();
        let event = match reader.read_event_into(&mut buf) {
            Ok(event) => event,
            Err(err) => return builder.fail(err, reader.error_position()),
        };
        match event {
            Event::Start(e) => {
                if builder.start(&e, false, position)? == Skip::Subtree {
                    skip_buf.clear();
                    if let Err(err) = reader.read_to_end_into(e.name(), &mut skip_buf) {
                        return builder.fail(err, reader.error_position());
                    }
                }
            }
            Event::Empty(e) => {
                builder.start(&e, true, position)?;
            }
            Event::End(e) => {
                if builder.end(e.name().as_ref()) == Flow::Done {
                    break;
                }
            }
            Event::Text(t) => builder.text(&t, position)?,
            Event::GeneralRef(r) => builder.general_ref(&r, position)?,
            Event::Eof => break,
            Event::CData(_)
            | Event::Comment(_)
            | Event::Decl(_)
            | Event::PI(_)
            | Event::DocType(_) => {}
        }
    }
    builder.finish()
}

/// Parses nmap XML held in memory; see [`parse_xml`].
pub fn parse_xml_bytes(bytes: &[u8]) -> Result<NmapReport, ParseError> {
    parse_xml(bytes)
}

#[derive(Debug, PartialEq, Eq)]
enum Skip {
    No,
    Subtree,
}

#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    Done,
}

/// Accumulates the report while events stream past.
struct Builder {
    decoder: Decoder,
    report: NmapReport,
    root_seen: bool,
    complete: bool,
    host: Option<Host>,
    port: Option<Port>,
    in_service: bool,
    cpe: Option<String>,
}

impl Builder {
    fn new(decoder: Decoder) -> Self {
        Self {
            decoder,
            report: NmapReport::default(),
            root_seen: false,
            complete: false,
            host: None,
            port: None,
            in_service: false,
            cpe: None,
        }
    }

    /// A reader error: the end of a cut-off document, or a real parse failure.
    fn fail(self, err: Error, position: u64) -> Result<NmapReport, ParseError> {
        match (self.root_seen, is_cut(&err)) {
            (true, true) => return self.finish(),
            (false, true) => return Err(ParseError::NotNmap("input ended before <nmaprun>")),
            _ => {}
        }
        Err(ParseError::Xml {
            position,
            source: err,
        })
    }

    fn finish(mut self) -> Result<NmapReport, ParseError> {
        if !self.root_seen {
            return Err(ParseError::NotNmap("no <nmaprun> element"));
        }
        self.report.partial = !self.complete;
        Ok(self.report)
    }

    fn start(&mut self, e: &BytesStart<'_>, empty: bool, pos: u64) -> Result<Skip, ParseError> {
        let name = e.local_name();
        let name = name.as_ref();
        if !self.root_seen {
            if name != b"nmaprun" {
                return Err(ParseError::NotNmap("root element is not <nmaprun>"));
            }
            self.root_seen = true;
            let a = Attrs::new(e, self.decoder, "nmaprun", pos)?;
            self.report.scanner_args = a.get(b"args");
            self.report.version = a.get(b"version");
            if empty {
                self.complete = true;
            }
            return Ok(Skip::No);
        }
        match name {
            b"host" if self.host.is_none() => {
                self.host = Some(Host::default());
                if empty {
                    self.end(b"host");
                }
            }
            b"hosthint" | b"prescript" | b"postscript" | b"trace" | b"elem" | b"table"
                if !empty =>
            {
                return Ok(Skip::Subtree);
            }
            b"script" => {
                let a = Attrs::new(e, self.decoder, "script", pos)?;
                let script = Script {
                    id: a.required(b"id")?,
                    output: a.get(b"output").unwrap_or_default(),
                };
                if let Some(port) = self.port.as_mut() {
                    port.scripts.push(script);
                } else if let Some(host) = self.host.as_mut() {
                    host.scripts.push(script);
                }
                if !empty {
                    return Ok(Skip::Subtree);
                }
            }
            b"runstats" | b"finished" | b"hosts" if self.host.is_none() => {
                self.runstats(name, e, pos)?;
            }
            _ => self.host_child(name, e, empty, pos)?,
        }
        Ok(Skip::No)
    }

    fn host_child(
        &mut self,
        name: &[u8],
        e: &BytesStart<'_>,
        empty: bool,
        pos: u64,
    ) -> Result<(), ParseError> {
        let Some(host) = self.host.as_mut() else {
            return Ok(());
        };
        match name {
            b"status" => {
                let a = Attrs::new(e, self.decoder, "status", pos)?;
                host.status = Some(HostStatus {
                    state: a.required(b"state")?,
                    reason: a.get(b"reason").unwrap_or_default(),
                });
            }
            b"address" => {
                let a = Attrs::new(e, self.decoder, "address", pos)?;
                host.addresses.push(Address {
                    addr: a.required(b"addr")?,
                    addrtype: a.get(b"addrtype").unwrap_or_else(|| "ipv4".to_owned()),
                    vendor: a.get(b"vendor"),
                });
            }
            b"hostname" => {
                let a = Attrs::new(e, self.decoder, "hostname", pos)?;
                host.hostnames.push(Hostname {
                    name: a.required(b"name")?,
                    kind: a.get(b"type"),
                });
            }
            b"extraports" => {
                let a = Attrs::new(e, self.decoder, "extraports", pos)?;
                host.extraports.push(ExtraPorts {
                    state: a.required(b"state")?,
                    count: a.number(b"count")?.unwrap_or(0),
                });
            }
            b"osmatch" => {
                let a = Attrs::new(e, self.decoder, "osmatch", pos)?;
                host.os_matches.push(OsMatch {
                    name: a.required(b"name")?,
                    accuracy: a.number(b"accuracy")?.unwrap_or(0),
                });
            }
            b"port" => {
                let a = Attrs::new(e, self.decoder, "port", pos)?;
                let port = Port {
                    protocol: a.required(b"protocol")?,
                    port: a.number(b"portid")?.ok_or_else(|| a.missing("portid"))?,
                    state: String::new(),
                    reason: String::new(),
                    service: None,
                    scripts: Vec::new(),
                };
                if empty {
                    host.ports.push(port);
                } else {
                    self.port = Some(port);
                }
            }
            b"state" => {
                if let Some(port) = self.port.as_mut() {
                    let a = Attrs::new(e, self.decoder, "state", pos)?;
                    port.state = a.required(b"state")?;
                    port.reason = a.get(b"reason").unwrap_or_default();
                }
            }
            b"service" => {
                if let Some(port) = self.port.as_mut() {
                    let a = Attrs::new(e, self.decoder, "service", pos)?;
                    port.service = Some(Service {
                        name: a.get(b"name").unwrap_or_default(),
                        product: a.get(b"product"),
                        version: a.get(b"version"),
                        extrainfo: a.get(b"extrainfo"),
                        ostype: a.get(b"ostype"),
                        tunnel: a.get(b"tunnel"),
                        method: a.get(b"method"),
                        conf: a.number(b"conf")?,
                        cpe: Vec::new(),
                    });
                    self.in_service = !empty;
                }
            }
            b"cpe" if self.in_service && !empty => self.cpe = Some(String::new()),
            _ => {}
        }
        Ok(())
    }

    fn runstats(&mut self, name: &[u8], e: &BytesStart<'_>, pos: u64) -> Result<(), ParseError> {
        let stats = self.report.stats.get_or_insert_with(RunStats::default);
        match name {
            b"finished" => {
                let a = Attrs::new(e, self.decoder, "finished", pos)?;
                stats.finished_time = a.number(b"time")?;
                stats.elapsed_sec = a.number(b"elapsed")?;
                stats.summary = a.get(b"summary");
                stats.exit = a.get(b"exit");
                stats.error_message = a.get(b"errormsg");
            }
            b"hosts" => {
                let a = Attrs::new(e, self.decoder, "hosts", pos)?;
                stats.hosts_up = a.number(b"up")?.unwrap_or(0);
                stats.hosts_down = a.number(b"down")?.unwrap_or(0);
                stats.hosts_total = a.number(b"total")?.unwrap_or(0);
            }
            _ => {}
        }
        Ok(())
    }

    fn end(&mut self, name: &[u8]) -> Flow {
        match name {
            b"nmaprun" => {
                self.complete = true;
                return Flow::Done;
            }
            b"host" => {
                if let Some(host) = self.host.take() {
                    self.report.hosts.push(host);
                }
            }
            b"port" => {
                if let (Some(port), Some(host)) = (self.port.take(), self.host.as_mut()) {
                    host.ports.push(port);
                }
            }
            b"service" => self.in_service = false,
            b"cpe" => {
                let cpe = self.cpe.take();
                let service = self.port.as_mut().and_then(|p| p.service.as_mut());
                if let (Some(cpe), Some(service)) = (cpe, service) {
                    service.cpe.push(cpe);
                }
            }
            _ => {}
        }
        Flow::Continue
    }

    fn text(&mut self, t: &quick_xml::events::BytesText<'_>, pos: u64) -> Result<(), ParseError> {
        if !self.root_seen {
            if t.iter().all(u8::is_ascii_whitespace) {
                return Ok(());
            }
            return Err(ParseError::NotNmap("text before <nmaprun>"));
        }
        if let Some(cpe) = self.cpe.as_mut() {
            let s = t.decode().map_err(|err| xml_error(err.into(), pos))?;
            cpe.push_str(&s);
        }
        Ok(())
    }

    fn general_ref(&mut self, r: &BytesRef<'_>, pos: u64) -> Result<(), ParseError> {
        if !self.root_seen {
            return Err(ParseError::NotNmap("text before <nmaprun>"));
        }
        let Some(cpe) = self.cpe.as_mut() else {
            return Ok(());
        };
        if let Some(c) = r.resolve_char_ref().map_err(|err| xml_error(err, pos))? {
            cpe.push(c);
        } else {
            let name = r.decode().map_err(|err| xml_error(err.into(), pos))?;
            let resolved = quick_xml::escape::resolve_predefined_entity(&name).unwrap_or("");
            cpe.push_str(resolved);
        }
        Ok(())
    }
}

/// Whether a reader error means the input simply ended too early: inside markup (every
/// `SyntaxError`), inside an entity reference, or inside a subtree being skipped. That is
/// what a cut-off nmap run looks like, as opposed to malformed XML.
fn is_cut(err: &Error) -> bool {
    matches!(
        err,
        Error::Syntax(_)
            | Error::IllFormed(
                IllFormedError::UnclosedReference | IllFormedError::MissingEndTag(_)
            )
    )
}

fn xml_error(source: Error, position: u64) -> ParseError {
    ParseError::Xml { position, source }
}

/// The decoded attributes of one start tag, with typed getters.
struct Attrs {
    element: &'static str,
    position: u64,
    values: Vec<(Vec<u8>, String)>,
}

impl Attrs {
    fn new(
        e: &BytesStart<'_>,
        decoder: Decoder,
        element: &'static str,
        position: u64,
    ) -> Result<Self, ParseError> {
        let mut values = Vec::new();
        for attr in e.attributes() {
            let attr = attr.map_err(|err| xml_error(err.into(), position))?;
            let value = attr
                .decode_and_unescape_value(decoder)
                .map_err(|err| xml_error(err, position))?;
            values.push((attr.key.local_name().as_ref().to_vec(), value.into_owned()));
        }
        Ok(Self {
            element,
            position,
            values,
        })
    }

    fn get(&self, key: &[u8]) -> Option<String> {
        self.values
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    }

    fn missing(&self, attribute: &'static str) -> ParseError {
        ParseError::MissingAttribute {
            element: self.element,
            attribute,
            position: self.position,
        }
    }

    fn required(&self, key: &'static [u8]) -> Result<String, ParseError> {
        self.get(key)
            .ok_or_else(|| self.missing(std::str::from_utf8(key).unwrap_or("?")))
    }

    fn number<T: std::str::FromStr>(&self, key: &'static [u8]) -> Result<Option<T>, ParseError> {
        let Some(value) = self.get(key) else {
            return Ok(None);
        };
        value
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| ParseError::InvalidValue {
                element: self.element,
                attribute: std::str::from_utf8(key).unwrap_or("?"),
                value,
                position: self.position,
            })
    }
}
