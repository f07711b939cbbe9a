//! The REST client: one base URL and bearer token, typed calls over the shared document types
//! (`JobDocument`, `JobSummary`, `JobList`, `CancelReply`, `SubmitBody`; JSON for the rest),
//! refusals turned into [`Failure::Refused`] with the server's problem document, and the job
//! event stream (SSE).

use futures::StreamExt;
use reqwest::Method;
use scanq::domain::{CancelReply, JobDocument, JobList, JobSummary};
use scanq::request::SubmitBody;
use serde_json::Value;

/// Why a command did not succeed; each maps to one exit code (see `main`).
#[derive(Debug)]
pub enum Failure {
    /// The server refused the request (exit 3): its status and problem document.
    Refused { status: u16, problem: Value },
    /// The job ended other than `succeeded` (exit 4).
    JobFailed(Value),
    /// The server could not be reached, or answered something unreadable (exit 1).
    Other(String),
}

impl From<reqwest::Error> for Failure {
    fn from(e: reqwest::Error) -> Self {
        Self::Other(format!("cannot talk to the scanq API: {e}"))
    }
}

pub struct Api {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Api {
    pub fn new(url: &str, token: Option<String>) -> Result<Self, Failure> {
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .build()?;
        Ok(Self {
            base: url.trim_end_matches('/').to_owned(),
            token: token.filter(|t| !t.is_empty()),
            http,
        })
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let req = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    /// Sends a request and reads a JSON answer; any status ≥ 400 is a refusal.
    pub async fn json(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, Failure> {
        let mut req = self.request(method, path);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let text = resp.text().await?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if status >= 400 {
            return Err(Failure::Refused {
                status,
                problem: value,
            });
        }
        Ok(value)
    }

    /// A request whose answer is one of the shared document types.
    async fn typed<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<T, Failure> {
        let v = self.json(method, path, body).await?;
        serde_json::from_value(v)
            .map_err(|e| Failure::Other(format!("unreadable answer from {path}: {e}")))
    }

    /// `POST /v1/jobs`.
    pub async fn submit(&self, body: &SubmitBody) -> Result<JobDocument, Failure> {
        let body = serde_json::to_value(body).expect("a body is JSON");
        self.typed(Method::POST, "/v1/jobs", Some(&body)).await
    }

    /// `GET /v1/jobs/{id}`.
    pub async fn job(&self, id: &str) -> Result<JobDocument, Failure> {
        self.typed(Method::GET, &format!("/v1/jobs/{}", urlencode(id)), None)
            .await
    }

    /// `GET /v1/jobs/{id}?view=summary`: the job without its result.
    pub async fn job_summary(&self, id: &str) -> Result<JobSummary, Failure> {
        let path = format!("/v1/jobs/{}?view=summary", urlencode(id));
        self.typed(Method::GET, &path, None).await
    }

    /// `GET /v1/jobs/{id}?view=summary` with `If-None-Match: tag`: `None` when the job is
    /// unchanged (304), else its summary and its new tag.
    pub async fn summary_if_changed(
        &self,
        id: &str,
        tag: Option<&str>,
    ) -> Result<Option<(Value, Option<String>)>, Failure> {
        let mut req = self.request(
            Method::GET,
            &format!("/v1/jobs/{}?view=summary", urlencode(id)),
        );
        if let Some(t) = tag {
            req = req.header("if-none-match", t);
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        if status == 304 {
            return Ok(None);
        }
        let etag = resp
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = resp.text().await?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if status >= 400 {
            return Err(Failure::Refused {
                status,
                problem: value,
            });
        }
        Ok(Some((value, etag)))
    }

    /// `GET /v1/jobs?…`: one page of summaries.
    pub async fn jobs(&self, query: &[(&str, Option<String>)]) -> Result<JobList, Failure> {
        let q: Vec<String> = query
            .iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", urlencode(v))))
            .collect();
        self.typed(Method::GET, &format!("/v1/jobs?{}", q.join("&")), None)
            .await
    }

    /// `DELETE /v1/jobs/{id}`.
    pub async fn cancel(&self, id: &str) -> Result<CancelReply, Failure> {
        self.typed(Method::DELETE, &format!("/v1/jobs/{}", urlencode(id)), None)
            .await
    }

    /// `POST /v1/jobs/{id}/retry`.
    pub async fn retry(&self, id: &str) -> Result<JobDocument, Failure> {
        let path = format!("/v1/jobs/{}/retry", urlencode(id));
        self.typed(Method::POST, &path, None).await
    }

    /// `POST /v1/jobs/{id}/approve` or `/reject` (`action`), with the reason if any.
    pub async fn decide(
        &self,
        id: &str,
        action: &str,
        reason: Option<&str>,
    ) -> Result<JobDocument, Failure> {
        let path = format!("/v1/jobs/{}/{action}", urlencode(id));
        let body = reason.map(|r| serde_json::json!({ "reason": r }));
        self.typed(Method::POST, &path, body.as_ref()).await
    }

    pub async fn get(&self, path: &str) -> Result<Value, Failure> {
        self.json(Method::GET, path, None).await
    }

    /// Follows a job's event stream until `done`, calling `on_event(kind, data)` for each
    /// event; returns the final job document (the data of `done`).
    pub async fn follow(
        &self,
        id: &str,
        mut on_event: impl FnMut(&str, &Value),
    ) -> Result<Value, Failure> {
        let resp = self
            .request(Method::GET, &format!("/v1/jobs/{id}/events"))
            .header("accept", "text/event-stream")
            .send()
            .await?;
        let status = resp.status().as_u16();
        if status >= 400 {
            let text = resp.text().await?;
            return Err(Failure::Refused {
                status,
                problem: serde_json::from_str(&text).unwrap_or(Value::String(text)),
            });
        }
        let mut body = resp.bytes_stream();
        let mut buf = String::new();
        while let Some(chunk) = body.next().await {
            buf.push_str(&String::from_utf8_lossy(&chunk?));
            while let Some(end) = buf.find("\n\n") {
                let block: String = buf.drain(..end + 2).collect();
                let (kind, data) = parse_event(&block);
                let data: Value = serde_json::from_str(&data).unwrap_or(Value::String(data));
                if kind == "done" {
                    return Ok(data);
                }
                if !kind.is_empty() {
                    on_event(&kind, &data);
                }
            }
        }
        // The stream ended without `done` (the job expired meanwhile): read it once more.
        self.get(&format!("/v1/jobs/{id}")).await
    }
}

/// The `event:` name and joined `data:` lines of one SSE block (comments ignored).
fn parse_event(block: &str) -> (String, String) {
    let mut kind = String::new();
    let mut data: Vec<&str> = Vec::new();
    for line in block.lines() {
        if let Some(v) = line.strip_prefix("event:") {
            kind = v.trim().to_owned();
        } else if let Some(v) = line.strip_prefix("data:") {
            data.push(v.strip_prefix(' ').unwrap_or(v));
        }
    }
    (kind, data.join("\n"))
}

/// Percent-encodes a path segment or query value.
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_block_gives_its_name_and_data() {
        let (k, d) = parse_event("id: 3\nevent: progress\ndata: {\"percent\":5}\n\n");
        assert_eq!((k.as_str(), d.as_str()), ("progress", "{\"percent\":5}"));
        let (k, _) = parse_event(": keep-alive\n\n");
        assert!(k.is_empty());
    }
}
