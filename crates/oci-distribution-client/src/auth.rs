//! Authentication: credentials, `WWW-Authenticate` challenges, bearer tokens and Docker's
//! `config.json` with its credential helpers.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde::Deserialize;

use crate::Error;

/// Credentials for one registry. `Debug` never shows secrets.
///
/// Credentials given in code win over Docker's `config.json` (`auths`, `credsStore`,
/// `credHelpers`), which is read when [`ClientConfig::docker_config`](crate::ClientConfig)
/// is set (the default).
///
/// ```
/// use oci_distribution_client::{ClientConfig, Credential};
/// let c = Credential::basic("alice", "s3cret");
/// assert!(!format!("{c:?}").contains("s3cret"));
/// let config = ClientConfig::default().with_credential("registry.example:5000", c);
/// # let _ = config;
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Credential {
    /// User name and password (sent as Basic auth to the registry or its token service).
    Basic {
        /// User name.
        username: String,
        /// Password or personal access token.
        password: String,
    },
    /// An OAuth2 refresh token (Docker's `identitytoken`), exchanged at the token service.
    IdentityToken(String),
    /// A registry bearer token used as is.
    Bearer(String),
}

impl Credential {
    /// Basic credentials.
    pub fn basic(username: impl Into<String>, password: impl Into<String>) -> Credential {
        Credential::Basic {
            username: username.into(),
            password: password.into(),
        }
    }

    pub(crate) fn basic_header(&self) -> Option<String> {
        match self {
            Credential::Basic { username, password } => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
            )),
            _ => None,
        }
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
            Credential::IdentityToken(_) => f.write_str("IdentityToken(<redacted>)"),
            Credential::Bearer(_) => f.write_str("Bearer(<redacted>)"),
        }
    }
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Challenge {
    /// `Basic realm="..."`.
    Basic,
    /// `Bearer realm="...",service="...",scope="..."`.
    Bearer {
        /// Token endpoint.
        realm: String,
        /// The `service` parameter to pass back.
        service: Option<String>,
        /// The scopes the server asked for (space separated in the header).
        scopes: Vec<String>,
    },
}

impl Challenge {
    /// Parses a `WWW-Authenticate` header value; `None` for schemes other than Basic/Bearer or a
    /// Bearer without realm.
    ///
    /// ```
    /// use oci_distribution_client::Challenge;
    /// let c = Challenge::parse(r#"Bearer realm="https://auth.example/token",service="reg",scope="repository:a/b:pull,push""#);
    /// assert_eq!(c, Some(Challenge::Bearer {
    ///     realm: "https://auth.example/token".into(),
    ///     service: Some("reg".into()),
    ///     scopes: vec!["repository:a/b:pull,push".into()],
    /// }));
    /// assert_eq!(Challenge::parse(r#"Basic realm="x""#), Some(Challenge::Basic));
    /// ```
    pub fn parse(header: &str) -> Option<Challenge> {
        let header = header.trim();
        let (scheme, rest) = header
            .split_once(char::is_whitespace)
            .unwrap_or((header, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            return Some(Challenge::Basic);
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let params = parse_params(rest);
        let realm = params.get("realm")?.clone();
        Some(Challenge::Bearer {
            realm,
            service: params.get("service").cloned(),
            scopes: params
                .get("scope")
                .map(|s| {
                    s.split(' ')
                        .filter(|x| !x.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
        })
    }
}

/// `key="quoted, value", key2=token` → map (keys lowercased).
fn parse_params(s: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && (b[i] == b',' || b[i].is_ascii_whitespace()) {
            i += 1;
        }
        let ks = i;
        while i < b.len() && b[i] != b'=' && b[i] != b',' {
            i += 1;
        }
        let key = s[ks..i].trim().to_ascii_lowercase();
        if i >= b.len() || b[i] != b'=' {
            continue;
        }
        i += 1;
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let mut value = String::new();
        if i < b.len() && b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' && i + 1 < b.len() {
                    i += 1;
                }
                // Keep multi-byte characters whole.
                let ch_len = s[i..].chars().next().map_or(1, char::len_utf8);
                value.push_str(&s[i..i + ch_len]);
                i += ch_len;
            }
            i += 1;
        } else {
            let vs = i;
            while i < b.len() && b[i] != b',' {
                i += 1;
            }
            value = s[vs..i].trim().to_owned();
        }
        if !key.is_empty() {
            out.insert(key, value);
        }
    }
    out
}

/// A token scope: `repository:<name>:<actions>`.
pub(crate) fn repo_scope(repository: &str, actions: &str) -> String {
    format!("repository:{repository}:{actions}")
}

/// Merges scopes: actions of the same resource are unioned (`pull` + `push` → `pull,push`).
pub(crate) fn merge_scopes<'a>(scopes: impl IntoIterator<Item = &'a String>) -> Vec<String> {
    let mut by_resource: std::collections::BTreeMap<String, BTreeSet<String>> = Default::default();
    for s in scopes {
        match s.rsplit_once(':') {
            Some((resource, actions)) => {
                let set = by_resource.entry(resource.to_owned()).or_default();
                set.extend(
                    actions
                        .split(',')
                        .filter(|a| !a.is_empty())
                        .map(str::to_owned),
                );
            }
            None => {
                by_resource.entry(s.clone()).or_default();
            }
        }
    }
    by_resource
        .into_iter()
        .map(|(r, a)| {
            if a.is_empty() {
                r
            } else {
                format!("{r}:{}", a.into_iter().collect::<Vec<_>>().join(","))
            }
        })
        .collect()
}

#[derive(Clone)]
pub(crate) struct CachedToken {
    pub(crate) token: String,
    pub(crate) expires: Instant,
}

/// A token endpoint answer.
#[derive(Deserialize)]
pub(crate) struct TokenResponse {
    #[serde(default)]
    pub(crate) token: Option<String>,
    #[serde(default)]
    pub(crate) access_token: Option<String>,
    #[serde(default)]
    pub(crate) expires_in: Option<u64>,
}

/// Spec default lifetime of a token without `expires_in`.
pub(crate) const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(60);
/// Longest lifetime a token is cached for, whatever the token service says.
pub(crate) const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);
/// Tokens are renewed this long before they expire.
pub(crate) const TOKEN_EXPIRY_MARGIN: Duration = Duration::from_secs(5);

type TokenSlot = Arc<tokio::sync::Mutex<Option<CachedToken>>>;

/// Per-client authentication state: known challenges by registry, the token cache (one async
/// lock per registry+scope set, so one token request at a time per scope), and resolved
/// credentials.
#[derive(Default)]
pub(crate) struct AuthState {
    challenges: Mutex<HashMap<String, Challenge>>,
    tokens: Mutex<HashMap<String, TokenSlot>>,
    credentials: Mutex<HashMap<String, Option<Credential>>>,
}

impl AuthState {
    pub(crate) fn challenge(&self, registry: &str) -> Option<Challenge> {
        lock(&self.challenges).get(registry).cloned()
    }

    pub(crate) fn set_challenge(&self, registry: &str, c: Challenge) {
        lock(&self.challenges).insert(registry.to_owned(), c);
    }

    pub(crate) fn token_slot(&self, key: &str) -> TokenSlot {
        lock(&self.tokens)
            .entry(key.to_owned())
            .or_default()
            .clone()
    }

    pub(crate) fn cached_credential(&self, registry: &str) -> Option<Option<Credential>> {
        lock(&self.credentials).get(registry).cloned()
    }

    pub(crate) fn cache_credential(&self, registry: &str, c: Option<Credential>) {
        lock(&self.credentials).insert(registry.to_owned(), c);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Docker's `config.json`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct DockerConfigFile {
    #[serde(default)]
    auths: HashMap<String, DockerAuthEntry>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: HashMap<String, String>,
    /// Directory to take `docker-credential-*` programs from instead of `PATH`.
    #[serde(skip)]
    pub(crate) helper_dir: Option<PathBuf>,
    /// Where the file was read from (for errors).
    #[serde(skip)]
    path: Option<PathBuf>,
}

#[derive(Default, Deserialize)]
struct DockerAuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

impl fmt::Debug for DockerAuthEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DockerAuthEntry(<redacted>)")
    }
}

/// Where Docker keeps its config: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
pub fn docker_config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return Some(Path::new(&dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|h| Path::new(&h).join(".docker").join("config.json"))
}

/// Normalises a key of `auths`/`credHelpers` (`https://index.docker.io/v1/` → `docker.io`).
fn normalise_registry_key(key: &str) -> String {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let k = k.split('/').next().unwrap_or(k);
    match k {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".to_owned(),
        other => other.to_owned(),
    }
}

impl DockerConfigFile {
    pub(crate) fn load(path: &Path) -> Result<Option<DockerConfigFile>, Error> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(Error::DockerConfig {
                    path: path.display().to_string(),
                    message: format!("cannot read: {e}"),
                });
            }
        };
        serde_json::from_slice(&bytes)
            .map(|c| {
                Some(DockerConfigFile {
                    path: Some(path.to_owned()),
                    ..c
                })
            })
            .map_err(|e| Error::DockerConfig {
                path: path.display().to_string(),
                message: format!("not valid JSON: {e}"),
            })
    }

    /// Looks up credentials for `registry`: `credHelpers`, then `credsStore`, then `auths`.
    pub(crate) async fn credential(&self, registry: &str) -> Result<Option<Credential>, Error> {
        let wanted = normalise_registry_key(registry);
        if let Some((_, helper)) = self
            .cred_helpers
            .iter()
            .find(|(k, _)| normalise_registry_key(k) == wanted)
        {
            return run_helper(self.helper_dir.as_deref(), helper, &wanted).await;
        }
        if let Some(store) = &self.creds_store
            && let Some(c) = run_helper(self.helper_dir.as_deref(), store, &wanted).await?
        {
            return Ok(Some(c));
        }
        for (key, entry) in &self.auths {
            if normalise_registry_key(key) != wanted {
                continue;
            }
            if let Some(t) = entry.identitytoken.as_ref().filter(|t| !t.is_empty()) {
                return Ok(Some(Credential::IdentityToken(t.clone())));
            }
            if let Some(auth) = entry.auth.as_ref().filter(|a| !a.is_empty()) {
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(auth.trim())
                    .ok()
                    .and_then(|d| String::from_utf8(d).ok())
                    .and_then(|s| {
                        s.split_once(':')
                            .map(|(u, p)| Credential::basic(u, p.trim_end_matches('\n')))
                    });
                return match decoded {
                    Some(c) => Ok(Some(c)),
                    None => Err(Error::DockerConfig {
                        path: self
                            .path
                            .as_deref()
                            .map_or_else(|| "config.json".into(), |p| p.display().to_string()),
                        message: format!(
                            "the `auth` entry for {key} is not base64 of user:password"
                        ),
                    }),
                };
            }
            if let (Some(u), Some(p)) = (&entry.username, &entry.password) {
                return Ok(Some(Credential::basic(u, p)));
            }
        }
        Ok(None)
    }
}

/// Runs `docker-credential-<helper> get` with the server URL on stdin.
async fn run_helper(
    dir: Option<&Path>,
    helper: &str,
    registry: &str,
) -> Result<Option<Credential>, Error> {
    use tokio::io::AsyncWriteExt;
    let server = if registry == "docker.io" {
        "https://index.docker.io/v1/".to_owned()
    } else {
        registry.to_owned()
    };
    let program = format!("docker-credential-{helper}");
    let err = |message: String, source: Option<std::io::Error>| Error::CredentialHelper {
        helper: helper.to_owned(),
        registry: registry.to_owned(),
        message,
        source,
    };
    let path = match dir {
        Some(d) => d.join(&program),
        None => PathBuf::from(&program),
    };
    let mut child = tokio::process::Command::new(&path)
        .arg("get")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| err(format!("cannot run {program}"), Some(e)))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(server.as_bytes())
            .await
            .map_err(|e| err("cannot write to the helper".into(), Some(e)))?;
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| err("helper did not finish".into(), Some(e)))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        if stdout.contains("credentials not found") {
            return Ok(None);
        }
        return Err(err(
            format!(
                "exited with {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            None,
        ));
    }
    #[derive(Deserialize)]
    struct HelperOut {
        #[serde(rename = "Username", default)]
        username: String,
        #[serde(rename = "Secret", default)]
        secret: String,
    }
    let parsed: HelperOut = serde_json::from_slice(&out.stdout)
        .map_err(|e| err(format!("answer is not the expected JSON: {e}"), None))?;
    if parsed.username == "<token>" {
        Ok(Some(Credential::IdentityToken(parsed.secret)))
    } else {
        Ok(Some(Credential::basic(parsed.username, parsed.secret)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        assert_eq!(
            Challenge::parse(r#"bearer Realm="http://127.0.0.1:1/t", Service = "s", scope="a b""#),
            Some(Challenge::Bearer {
                realm: "http://127.0.0.1:1/t".into(),
                service: Some("s".into()),
                scopes: vec!["a".into(), "b".into()],
            })
        );
        assert_eq!(
            Challenge::parse(r#"Bearer realm="r",error="invalid_token",scope="repository:x:pull""#),
            Some(Challenge::Bearer {
                realm: "r".into(),
                service: None,
                scopes: vec!["repository:x:pull".into()],
            })
        );
        assert_eq!(Challenge::parse("Bearer service=x"), None);
        assert_eq!(Challenge::parse("Negotiate abc"), None);
        assert_eq!(Challenge::parse(""), None);
        assert_eq!(
            Challenge::parse(r#"Bearer realm="a\"b""#),
            Some(Challenge::Bearer {
                realm: "a\"b".into(),
                service: None,
                scopes: vec![]
            })
        );
        // Unterminated and odd input never panics.
        for s in [
            "Bearer realm=\"",
            "Bearer ,,,=",
            "Bearer realm=é\"ü",
            "Bearer realm=\"é",
        ] {
            let _ = Challenge::parse(s);
        }
    }

    proptest::proptest! {
        #[test]
        fn challenge_round_trip(
            realm in "https?://[a-z0-9.:-]{1,20}/[a-zA-Z0-9/?=&_-]{0,20}",
            service in proptest::option::of("[a-zA-Z0-9. :_-]{1,20}"),
            scopes in proptest::collection::vec("repository:[a-z0-9/._-]{1,15}:(pull|push|pull,push|delete|\\*)", 0..4),
            spaces in "[ ]{0,2}",
        ) {
            let mut h = format!("Bearer realm={spaces}\"{realm}\"");
            if let Some(s) = &service {
                h.push_str(&format!(",{spaces}service=\"{s}\""));
            }
            if !scopes.is_empty() {
                h.push_str(&format!(", scope=\"{}\"", scopes.join(" ")));
            }
            let parsed = Challenge::parse(&h);
            proptest::prop_assert_eq!(parsed, Some(Challenge::Bearer { realm, service, scopes }));
        }

        #[test]
        fn challenge_parse_never_panics(s in "\\PC{0,60}") {
            let _ = Challenge::parse(&s);
        }
    }

    #[test]
    fn scopes_merge() {
        let s = [
            "repository:a:pull".to_owned(),
            "repository:a:push".to_owned(),
            "repository:b:pull".to_owned(),
            "repository:a:pull".to_owned(),
        ];
        assert_eq!(
            merge_scopes(&s),
            vec!["repository:a:pull,push", "repository:b:pull"]
        );
    }

    #[test]
    fn debug_hides_secrets() {
        let c = Credential::basic("u", "hunter2");
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(!format!("{:?}", Credential::IdentityToken("tok".into())).contains("tok"));
        assert_eq!(c.basic_header().unwrap(), "Basic dTpodW50ZXIy");
    }

    /// Checks the credential `cfg` gives for each registry.
    async fn expect_credentials<const N: usize>(
        cfg: &DockerConfigFile,
        cases: [(&str, Option<Credential>); N],
    ) {
        for (registry, want) in cases {
            assert_eq!(cfg.credential(registry).await.unwrap(), want, "{registry}");
        }
    }

    #[tokio::test]
    async fn docker_config_auths() {
        let cfg: DockerConfigFile = serde_json::from_str(
            r#"{"auths":{"https://index.docker.io/v1/":{"auth":"dTpw"},
                "reg.example:5000":{"username":"a","password":"b"},
                "tok.example":{"identitytoken":"rt"}}}"#,
        )
        .unwrap();
        expect_credentials(
            &cfg,
            [
                ("docker.io", Some(Credential::basic("u", "p"))),
                ("reg.example:5000", Some(Credential::basic("a", "b"))),
                ("tok.example", Some(Credential::IdentityToken("rt".into()))),
                ("other", None),
            ],
        )
        .await;
        let bad: DockerConfigFile =
            serde_json::from_str(r#"{"auths":{"x.io":{"auth":"!!!"}}}"#).unwrap();
        assert!(matches!(
            bad.credential("x.io").await,
            Err(Error::DockerConfig { .. })
        ));
        // Read from a file, the error names that file.
        let file = std::env::temp_dir().join(format!("odc-config-{}.json", std::process::id()));
        std::fs::write(&file, r#"{"auths":{"x.io":{"auth":"!!!"}}}"#).unwrap();
        let loaded = DockerConfigFile::load(&file).unwrap().unwrap();
        std::fs::remove_file(&file).ok();
        match loaded.credential("x.io").await {
            Err(Error::DockerConfig { path, .. }) => assert_eq!(path, file.display().to_string()),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn docker_config_helpers() {
        // A credential helper is a program on PATH; write one into a temporary directory.
        let dir = std::env::temp_dir().join(format!("odc-helper-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let script = dir.join("docker-credential-odctest");
        std::fs::write(
            &script,
            "#!/bin/sh\nread server\nif [ \"$server\" = \"helped.example\" ]; then\n echo '{\"ServerURL\":\"helped.example\",\"Username\":\"hu\",\"Secret\":\"hs\"}'\nelif [ \"$server\" = \"tok.example\" ]; then\n echo '{\"Username\":\"<token>\",\"Secret\":\"refresh\"}'\nelse\n echo 'credentials not found in native keychain'; exit 1\nfi\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut cfg: DockerConfigFile = serde_json::from_str(
            r#"{"credsStore":"odctest","credHelpers":{"broken.example":"odc-missing-helper"},
                "auths":{"fallback.example":{"auth":"YTpi"}}}"#,
        )
        .unwrap();
        cfg.helper_dir = Some(dir.clone());
        expect_credentials(
            &cfg,
            [
                ("helped.example", Some(Credential::basic("hu", "hs"))),
                (
                    "tok.example",
                    Some(Credential::IdentityToken("refresh".into())),
                ),
                // The store has nothing for it: fall back to `auths`.
                ("fallback.example", Some(Credential::basic("a", "b"))),
                ("nope.example", None),
            ],
        )
        .await;
        // A helper that does not exist is an error naming it.
        match cfg.credential("broken.example").await {
            Err(Error::CredentialHelper { helper, .. }) => assert_eq!(helper, "odc-missing-helper"),
            other => panic!("{other:?}"),
        }
        std::fs::remove_dir_all(&dir).ok();
    }
}
