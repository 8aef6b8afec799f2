//! An in-process fake registry speaking HTTP/1.1 over a tokio `TcpListener`, with knobs that
//! inject the faults real registries and networks produce: bearer challenges with scopes and
//! expiry, redirects to another origin, connection resets mid-body (GET and PATCH), corrupted
//! bytes, wrong `Docker-Content-Digest`, 429 with `Retry-After`, 5xx storms, HEAD answers
//! for blobs it does not have, bodies drip-fed a byte at a time, manifest PUTs refused with a
//! 500 (as distribution 2.8 refuses a manifest its configuration does not allow) and blobs
//! whose GET always fails with a 500. Request bodies may be chunked (streamed uploads); a
//! connection cut mid-body keeps what arrived in the upload (as a registry that follows the
//! spec does), and knobs refuse streamed uploads or bodies over a size (registries that want
//! chunks).
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use oci_distribution_client::{Algorithm, Digest};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Bearer auth served by the fake registry itself at `/token`.
#[derive(Debug, Clone)]
pub struct BearerAuth {
    /// Required Basic credentials at the token endpoint, if any.
    pub basic: Option<(String, String)>,
    /// `expires_in` given with tokens.
    pub expires_in: u64,
    /// OAuth2 refresh token accepted by `POST /token` (`grant_type=refresh_token`).
    pub refresh_token: Option<String>,
}

/// Fault knobs. Counters count down as faults are injected.
#[derive(Debug, Default)]
pub struct Faults {
    /// Bearer auth required for everything under /v2/.
    pub bearer: Option<BearerAuth>,
    /// Blob GETs answer 307 to this base URL (`http://host:port`) + `/raw/<digest>`.
    pub redirect_blobs_to: Option<String>,
    /// This many blob GETs are cut after a random number of body bytes.
    pub reset_blob_gets: u32,
    /// This many blob GETs send half the body, then stall (hold the connection, send nothing).
    pub stall_blob_gets: u32,
    /// This many PATCHes read a random part of the body, keep it, and drop the connection (a
    /// streamed one: after 1 byte to 1 MiB of its body).
    pub reset_patches: u32,
    /// A reset PATCH (see `reset_patches`) keeps exactly this many bytes of its body.
    pub reset_patch_at: Option<usize>,
    /// Upload requests without a length (streamed, chunked transfer encoding) are read and
    /// answered with this status, appending nothing: a registry that refuses streamed uploads.
    pub refuse_streamed_uploads: Option<u16>,
    /// Upload requests with a body longer than this are read and answered 413: a registry that
    /// caps chunks.
    pub max_request_body: Option<usize>,
    /// Serve blobs with one byte flipped.
    pub corrupt_blobs: bool,
    /// Answer manifest GET/HEAD with a wrong `Docker-Content-Digest`.
    pub wrong_manifest_digest: bool,
    /// This many requests answer 429 with `Retry-After: 1`.
    pub rate_limit: u32,
    /// This many requests answer 503.
    pub storm_503: u32,
    /// Blobs the registry claims but lost (digest -> size), like distribution with a stale
    /// blob-descriptor cache: HEAD 200 with the right headers, GET 200 then no bytes, a
    /// `Range` GET 206 with Content-Length 1 and nothing sent, mounts from them answer 201.
    pub phantom_blobs: HashMap<String, usize>,
    /// `OCI-Chunk-Min-Length` announced on upload start.
    pub chunk_min_length: Option<u64>,
    /// No referrers API (404), like distribution 2.8.
    pub no_referrers_api: bool,
    /// HEAD of manifests answers 405 (forces the GET fallback).
    pub refuse_manifest_head: bool,
    /// The token endpoint answers 307 to this base URL (`http://host:port`) + `/token?...`.
    pub redirect_token_to: Option<String>,
    /// Ranged blob GETs answer 206 from byte 0 whatever start was asked (the Content-Range
    /// says so), like a cache that mangles ranges.
    pub ranges_from_zero: bool,
    /// Upload PATCH and status answers claim `Range: 0-18446744073709551615`.
    pub absurd_upload_range: bool,
    /// `Link` of tag pages points to this base URL (`http://host:port`) instead of this origin.
    pub tags_link_to: Option<String>,
    /// The `Link` of tag pages points back to the first page.
    pub tags_link_loop: bool,
    /// Blob GETs ignore `Range` and answer 200 with the whole blob.
    pub ignore_ranges: bool,
    /// Challenges name this base URL (`http://host:port`) + `/token` as realm, not this origin.
    pub realm_base: Option<String>,
    /// Blob GET bodies are sent one byte every this long (a registry that drip-feeds: the
    /// read timeout never fires).
    pub drip_blob_gets: Option<Duration>,
    /// Manifest GET bodies are sent one byte every this long.
    pub drip_manifests: Option<Duration>,
    /// Every mount answers 201 without linking anything: the registry claims mounts it did
    /// not make (the blob stays unknown in the target repository).
    pub lying_mounts: bool,
    /// A mount whose `from` is the repository itself gets this error status (a registry that
    /// refuses such mounts).
    pub refuse_mount_from_self: Option<u16>,
    /// Every manifest PUT gets this answer (status, `Content-Type`, body) and stores nothing:
    /// distribution 2.8 answers 500 with a JSON error to a manifest it refuses on validation
    /// (layer `urls` its configuration does not allow). See [`Faults::refuse_manifest_puts`].
    pub manifest_put_answer: Option<(u16, String, Vec<u8>)>,
    /// Blobs (by digest) whose GET always answers 500 with a JSON error.
    pub failing_blob_gets: std::collections::HashSet<String>,
    /// A blob GET whose `Range` starts at or past the blob's end answers 416, as distribution
    /// does (otherwise: 200 with the whole blob).
    pub answer_416: bool,
}

impl Faults {
    /// Manifest PUTs answered `status` with the registry error JSON `{"errors":[{"code",
    /// "message"}]}` (see [`Faults::manifest_put_answer`]).
    pub fn refuse_manifest_puts(status: u16, code: &str, message: &str) -> Faults {
        let body = serde_json::json!({"errors": [{"code": code, "message": message}]});
        Faults {
            manifest_put_answer: Some((
                status,
                "application/json".to_owned(),
                serde_json::to_vec(&body).unwrap_or_default(),
            )),
            ..Faults::default()
        }
    }
}

/// One request as seen by the server.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Method.
    pub method: String,
    /// Path with query.
    pub target: String,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
    /// The `Range` or `Content-Range` header.
    pub range: Option<String>,
    /// Body length received.
    pub body_len: usize,
    /// The body came in chunked transfer encoding (a streamed upload).
    pub streamed: bool,
}

#[derive(Default)]
pub struct State {
    pub faults: Faults,
    pub blobs: HashMap<String, Vec<u8>>,
    /// (repository, digest) links; repository `*` links a blob everywhere.
    pub links: std::collections::HashSet<(String, String)>,
    /// (repo, reference) -> (content type, bytes).
    pub manifests: HashMap<(String, String), (String, Vec<u8>)>,
    pub uploads: HashMap<String, (String, Vec<u8>)>,
    /// token -> (scopes, expiry).
    pub tokens: HashMap<String, (Vec<String>, Instant)>,
    /// Scope strings asked for at the token endpoint, per request.
    pub token_requests: Vec<Vec<String>>,
    pub seen: Vec<Seen>,
    next_id: u64,
}

/// A running fake registry.
pub struct FakeRegistry {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// Shared state for setup and assertions.
    pub state: Arc<Mutex<State>>,
    /// Request body bytes read so far, counted as they arrive (also of requests in flight).
    pub received: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeRegistry {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeRegistry {
    /// Starts on a free loopback port.
    pub async fn start(faults: Faults) -> FakeRegistry {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let state = Arc::new(Mutex::new(State {
            faults,
            ..State::default()
        }));
        let st = state.clone();
        let a = addr.clone();
        let received = Arc::new(AtomicU64::new(0));
        let counter = received.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    continue;
                };
                let st = st.clone();
                let a = a.clone();
                let counter = counter.clone();
                tokio::spawn(async move {
                    let _ = serve_conn(Conn { sock, counter }, st, a).await;
                });
            }
        });
        FakeRegistry {
            addr,
            state,
            received,
            task,
        }
    }

    /// Locks the state.
    pub fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Stores a blob directly.
    pub fn put_blob(&self, data: &[u8]) -> Digest {
        let d = Algorithm::Sha256.hash(data);
        let mut s = self.state();
        s.blobs.insert(d.to_string(), data.to_vec());
        s.links.insert(("*".into(), d.to_string()));
        d
    }

    /// Stores a manifest under a tag and its digest.
    pub fn put_manifest(&self, repo: &str, tag: &str, media_type: &str, data: &[u8]) -> Digest {
        let d = Algorithm::Sha256.hash(data);
        let mut s = self.state();
        for r in [tag.to_owned(), d.to_string()] {
            s.manifests
                .insert((repo.to_owned(), r), (media_type.to_owned(), data.to_vec()));
        }
        d
    }

    /// Requests seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.state().seen.clone()
    }
}

struct Request {
    method: String,
    target: String,
    headers: HashMap<String, String>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
    fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }
    fn query(&self, key: &str) -> Option<String> {
        let q = self.target.split_once('?')?.1;
        q.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k == key).then(|| percent_decode(v))
        })
    }
    fn queries(&self, key: &str) -> Vec<String> {
        let Some((_, q)) = self.target.split_once('?') else {
            return vec![];
        };
        q.split('&')
            .filter_map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                (k == key).then(|| percent_decode(v))
            })
            .collect()
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What to send back.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Send only this many body bytes (Content-Length stays full), then close.
    cut_at: Option<usize>,
    /// HEAD: send headers only.
    head: bool,
    /// Stall after `cut_at` bytes instead of closing.
    stall: bool,
    /// Send the body one byte every this long.
    drip: Option<Duration>,
}

impl Answer {
    fn new(status: u16) -> Answer {
        Answer {
            status,
            headers: vec![],
            body: vec![],
            cut_at: None,
            head: false,
            stall: false,
            drip: None,
        }
    }
    fn header(mut self, k: &str, v: impl Into<String>) -> Answer {
        self.headers.push((k.to_owned(), v.into()));
        self
    }
    fn body(mut self, b: Vec<u8>) -> Answer {
        self.body = b;
        self
    }
    fn error(status: u16, code: &str, message: &str) -> Answer {
        Answer::new(status)
            .header("Content-Type", "application/json")
            .body(
                format!(
                    r#"{{"errors":[{{"code":"{code}","message":"{message}","detail":null}}]}}"#
                )
                .into_bytes(),
            )
    }
}

async fn read_head(sock: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(Request, Vec<u8>)> {
    loop {
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..pos]).into_owned();
            let rest = buf[pos + 4..].to_vec();
            let mut lines = head.split("\r\n");
            let first = lines.next()?;
            let mut parts = first.split_whitespace();
            let method = parts.next()?.to_owned();
            let target = parts.next()?.to_owned();
            let headers = lines
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
                .collect();
            return Some((
                Request {
                    method,
                    target,
                    headers,
                },
                rest,
            ));
        }
        let mut tmp = [0u8; 8192];
        let n = sock.read(&mut tmp).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&tmp[..n]);
    }
}

/// A connection, and the server's count of body bytes received.
struct Conn {
    sock: TcpStream,
    counter: Arc<AtomicU64>,
}

impl Conn {
    /// Reads body bytes into `buf`, counting them.
    async fn read_body(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.sock.read(buf).await?;
        self.counter.fetch_add(n as u64, Ordering::SeqCst);
        Ok(n)
    }
}

async fn serve_conn(mut conn: Conn, st: Arc<Mutex<State>>, addr: String) -> std::io::Result<()> {
    let mut buf = Vec::new();
    loop {
        let sock = &mut conn.sock;
        let Some((req, rest)) = read_head(sock, &mut buf).await else {
            return Ok(());
        };
        let chunked = req
            .header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
        let len: usize = req
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        // PATCH reset: keep a random part of the body, then drop the connection.
        let reset_patch = req.method == "PATCH" && (len > 1 || chunked) && {
            let mut s = lock(&st);
            if s.faults.reset_patches > 0 {
                s.faults.reset_patches -= 1;
                true
            } else {
                false
            }
        };
        let at = lock(&st).faults.reset_patch_at;
        let take = match (reset_patch, chunked, at) {
            (true, _, Some(at)) => Some(at),
            (true, false, None) => Some(fastrand::usize(1..len)),
            (true, true, None) => Some(fastrand::usize(1..=1 << 20)),
            (false, ..) => None,
        };
        conn.counter.fetch_add(rest.len() as u64, Ordering::SeqCst);
        let (mut body, extra, complete) = if chunked {
            read_chunked(&mut conn, rest, take).await?
        } else {
            read_sized(&mut conn, rest, len, take).await?
        };
        let sock = &mut conn.sock;
        if reset_patch || !complete {
            // Cut short (by us, or by the client): keep what arrived, as a registry that follows
            // the spec does, and close (RST rather than an orderly close when we cut it).
            if let Some(t) = take {
                body.truncate(t);
            }
            let id = req.path().rsplit('/').next().unwrap_or("").to_owned();
            let mut s = lock(&st);
            record(&mut s, &req, body.len(), chunked);
            if req.method == "PATCH"
                && let Some((_, data)) = s.uploads.get_mut(&id)
            {
                data.extend_from_slice(&body);
            }
            drop(s);
            if reset_patch {
                let _ = sock.set_zero_linger();
            }
            return Ok(());
        }
        let answer = {
            let mut s = lock(&st);
            record(&mut s, &req, body.len(), chunked);
            handle(&mut s, &req, body, chunked, &addr)
        };
        write_answer(sock, &answer, req.method == "HEAD").await?;
        if answer.stall {
            tokio::time::sleep(Duration::from_secs(30)).await;
            return Ok(());
        }
        if answer.cut_at.is_some() {
            let _ = sock.set_zero_linger();
            return Ok(());
        }
        buf = extra;
    }
}

/// Reads a body of `len` bytes after `rest` (what followed the head). Returns the body, the
/// bytes after it, and whether it is complete (the client may close early). With `cut`, stops
/// once that many bytes arrived.
async fn read_sized(
    sock: &mut Conn,
    rest: Vec<u8>,
    len: usize,
    cut: Option<usize>,
) -> std::io::Result<(Vec<u8>, Vec<u8>, bool)> {
    let want = cut.unwrap_or(len);
    let mut body = rest;
    while body.len() < want {
        let mut tmp = vec![0u8; 64 * 1024];
        let n = sock.read_body(&mut tmp).await?;
        if n == 0 {
            return Ok((body, Vec::new(), false));
        }
        body.extend_from_slice(&tmp[..n]);
    }
    let extra = if body.len() > len {
        body.split_off(len)
    } else {
        Vec::new()
    };
    Ok((body, extra, true))
}

/// Reads a chunked body after `rest`. Returns the decoded body, the bytes after it, and whether
/// it ended with its last chunk (a client that stops or dies mid-body leaves it incomplete).
/// With `cut`, stops once that many body bytes arrived.
async fn read_chunked(
    sock: &mut Conn,
    rest: Vec<u8>,
    cut: Option<usize>,
) -> std::io::Result<(Vec<u8>, Vec<u8>, bool)> {
    let mut raw = rest;
    let mut pos = 0;
    let mut body = Vec::new();
    loop {
        if cut.is_some_and(|c| body.len() >= c) {
            return Ok((body, Vec::new(), false));
        }
        // The size line.
        let line_end = loop {
            if let Some(i) = raw[pos..].windows(2).position(|w| w == b"\r\n") {
                break pos + i;
            }
            if !fill(sock, &mut raw).await? {
                return Ok((body, Vec::new(), false));
            }
        };
        let line = String::from_utf8_lossy(&raw[pos..line_end]).into_owned();
        let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| std::io::Error::other(format!("bad chunk size line {line:?}")))?;
        pos = line_end + 2;
        if size == 0 {
            // Trailers (none expected) up to the empty line.
            loop {
                if let Some(i) = raw[pos..].windows(2).position(|w| w == b"\r\n") {
                    let empty = i == 0;
                    pos += i + 2;
                    if empty {
                        return Ok((body, raw.split_off(pos), true));
                    }
                    continue;
                }
                if !fill(sock, &mut raw).await? {
                    return Ok((body, Vec::new(), false));
                }
            }
        }
        // The chunk's data and its CRLF; what arrives is body as it comes.
        let mut left = size;
        while left > 0 {
            if pos == raw.len() {
                raw.clear();
                pos = 0;
                if !fill(sock, &mut raw).await? {
                    return Ok((body, Vec::new(), false));
                }
            }
            let n = left.min(raw.len() - pos);
            body.extend_from_slice(&raw[pos..pos + n]);
            pos += n;
            left -= n;
            if cut.is_some_and(|c| body.len() >= c) {
                return Ok((body, Vec::new(), false));
            }
        }
        while raw.len() < pos + 2 {
            if !fill(sock, &mut raw).await? {
                return Ok((body, Vec::new(), false));
            }
        }
        pos += 2;
        // Keep the buffer small: drop what was consumed.
        raw.drain(..pos);
        pos = 0;
    }
}

/// Reads more bytes into `raw`; `false` at the end of the connection.
async fn fill(sock: &mut Conn, raw: &mut Vec<u8>) -> std::io::Result<bool> {
    let mut tmp = vec![0u8; 64 * 1024];
    // A connection reset counts as its end.
    let n: usize = sock.read_body(&mut tmp).await.unwrap_or_default();
    raw.extend_from_slice(&tmp[..n]);
    Ok(n > 0)
}

fn lock(st: &Arc<Mutex<State>>) -> std::sync::MutexGuard<'_, State> {
    st.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn record(s: &mut State, req: &Request, body_len: usize, streamed: bool) {
    s.seen.push(Seen {
        streamed,
        method: req.method.clone(),
        target: req.target.clone(),
        authorization: req.header("authorization").map(str::to_owned),
        range: req
            .header("range")
            .or(req.header("content-range"))
            .map(str::to_owned),
        body_len,
    });
}

async fn write_answer(sock: &mut TcpStream, a: &Answer, head: bool) -> std::io::Result<()> {
    let reason = match a.status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        307 => "Temporary Redirect",
        401 => "Unauthorized",
        404 => "Not Found",
        416 => "Range Not Satisfiable",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    };
    let mut h = format!("HTTP/1.1 {} {reason}\r\n", a.status);
    let has_len = a
        .headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-length"));
    for (k, v) in &a.headers {
        h.push_str(&format!("{k}: {v}\r\n"));
    }
    if !has_len {
        h.push_str(&format!("Content-Length: {}\r\n", a.body.len()));
    }
    h.push_str("\r\n");
    sock.write_all(h.as_bytes()).await?;
    if !head && !a.head {
        let n = a.cut_at.unwrap_or(a.body.len()).min(a.body.len());
        match a.drip {
            Some(every) => {
                for b in &a.body[..n] {
                    sock.write_all(&[*b]).await?;
                    sock.flush().await?;
                    tokio::time::sleep(every).await;
                }
            }
            None => sock.write_all(&a.body[..n]).await?,
        }
    }
    sock.flush().await
}

fn required_scopes(req: &Request) -> Option<Vec<String>> {
    let p = req.path().strip_prefix("/v2/")?;
    if p.is_empty() {
        return Some(vec![]);
    }
    if p.starts_with("_catalog") {
        return Some(vec!["registry:catalog:*".into()]);
    }
    let idx = ["/blobs/", "/manifests/", "/tags/", "/referrers/"]
        .iter()
        .filter_map(|m| p.find(m))
        .min()?;
    let name = &p[..idx];
    let action = match req.method.as_str() {
        "GET" | "HEAD" => "pull",
        "DELETE" => "delete",
        _ => "push",
    };
    let mut v = vec![format!("repository:{name}:{action}")];
    if let Some(from) = req.query("from") {
        v.push(format!("repository:{from}:pull"));
    }
    Some(v)
}

fn covers(granted: &[String], needed: &str) -> bool {
    let (res, action) = needed.rsplit_once(':').unwrap_or((needed, ""));
    granted.iter().any(|g| {
        g.rsplit_once(':')
            .is_some_and(|(r, acts)| r == res && acts.split(',').any(|a| a == action || a == "*"))
    })
}

fn handle(s: &mut State, req: &Request, body: Vec<u8>, chunked: bool, addr: &str) -> Answer {
    if s.faults.storm_503 > 0 {
        s.faults.storm_503 -= 1;
        return Answer::error(503, "UNAVAILABLE", "storm");
    }
    if s.faults.rate_limit > 0 {
        s.faults.rate_limit -= 1;
        return Answer::error(429, "TOOMANYREQUESTS", "slow down").header("Retry-After", "1");
    }
    let path = req.path().to_owned();
    if let Some(d) = path.strip_prefix("/raw/") {
        // Object storage honours Range, as S3 does.
        return match s.blobs.get(d) {
            Some(b) => match req.header("range").and_then(|r| parse_range(r, b.len())) {
                Some((a, z)) => Answer::new(206)
                    .header("Content-Range", format!("bytes {a}-{z}/{}", b.len()))
                    .body(b[a..=z].to_vec()),
                None => Answer::new(200).body(b.clone()),
            },
            None => Answer::error(404, "BLOB_UNKNOWN", "no"),
        };
    }
    if path == "/token" {
        if let Some(base) = &s.faults.redirect_token_to {
            return Answer::new(307).header("Location", format!("{base}{}", req.target));
        }
        return token(s, req, &body);
    }
    // Auth.
    if let Some(b) = &s.faults.bearer {
        let _ = b;
        let needed = required_scopes(req).unwrap_or_default();
        let granted = req
            .header("authorization")
            .and_then(|a| a.strip_prefix("Bearer "))
            .and_then(|t| s.tokens.get(t))
            .filter(|(_, exp)| *exp > Instant::now())
            .map(|(sc, _)| sc.clone());
        let ok = match &granted {
            Some(g) => needed.iter().all(|n| covers(g, n)),
            None => false,
        };
        if !ok {
            let scope = needed.join(" ");
            let base = s
                .faults
                .realm_base
                .clone()
                .unwrap_or_else(|| format!("http://{addr}"));
            let mut c = format!(r#"Bearer realm="{base}/token",service="fake-registry""#);
            if !scope.is_empty() {
                c.push_str(&format!(r#",scope="{scope}""#));
            }
            return Answer::error(401, "UNAUTHORIZED", "authentication required")
                .header("WWW-Authenticate", c);
        }
    }
    let Some(p) = path.strip_prefix("/v2/") else {
        return Answer::error(404, "NOT_FOUND", "no route");
    };
    if p.is_empty() {
        return Answer::new(200).body(b"{}".to_vec());
    }
    if let Some(i) = p.find("/blobs/uploads") {
        return uploads(
            s,
            req,
            &p[..i],
            &p[i + "/blobs/uploads".len()..],
            (body, chunked),
            addr,
        );
    }
    if let Some(i) = p.find("/blobs/") {
        let name = p[..i].to_owned();
        return blobs(s, req, &name, &p[i + 7..]);
    }
    if let Some(i) = p.find("/manifests/") {
        let name = p[..i].to_owned();
        return manifests(s, req, &name, &p[i + 11..], body);
    }
    if let Some(i) = p.find("/referrers/") {
        if s.faults.no_referrers_api {
            return Answer::error(404, "NOT_FOUND", "no referrers API");
        }
        let _ = i;
        return Answer::new(200)
            .header("Content-Type", "application/vnd.oci.image.index.v1+json")
            .body(br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#.to_vec());
    }
    if let Some(i) = p.find("/tags/list") {
        let name = &p[..i];
        let mut tags: Vec<String> = s
            .manifests
            .keys()
            .filter(|(r, t)| r == name && !t.contains(':'))
            .map(|(_, t)| t.clone())
            .collect();
        tags.sort();
        let n: usize = req.query("n").and_then(|v| v.parse().ok()).unwrap_or(1000);
        let last = req.query("last");
        let start = match &last {
            Some(l) => tags.iter().position(|t| t > l).unwrap_or(tags.len()),
            None => 0,
        };
        let page: Vec<String> = tags[start..].iter().take(n).cloned().collect();
        let mut a = Answer::new(200)
            .header("Content-Type", "application/json")
            .body(
                serde_json::to_vec(&serde_json::json!({"name": name, "tags": page}))
                    .unwrap_or_default(),
            );
        if start + page.len() < tags.len()
            && let Some(l) = page.last()
        {
            let base = s.faults.tags_link_to.clone().unwrap_or_default();
            let last = if s.faults.tags_link_loop {
                String::new()
            } else {
                format!("&last={l}")
            };
            a = a.header(
                "Link",
                format!("<{base}/v2/{name}/tags/list?n={n}{last}>; rel=\"next\""),
            );
        }
        return a;
    }
    Answer::error(404, "NOT_FOUND", "no route")
}

fn token(s: &mut State, req: &Request, body: &[u8]) -> Answer {
    let Some(b) = s.faults.bearer.clone() else {
        return Answer::error(404, "NOT_FOUND", "no token service");
    };
    let mut scopes = req.queries("scope");
    if req.method == "POST" {
        // OAuth2: a form with grant_type=refresh_token, refresh_token, service, scope.
        let form = Request {
            method: String::new(),
            target: format!("/?{}", String::from_utf8_lossy(body)),
            headers: HashMap::new(),
        };
        if form.query("grant_type").as_deref() != Some("refresh_token")
            || form.query("refresh_token") != b.refresh_token
            || b.refresh_token.is_none()
        {
            return Answer::error(401, "UNAUTHORIZED", "bad refresh token");
        }
        scopes = form
            .query("scope")
            .map(|s| s.split(' ').map(str::to_owned).collect())
            .unwrap_or_default();
    } else if let Some((u, p)) = &b.basic {
        use base64::Engine as _;
        let want = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
        );
        if req.header("authorization") != Some(want.as_str()) {
            return Answer::error(401, "UNAUTHORIZED", "bad credentials");
        }
    }
    s.token_requests.push(scopes.clone());
    s.next_id += 1;
    let tok = format!("tok-{}", s.next_id);
    s.tokens.insert(
        tok.clone(),
        (
            scopes,
            Instant::now()
                .checked_add(Duration::from_secs(b.expires_in))
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(365 * 24 * 3600)),
        ),
    );
    Answer::new(200)
        .header("Content-Type", "application/json")
        .body(
            serde_json::to_vec(&serde_json::json!({"token": tok, "expires_in": b.expires_in}))
                .unwrap_or_default(),
        )
}

fn parse_range(v: &str, size: usize) -> Option<(usize, usize)> {
    let v = v.strip_prefix("bytes=")?;
    let (a, b) = v.split_once('-')?;
    let a: usize = a.parse().ok()?;
    let b: usize = if b.is_empty() {
        size.checked_sub(1)?
    } else {
        b.parse().ok()?
    };
    (a <= b && b < size).then_some((a, b))
}

fn linked(s: &State, name: &str, digest: &str) -> bool {
    s.links.contains(&(name.to_owned(), digest.to_owned()))
        || s.links.contains(&("*".to_owned(), digest.to_owned()))
}

fn blobs(s: &mut State, req: &Request, name: &str, digest: &str) -> Answer {
    if req.method == "GET" && s.faults.failing_blob_gets.contains(digest) {
        return Answer::error(500, "UNKNOWN", "storage driver failed to read the blob");
    }
    let Some(data) = s
        .blobs
        .get(digest)
        .filter(|_| linked(s, name, digest))
        .cloned()
    else {
        if let Some(&size) = s.faults.phantom_blobs.get(digest) {
            let ranged = req.header("range").is_some();
            let mut a = Answer::new(if ranged && req.method == "GET" {
                206
            } else {
                200
            })
            .header("Docker-Content-Digest", digest)
            .header("Content-Type", "application/octet-stream")
            .header(
                "Content-Length",
                if ranged {
                    "1".to_owned()
                } else {
                    size.to_string()
                },
            );
            a.head = req.method == "HEAD";
            a.cut_at = (req.method == "GET").then_some(0);
            return a;
        }
        if req.method == "DELETE" {
            return Answer::error(404, "BLOB_UNKNOWN", "blob unknown");
        }
        return Answer::error(404, "BLOB_UNKNOWN", "blob unknown to registry");
    };
    match req.method.as_str() {
        "HEAD" => {
            let mut a = Answer::new(200)
                .header("Docker-Content-Digest", digest)
                .header("Content-Length", data.len().to_string());
            a.head = true;
            a
        }
        "DELETE" => {
            s.blobs.remove(digest);
            Answer::new(202)
        }
        "GET" => {
            if let Some(base) = &s.faults.redirect_blobs_to {
                return Answer::new(307).header("Location", format!("{base}/raw/{digest}"));
            }
            let past_end = req
                .header("range")
                .and_then(|r| r.strip_prefix("bytes="))
                .and_then(|r| r.split_once('-'))
                .and_then(|(a, _)| a.parse::<usize>().ok())
                .is_some_and(|a| a >= data.len());
            if s.faults.answer_416 && past_end {
                return Answer::new(416).header("Content-Range", format!("bytes */{}", data.len()));
            }
            let mut body = data.clone();
            if s.faults.corrupt_blobs && !body.is_empty() {
                let i = body.len() / 2;
                body[i] ^= 0xff;
            }
            let (status, body, range) = match req
                .header("range")
                .filter(|_| !s.faults.ignore_ranges)
                .and_then(|r| parse_range(r, data.len()))
            {
                Some((a, b)) => {
                    let a = if s.faults.ranges_from_zero { 0 } else { a };
                    (
                        206,
                        body[a..=b].to_vec(),
                        Some(format!("bytes {a}-{b}/{}", data.len())),
                    )
                }
                None => (200, body, None),
            };
            let mut ans = Answer::new(status)
                .header("Docker-Content-Digest", digest)
                .header("Content-Type", "application/octet-stream");
            if let Some(r) = range {
                ans = ans.header("Content-Range", r);
            }
            let mut ans = ans.body(body);
            ans.drip = s.faults.drip_blob_gets;
            if s.faults.stall_blob_gets > 0 && ans.body.len() > 1 {
                s.faults.stall_blob_gets -= 1;
                ans.cut_at = Some(ans.body.len() / 2);
                ans.stall = true;
            } else if s.faults.reset_blob_gets > 0 && ans.body.len() > 1 {
                s.faults.reset_blob_gets -= 1;
                ans.cut_at = Some(fastrand::usize(1..ans.body.len()));
            }
            ans
        }
        _ => Answer::error(405, "UNSUPPORTED", "method"),
    }
}

fn upload_range(absurd: bool, len: usize) -> String {
    if absurd {
        format!("0-{}", u64::MAX)
    } else {
        format!("0-{}", len.saturating_sub(1))
    }
}

fn uploads(
    s: &mut State,
    req: &Request,
    name: &str,
    rest: &str,
    (body, chunked): (Vec<u8>, bool),
    _addr: &str,
) -> Answer {
    let id = rest.trim_start_matches('/').to_owned();
    if matches!(req.method.as_str(), "PATCH" | "PUT") && !id.is_empty() {
        if let Some(status) = s.faults.refuse_streamed_uploads
            && chunked
        {
            return Answer::error(status, "SIZE_INVALID", "streamed uploads are not supported");
        }
        if let Some(max) = s.faults.max_request_body
            && body.len() > max
        {
            return Answer::error(413, "SIZE_INVALID", "request body too large");
        }
    }
    match (req.method.as_str(), id.is_empty()) {
        ("POST", true) => {
            if let (Some(status), Some(from)) = (s.faults.refuse_mount_from_self, req.query("from"))
                && from == name
            {
                return Answer::error(status, "UNSUPPORTED", "no mount from the repository itself");
            }
            if let Some(m) = req.query("mount")
                && s.faults.lying_mounts
            {
                return Answer::new(201)
                    .header("Location", format!("/v2/{name}/blobs/{m}"))
                    .header("Docker-Content-Digest", m);
            }
            if let (Some(m), Some(from)) = (req.query("mount"), req.query("from"))
                && ((s.blobs.contains_key(&m) && linked(s, &from, &m))
                    || s.faults.phantom_blobs.contains_key(&m))
            {
                s.links.insert((name.to_owned(), m.clone()));
                return Answer::new(201)
                    .header("Location", format!("/v2/{name}/blobs/{m}"))
                    .header("Docker-Content-Digest", m);
            }
            s.next_id += 1;
            let id = format!("u{}", s.next_id);
            s.uploads.insert(id.clone(), (name.to_owned(), Vec::new()));
            let mut a = Answer::new(202)
                .header(
                    "Location",
                    format!("/v2/{name}/blobs/uploads/{id}?_state=x"),
                )
                .header("Range", "0-0")
                .header("Docker-Upload-UUID", id);
            if let Some(m) = s.faults.chunk_min_length {
                a = a.header("OCI-Chunk-Min-Length", m.to_string());
            }
            a
        }
        ("PATCH", false) => {
            let Some((_, data)) = s.uploads.get_mut(&id) else {
                return Answer::error(404, "BLOB_UPLOAD_UNKNOWN", "upload unknown");
            };
            if let Some(cr) = req.header("content-range") {
                let start: usize = cr
                    .split('-')
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(usize::MAX);
                if start != data.len() {
                    return Answer::error(
                        416,
                        "BLOB_UPLOAD_INVALID",
                        "range does not continue the upload",
                    );
                }
            }
            data.extend_from_slice(&body);
            Answer::new(202)
                .header(
                    "Location",
                    format!("/v2/{name}/blobs/uploads/{id}?_state=y"),
                )
                .header(
                    "Range",
                    upload_range(s.faults.absurd_upload_range, data.len()),
                )
        }
        ("GET", false) => {
            let Some((_, data)) = s.uploads.get(&id) else {
                return Answer::error(404, "BLOB_UPLOAD_UNKNOWN", "upload unknown");
            };
            Answer::new(204)
                .header(
                    "Location",
                    format!("/v2/{name}/blobs/uploads/{id}?_state=z"),
                )
                .header(
                    "Range",
                    upload_range(s.faults.absurd_upload_range, data.len()),
                )
        }
        ("PUT", false) => {
            let Some((_, mut data)) = s.uploads.remove(&id) else {
                return Answer::error(404, "BLOB_UPLOAD_UNKNOWN", "upload unknown");
            };
            data.extend_from_slice(&body);
            let Some(want) = req.query("digest") else {
                return Answer::error(400, "DIGEST_INVALID", "no digest");
            };
            let got = Algorithm::Sha256.hash(&data);
            if got.as_str() != want {
                return Answer::error(400, "DIGEST_INVALID", "digest mismatch");
            }
            s.blobs.insert(want.clone(), data);
            s.links.insert((name.to_owned(), want.clone()));
            Answer::new(201)
                .header("Location", format!("/v2/{name}/blobs/{want}"))
                .header("Docker-Content-Digest", want)
        }
        ("DELETE", false) => {
            s.uploads.remove(&id);
            Answer::new(204)
        }
        _ => Answer::error(405, "UNSUPPORTED", "method"),
    }
}

fn manifests(s: &mut State, req: &Request, name: &str, reference: &str, body: Vec<u8>) -> Answer {
    let key = (name.to_owned(), reference.to_owned());
    match req.method.as_str() {
        "PUT" if s.faults.manifest_put_answer.is_some() => {
            let (status, ct, body) = s.faults.manifest_put_answer.clone().unwrap_or_default();
            Answer::new(status).header("Content-Type", ct).body(body)
        }
        "PUT" => {
            let ct = req.header("content-type").unwrap_or("").to_owned();
            let d = Algorithm::Sha256.hash(&body);
            s.manifests.insert(key, (ct.clone(), body.clone()));
            s.manifests
                .insert((name.to_owned(), d.to_string()), (ct, body));
            Answer::new(201).header("Docker-Content-Digest", d.to_string())
        }
        "GET" | "HEAD" => {
            if req.method == "HEAD" && s.faults.refuse_manifest_head {
                return Answer::error(405, "UNSUPPORTED", "no HEAD here");
            }
            let Some((ct, data)) = s.manifests.get(&key).cloned() else {
                return Answer::error(404, "MANIFEST_UNKNOWN", "manifest unknown");
            };
            let digest = if s.faults.wrong_manifest_digest {
                Algorithm::Sha256.hash(b"something else").to_string()
            } else {
                Algorithm::Sha256.hash(&data).to_string()
            };
            let mut a = Answer::new(200)
                .header("Content-Type", ct)
                .header("Docker-Content-Digest", digest)
                .header("Content-Length", data.len().to_string())
                .body(data);
            a.head = req.method == "HEAD";
            a.drip = s.faults.drip_manifests;
            a
        }
        "DELETE" => {
            let Some((_, data)) = s.manifests.get(&key).cloned() else {
                return Answer::error(404, "MANIFEST_UNKNOWN", "manifest unknown");
            };
            s.manifests
                .retain(|(r, _), (_, d)| !(r == name && *d == data));
            Answer::new(202)
        }
        _ => Answer::error(405, "UNSUPPORTED", "method"),
    }
}
