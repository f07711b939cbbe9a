//! Reading a tool's stdout and stderr: each pipe is drained by its own task, the first `cap`
//! bytes are kept (and copied to the optional live tap, in order), everything past the cap is
//! read and thrown away so the tool never blocks on a full pipe.

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

/// Which pipe a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// A piece of a tool's output, as it arrives. Only bytes within the cap are ever sent.
#[derive(Debug, Clone)]
pub struct OutputChunk {
    pub stream: Stream,
    pub data: Bytes,
}

/// What one pipe yielded.
#[derive(Debug, Default)]
pub(crate) struct Captured {
    pub(crate) data: Vec<u8>,
    pub(crate) truncated: bool,
    /// Reading stopped on `stop` before EOF (some process outside the group still holds the pipe).
    pub(crate) cut_short: bool,
}

const READ_BUF: usize = 64 * 1024;

/// Reads `reader` to EOF or until `stop` fires, whichever is first.
pub(crate) async fn pump<R: AsyncRead + Unpin>(
    mut reader: R,
    stream: Stream,
    cap: usize,
    tap: Option<UnboundedSender<OutputChunk>>,
    stop: CancellationToken,
) -> Captured {
    let mut captured = Captured::default();
    let mut buf = vec![0u8; READ_BUF];
    loop {
        let n = tokio::select! {
            biased;
            read = reader.read(&mut buf) => match read {
                Ok(0) => break,
                Ok(n) => n,
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(err) => {
                    tracing::warn!(?stream, error = %err, "Reading tool output failed");
                    break;
                }
            },
            () = stop.cancelled() => {
                captured.cut_short = true;
                break;
            }
        };
        let room = cap.saturating_sub(captured.data.len());
        let keep = n.min(room);
        if keep < n {
            captured.truncated = true;
        }
        if keep > 0 {
            captured.data.extend_from_slice(&buf[..keep]);
            if let Some(tap) = &tap {
                // A dropped receiver only means nobody is watching any more.
                let _ = tap.send(OutputChunk {
                    stream,
                    data: Bytes::copy_from_slice(&buf[..keep]),
                });
            }
        }
    }
    captured
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bytes_past_the_cap_are_read_and_dropped_and_the_flag_is_set() {
        let input = vec![7u8; 300_000];
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let got = pump(
            &input[..],
            Stream::Stdout,
            100_000,
            Some(tx),
            CancellationToken::new(),
        )
        .await;
        assert_eq!(got.data.len(), 100_000);
        assert!(got.truncated);
        assert!(!got.cut_short);
        let mut tapped = 0;
        while let Ok(chunk) = rx.try_recv() {
            assert_eq!(chunk.stream, Stream::Stdout);
            tapped += chunk.data.len();
        }
        assert_eq!(tapped, 100_000);
    }

    #[tokio::test]
    async fn output_within_the_cap_is_kept_whole() {
        let got = pump(
            &b"hello"[..],
            Stream::Stderr,
            5,
            None,
            CancellationToken::new(),
        )
        .await;
        assert_eq!(got.data, b"hello");
        assert!(!got.truncated);
    }
}
