//! Test harness: the real `docker-registry` (distribution 2.8.2, Debian package) on a free
//! 127.0.0.1 port with a temporary storage directory, killed and cleaned up on drop.
//!
//! Uses the standard library only, so other crates' tests can include it with
//! `#[path = "../../oci-distribution-client/tests/common/registry.rs"] mod registry;`.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// What to install when a tool is missing.
pub const INSTALL_HINT: &str = "apt-get install docker-registry skopeo umoci jq apache2-utils";

/// Options of a test registry.
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// Basic auth through an htpasswd file with this user and password.
    pub htpasswd: Option<(String, String)>,
    /// `storage.cache.blobdescriptor: inmemory` (the cache that goes stale after offline GC).
    pub blob_descriptor_cache: bool,
    /// Serve HTTPS with a certificate for 127.0.0.1 signed by a CA made for this registry
    /// (`openssl` CLI); the CA's PEM is in [`TestRegistry::ca_pem`].
    pub tls: bool,
}

/// A running `docker-registry serve`.
pub struct TestRegistry {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// Temporary directory holding config, storage and log.
    pub dir: PathBuf,
    /// The CA certificate (PEM) that signed the server certificate, with `tls`.
    pub ca_pem: Option<Vec<u8>>,
    child: Child,
}

/// Makes a CA and a server certificate for 127.0.0.1 in `dir`; returns (ca.pem, cert, key).
fn make_certs(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let openssl = require_tool("openssl");
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let p = |n: &str| dir.join(n).display().to_string();
    run(Command::new(&openssl)
        .args(["req", "-x509"])
        .args(ec)
        .args(["-keyout", &p("ca.key"), "-out", &p("ca.pem"), "-days", "2"])
        .args(["-subj", "/CN=odc-test-ca"]));
    run(Command::new(&openssl)
        .args(["req"])
        .args(ec)
        .args(["-keyout", &p("server.key"), "-out", &p("server.csr")])
        .args(["-subj", "/CN=127.0.0.1"]));
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .expect("write ext.cnf");
    run(Command::new(&openssl)
        .args(["x509", "-req", "-in", &p("server.csr"), "-CA", &p("ca.pem")])
        .args([
            "-CAkey",
            &p("ca.key"),
            "-CAcreateserial",
            "-out",
            &p("server.pem"),
        ])
        .args(["-days", "2", "-extfile", &p("ext.cnf")]));
    (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    )
}

/// Fails with a message naming the package when `program` is not on PATH.
pub fn require_tool(program: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let p = dir.join(program);
        if p.is_file() {
            return p;
        }
    }
    panic!("`{program}` is not installed; these tests need it. Install with: {INSTALL_HINT}");
}

/// A fresh, empty temporary directory (removed by the caller or on drop of its owner).
pub fn temp_dir(prefix: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let d = std::env::temp_dir().join(format!(
        "{prefix}-{}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        Instant::now().elapsed().as_nanos()
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create temp dir");
    d
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

impl TestRegistry {
    /// Starts a registry without auth.
    pub fn start() -> TestRegistry {
        TestRegistry::start_with(RegistryOptions::default())
    }

    /// Starts a registry with options.
    pub fn start_with(opts: RegistryOptions) -> TestRegistry {
        let bin = require_tool("docker-registry");
        let dir = temp_dir("odc-registry");
        let storage = dir.join("storage");
        std::fs::create_dir_all(&storage).expect("create storage dir");
        let mut auth = String::new();
        if let Some((user, pass)) = &opts.htpasswd {
            let htpasswd = require_tool("htpasswd");
            let out = Command::new(htpasswd)
                .args(["-Bbn", user, pass])
                .output()
                .expect("run htpasswd");
            assert!(out.status.success(), "htpasswd failed: {out:?}");
            let file = dir.join("htpasswd");
            std::fs::write(&file, &out.stdout).expect("write htpasswd");
            auth = format!(
                "auth:\n  htpasswd:\n    realm: odc-test\n    path: {}\n",
                file.display()
            );
        }
        let cache = if opts.blob_descriptor_cache {
            "  cache:\n    blobdescriptor: inmemory\n"
        } else {
            ""
        };
        let mut tls = String::new();
        let mut ca_pem = None;
        if opts.tls {
            let (ca, cert, key) = make_certs(&dir);
            ca_pem = Some(std::fs::read(ca).expect("read ca"));
            tls = format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert.display(),
                key.display()
            );
        }
        let mut last_err = String::new();
        for _ in 0..5 {
            let port = free_port();
            let addr = format!("127.0.0.1:{port}");
            let config = format!(
                "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n{cache}  maintenance:\n    uploadpurging:\n      enabled: false\nhttp:\n  addr: {addr}\n  secret: odc-test-secret\n{tls}{auth}",
                storage.display()
            );
            let config_path = dir.join("config.yml");
            std::fs::write(&config_path, config).expect("write registry config");
            let log = std::fs::File::create(dir.join("registry.log")).expect("create log");
            let child = Command::new(&bin)
                .arg("serve")
                .arg(&config_path)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("clone log"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start docker-registry: {e}; {INSTALL_HINT}"));
            let mut reg = TestRegistry {
                addr,
                dir: dir.clone(),
                ca_pem: ca_pem.clone(),
                child,
            };
            match reg.wait_ready(Duration::from_secs(20)) {
                Ok(()) => return reg,
                Err(e) => {
                    last_err = e;
                    let _ = reg.child.kill();
                    let _ = reg.child.wait();
                    // Keep the directory for the next attempt: forget without Drop cleanup.
                    std::mem::forget(reg);
                }
            }
        }
        panic!("docker-registry did not start: {last_err}");
    }

    fn wait_ready(&mut self, limit: Duration) -> Result<(), String> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("exited with {status}; log: {}", self.log_tail()));
            }
            if let Ok(code) = http_status(&self.addr, "/v2/")
                && (code == 200 || code == 401 || (self.ca_pem.is_some() && code == 400))
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!(
            "not ready after {limit:?}; log: {}",
            self.log_tail()
        ))
    }

    /// The last lines of the registry's log.
    pub fn log_tail(&self) -> String {
        let s = std::fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default();
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// The registry's config file.
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("config.yml")
    }

    /// The storage root.
    pub fn storage_dir(&self) -> PathBuf {
        self.dir.join("storage")
    }

    /// Runs the registry's offline `garbage-collect` (while the server keeps running).
    pub fn garbage_collect(&self, delete_untagged: bool) -> std::process::Output {
        let mut cmd = Command::new(require_tool("docker-registry"));
        cmd.arg("garbage-collect");
        if delete_untagged {
            cmd.arg("--delete-untagged");
        }
        cmd.arg(self.config_path())
            .output()
            .expect("run garbage-collect")
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A plain HTTP/1.0 GET with the standard library; returns the status code.
pub fn http_status(addr: &str, path: &str) -> std::io::Result<u16> {
    let mut s = TcpStream::connect_timeout(
        &addr
            .parse()
            .map_err(|e| std::io::Error::other(format!("{e}")))?,
        Duration::from_secs(2),
    )?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf)?;
    let head = String::from_utf8_lossy(&buf[..n]);
    head.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad answer {head:?}")))
}

/// Runs a command, panicking with its output when it fails.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed with {}:\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Removes a directory tree, ignoring errors (for temporary dirs of tests).
pub fn remove(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
}
