//! Understanding nmap's output: the parsed report stored as a job's `result.parsed`
//! ([`parse_xml`]) and live progress from its stdout while it runs ([`progress_parser`]).
//!
//! The worker runs nmap with `-oX - --stats-every 1s`, so stdout is one XML document with
//! `<taskprogress>` elements interleaved. During the run the same bytes feed a
//! [`ProgressParser`]; at the end they are parsed into an [`NmapReport`], which tolerates a
//! cut-off document (timeout, cancel, output cap). [`merge_chunks`] makes one result of the
//! chunks of a big scan. Nothing here does I/O beyond reading the given reader. How progress
//! is computed is described in `docs/nmap.md`.

mod diff;
mod export;
mod lines;
mod merge;
mod parser;
mod progress;
mod report;
mod tags;
mod xml;

pub use diff::{
    Change, DiffSummary, HostChange, HostDiff, PortChange, PortDiff, PortSide, ScanDiff,
    ScriptDiff, diff_reports,
};
pub use export::{CSV_HEADER, NoReport, csv_field, finished_report, to_csv};
pub use lines::PercentLines;
pub use merge::{ChunkOutcome, MERGED_STDERR_MAX, merge_chunks};
pub use parser::{Progress, ProgressParser};
pub use progress::{
    NmapProgress, PROGRESS_PARSER_NAMES, progress_parser, progress_parser_for_hosts,
};
pub use report::{
    Address, ExtraPorts, Host, HostStatus, Hostname, NmapReport, OsMatch, Port, RunStats, Script,
    Service,
};
pub use xml::{ParseError, parse_xml, parse_xml_bytes};
