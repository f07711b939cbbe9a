//! The generic `percent-lines` progress parser, for tools (fake test tools included) that
//! print plain progress lines instead of nmap XML.
//!
//! A line (ended by `\n` or `\r`, so carriage-return progress bars work) reports progress
//! when it holds a percent sign after a number (`42%`, `Scanning: 42.5 % done`) or starts with
//! the word `progress` (`progress 42.5`, `PROGRESS: 42`, `progress=42`). An optional
//! `eta 31` / `eta=31s` in the same line gives the ETA. Other lines are ignored, values
//! outside 0..=100 too, and the percent never goes backwards. Only the unfinished last line
//! is carried between chunks, and a line longer than [`MAX_LINE_BYTES`] is dropped.

use super::parser::{Progress, ProgressParser, report_if_forward};

/// Longest line kept while waiting for its end.
pub(crate) const MAX_LINE_BYTES: usize = 4096;

/// Progress parser for `progress 42.5` / `42%` lines.
#[derive(Debug, Default)]
pub struct PercentLines {
    carry: Vec<u8>,
    /// Dropping the rest of an overlong line.
    overflow: bool,
    best: f64,
    reported: Option<Progress>,
}

impl PercentLines {
    pub fn new() -> Self {
        Self::default()
    }

    fn on_line(&mut self, line: &[u8]) -> Option<(f64, Option<u64>)> {
        let line = std::str::from_utf8(line).ok()?.trim().to_ascii_lowercase();
        let percent = percent_in(&line)?;
        Some((percent, eta_in(&line)))
    }
}

/// The number before the first `%`, or after a leading `progress`.
fn percent_in(line: &str) -> Option<f64> {
    let value = if let Some(rest) = line.strip_prefix("progress") {
        let rest = rest.trim_start_matches(|c: char| c == ':' || c == '=' || c.is_whitespace());
        leading_number(rest)?
    } else {
        let before = line[..line.find('%')?].trim_end();
        trailing_number(before)?
    };
    (0.0..=100.0).contains(&value).then_some(value)
}

fn eta_in(line: &str) -> Option<u64> {
    let at = line.find("eta")?;
    let rest = line[at + 3..].trim_start_matches([':', '=', ' ']);
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

fn leading_number(s: &str) -> Option<f64> {
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    s[..end].parse().ok()
}

fn trailing_number(s: &str) -> Option<f64> {
    // After the last character that is not part of a number (it may be several bytes long).
    let start = s
        .char_indices()
        .rfind(|(_, c)| !(c.is_ascii_digit() || *c == '.'))
        .map_or(0, |(i, c)| i + c.len_utf8());
    s[start..].parse().ok()
}

impl ProgressParser for PercentLines {
    fn feed(&mut self, chunk: &[u8]) -> Option<Progress> {
        let mut latest = None;
        for piece in chunk.split_inclusive(|&b| b == b'\n' || b == b'\r') {
            let ended = matches!(piece.last(), Some(b'\n' | b'\r'));
            let body = if ended {
                &piece[..piece.len() - 1]
            } else {
                piece
            };
            if !self.overflow {
                self.carry.extend_from_slice(body);
                if self.carry.len() > MAX_LINE_BYTES {
                    self.carry.clear();
                    self.overflow = true;
                }
            }
            if ended {
                if !self.overflow {
                    let line = std::mem::take(&mut self.carry);
                    if let Some(found) = self.on_line(&line) {
                        latest = Some(found);
                    }
                    self.carry = line;
                    self.carry.clear();
                }
                self.overflow = false;
            }
        }
        let (percent, eta_sec) = latest?;
        self.best = self.best.max(percent);
        let now = Progress {
            percent: self.best,
            eta_sec,
            phase: None,
        };
        report_if_forward(&mut self.reported, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn percents(chunks: &[&str]) -> Vec<f64> {
        let mut p = PercentLines::new();
        chunks
            .iter()
            .filter_map(|c| p.feed(c.as_bytes()))
            .map(|p| p.percent)
            .collect()
    }

    /// Found by the property test: a multi-byte character before the end of a line was cut
    /// in half when looking for a trailing number (a panic in the worker on non-ASCII output).
    #[test]
    fn a_line_ending_in_a_multi_byte_character_is_no_number_and_no_panic() {
        assert_eq!(trailing_number("À"), None);
        assert_eq!(trailing_number("}х"), None);
        assert_eq!(trailing_number("ñ42"), Some(42.0));
        assert!(percents(&["À\n", "progress 5 х\n"]).len() <= 1);
    }

    #[test]
    fn progress_words_and_percent_signs_are_both_understood() {
        assert_eq!(
            percents(&[
                "progress 10\n",
                "PROGRESS: 20.5\n",
                "scanning 42 % done\n",
                "50%\r"
            ]),
            [10.0, 20.5, 42.0, 50.0]
        );
    }

    #[test]
    fn lines_split_across_chunks_are_joined() {
        assert_eq!(percents(&["prog", "ress 3", "3.5 eta 12\n"]), [33.5]);
        let mut p = PercentLines::new();
        let got = p.feed(b"progress 5 eta=7s\n").expect("progress");
        assert_eq!(got.eta_sec, Some(7));
    }

    #[test]
    fn backwards_and_out_of_range_values_are_not_reported() {
        assert_eq!(
            percents(&["60%\n", "40%\n", "progress 250\n", "hello\n", "61%\n"]),
            [60.0, 61.0]
        );
    }

    #[test]
    fn overlong_lines_are_dropped_and_the_next_line_still_counts() {
        let long = "9".repeat(MAX_LINE_BYTES * 3);
        let mut p = PercentLines::new();
        assert_eq!(p.feed(long.as_bytes()), None);
        assert!(p.carry.len() <= MAX_LINE_BYTES);
        assert_eq!(p.feed(b"%\nprogress 7\n").map(|p| p.percent), Some(7.0));
    }
}
