//! The examples' command lines as a user meets them (issue 16, item 6): help on `--help`, and
//! for a wrong command line exit status 2 with a message that names the argument and what is
//! wrong, as other Rust tools (clap) print it; counts, platforms and locations checked by one
//! parser each; the same option spelled the same way in every example; `--creds` from the
//! environment, its value never shown; and control characters typed by the user escaped in
//! every message that repeats them.

mod common;

use std::process::{Command, Output};

use common::assert_clean;

const EXAMPLES: [&str; 7] = [
    "copy",
    "sync",
    "inspect",
    "gc",
    "fsck",
    "digest",
    "make_sample",
];

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn run_env(name: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(common::example(name));
    cmd.args(args)
        .env_remove("RUST_LOG")
        .env_remove("OCI_RS_CREDS");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("runs")
}

fn run(name: &str, args: &[&str]) -> Output {
    run_env(name, args, &[])
}

/// Runs `name args`, expects exit status 2, nothing on standard output and `says` on standard
/// error; returns standard error.
fn usage_error(name: &str, args: &[&str], says: &str) -> String {
    let out = run(name, args);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{name} {args:?}: {err}");
    assert!(
        out.stdout.is_empty(),
        "{name} {args:?}: {}",
        text(&out.stdout)
    );
    assert!(err.starts_with("error: "), "{name} {args:?}: {err}");
    assert!(
        err.contains(says),
        "{name} {args:?} should say {says:?}: {err}"
    );
    assert!(
        err.contains("For more information, try '--help'."),
        "{name} {args:?}: {err}"
    );
    err
}

#[test]
fn help_exits_0_on_standard_output() {
    for name in EXAMPLES {
        for flag in ["--help", "-h"] {
            let out = run(name, &[flag]);
            let help = text(&out.stdout);
            assert_eq!(
                out.status.code(),
                Some(0),
                "{name} {flag}: {}",
                text(&out.stderr)
            );
            assert!(
                out.stderr.is_empty(),
                "{name} {flag}: {}",
                text(&out.stderr)
            );
            assert!(
                help.contains(&format!("Usage: {name} ")),
                "{name} {flag}: {help}"
            );
            assert!(
                help.contains("--log-level <FILTER>"),
                "{name} {flag}: {help}"
            );
        }
        // The long help says what the exit statuses mean.
        let help = text(&run(name, &["--help"]).stdout);
        assert!(help.contains("Exit status: 0 "), "{name}: {help}");
    }
}

#[test]
fn shared_options_are_spelled_and_explained_alike() {
    let copy = text(&run("copy", &["--help"]).stdout);
    let sync = text(&run("sync", &["--help"]).stdout);
    for option in [
        "--platform <OS/ARCH[/VARIANT]>",
        "--all",
        "--verify-existing",
        "--referrers",
        "--piece-maps",
        "--format <FORMAT>",
        "--retries <N>",
        "-j, --jobs <N>",
        "--plain-http",
        "--creds <USER:PASS>",
        "--state-dir <DIR>",
        "--log-level <FILTER>",
    ] {
        for (name, help) in [("copy", &copy), ("sync", &sync)] {
            assert!(help.contains(option), "{name} lacks {option}: {help}");
        }
        // The line after the option (its help) is the same in both.
        let explained = |help: &str| {
            let mut lines = help
                .lines()
                .skip_while(|l| !l.trim_start().starts_with(option));
            lines.nth(1).map(str::to_owned)
        };
        if option != "-j, --jobs <N>" {
            assert_eq!(explained(&copy), explained(&sync), "{option}");
        }
    }
    for name in ["gc", "fsck"] {
        let help = text(&run(name, &["--help"]).stdout);
        assert!(
            help.contains(&format!("Usage: {name} [OPTIONS] <LAYOUT>")),
            "{help}"
        );
    }
}

#[test]
fn unknown_options_are_usage_errors_with_a_suggestion() {
    for name in EXAMPLES {
        let err = usage_error(
            name,
            &["--no-such-option"],
            "unexpected argument '--no-such-option' found",
        );
        assert!(err.contains(&format!("Usage: {name} ")), "{name}: {err}");
    }
    let err = usage_error(
        "copy",
        &["--job", "3", "oci:a", "oci:b"],
        "unexpected argument '--job' found",
    );
    assert!(err.contains("a similar argument exists: '--jobs'"), "{err}");
    usage_error(
        "copy",
        &["oci:a", "oci:b", "oci:c"],
        "unexpected argument 'oci:c' found",
    );
}

#[test]
fn missing_arguments_are_usage_errors() {
    for name in ["sync", "inspect", "gc", "fsck", "digest"] {
        usage_error(
            name,
            &[],
            "the following required arguments were not provided",
        );
    }
    // copy without arguments copies the sample; with SRC alone it wants DST.
    let err = usage_error(
        "copy",
        &["oci:a"],
        "the following required arguments were not provided",
    );
    assert!(err.contains("<DST>"), "{err}");
    usage_error(
        "copy",
        &["oci:a", "oci:b", "--jobs"],
        "a value is required for '--jobs <N>'",
    );
}

#[test]
fn counts_are_checked_by_a_range() {
    for (name, args, says) in [
        (
            "copy",
            vec!["--jobs", "0", "oci:a", "oci:b"],
            "invalid value '0' for '--jobs <N>': 0 is not in 1..=256",
        ),
        (
            "copy",
            vec!["--jobs", "257", "oci:a", "oci:b"],
            "257 is not in 1..=256",
        ),
        (
            "copy",
            vec!["--jobs", "-1", "oci:a", "oci:b"],
            "unexpected argument '-1' found",
        ),
        (
            "copy",
            vec!["--jobs=-1", "oci:a", "oci:b"],
            "invalid value '-1' for '--jobs <N>'",
        ),
        (
            "copy",
            vec!["--jobs", "many", "oci:a", "oci:b"],
            "invalid digit found in string",
        ),
        (
            "sync",
            vec!["--images", "0", "list"],
            "invalid value '0' for '--images <N>': 0 is not in 1..=256",
        ),
        (
            "sync",
            vec!["--retry-budget", "x", "list"],
            "invalid value 'x' for '--retry-budget <N>'",
        ),
        (
            "copy",
            vec!["--retries=-3", "oci:a", "oci:b"],
            "invalid value '-3' for '--retries <N>'",
        ),
        (
            "gc",
            vec!["--min-age", "soon", "oci:a"],
            "invalid value 'soon' for '--min-age <SECONDS>'",
        ),
        (
            "copy",
            vec!["--chunked-upload", "4MB", "oci:a", "oci:b"],
            "\"4MB\" is not a size: unknown unit (binary units only",
        ),
        (
            "copy",
            vec!["--chunked-upload", "1KiB", "oci:a", "oci:b"],
            "1.0 KiB is below the smallest chunk, 64 KiB",
        ),
        (
            "sync",
            vec!["--monolithic-max", "99999999999999GiB", "list"],
            "it does not fit in 64 bits",
        ),
    ] {
        usage_error(name, &args, says);
    }
}

#[test]
fn platforms_are_checked_by_one_parser() {
    for name in ["copy", "sync"] {
        let target: &[&str] = if name == "copy" {
            &["oci:a", "oci:b"]
        } else {
            &["list"]
        };
        for (platform, says) in [
            ("linux/amd64/v2/extra", "expected os/arch[/variant]"),
            ("linux/*", "wildcards are not supported"),
            ("", "invalid value '' for '--platform <OS/ARCH[/VARIANT]>'"),
        ] {
            let mut args = vec!["--platform", platform];
            args.extend_from_slice(target);
            usage_error(name, &args, says);
        }
        let mut args = vec!["--platform", "linux/arm64", "--all"];
        args.extend_from_slice(target);
        usage_error(name, &args, "cannot be used with");
    }
}

#[test]
fn locations_are_checked_by_one_parser() {
    for (name, args, says) in [
        (
            "copy",
            vec!["ftp://x", "oci:b"],
            "invalid value 'ftp://x' for '[SRC]': expected oci:PATH[:TAG|@DIGEST] or docker://",
        ),
        ("copy", vec!["oci:a", "oci:b:../up"], "for '[DST]'"),
        (
            "copy",
            vec!["oci:a", "docker://Registry.example/UPPER:v1"],
            "for '[DST]'",
        ),
        ("copy", vec!["oci:a@sha256:beef", "oci:b"], "invalid digest"),
        (
            "gc",
            vec!["oci:store:v1"],
            "expected oci:PATH of a whole layout",
        ),
        (
            "gc",
            vec!["docker://r.example/a"],
            "expected oci:PATH of a whole layout",
        ),
        (
            "fsck",
            vec!["./store"],
            "invalid value './store' for '<LAYOUT>'",
        ),
        (
            "inspect",
            vec!["docker://r.example/a:v1"],
            "expected oci:PATH[:TAG|@DIGEST]",
        ),
        ("inspect", vec!["oci::v1"], "empty layout path"),
        (
            "digest",
            vec!["--verify", "sha256:abc", "f"],
            "invalid length",
        ),
        (
            "copy",
            vec!["--format", "zip", "oci:a", "oci:b"],
            "[possible values: oci, docker]",
        ),
        (
            "copy",
            vec!["--state-dir", "", "oci:a", "oci:b"],
            "needs a directory",
        ),
    ] {
        usage_error(name, &args, says);
    }
}

/// What a hostile user (or a script fed hostile names) types: an OSC title change, a newline
/// faking a line, an 8-bit CSI, a right-to-left override. (No NUL: an argument cannot hold one.)
const EVIL: &str = "x\u{1b}]0;owned\u{7}\nFAKE LINE\u{9b}31m\u{202e}";
/// [`EVIL`] as printed.
const EVIL_ESCAPED: &str = "x\\u{1b}]0;owned\\u{7}\\nFAKE LINE\\u{9b}31m\\u{202e}";

#[test]
fn rejected_input_is_shown_with_its_control_characters_escaped() {
    let unknown = format!("--{EVIL}");
    let tagged = format!("oci:a:{EVIL}");
    let layout = format!("oci:{EVIL}:v1");
    let level = format!("oci_store={EVIL}");
    let cases: Vec<(&str, Vec<&str>)> = vec![
        ("copy", vec![&unknown]),
        ("copy", vec!["oci:a", &tagged]),
        ("copy", vec![EVIL, "oci:b"]),
        ("copy", vec!["--platform", EVIL, "oci:a", "oci:b"]),
        ("copy", vec!["--jobs", EVIL, "oci:a", "oci:b"]),
        ("copy", vec!["--format", EVIL, "oci:a", "oci:b"]),
        ("copy", vec!["oci:a", "oci:b", EVIL]),
        ("sync", vec!["--log-level", &level, "list"]),
        ("sync", vec!["--images", EVIL, "list"]),
        ("gc", vec![&layout]),
        ("fsck", vec![EVIL]),
        ("inspect", vec![&tagged]),
        ("inspect", vec![&layout, EVIL]),
        ("digest", vec!["--verify", EVIL, "f"]),
        ("digest", vec!["--algorithm", EVIL, "f"]),
        ("make_sample", vec!["dir", EVIL]),
    ];
    for (name, args) in cases {
        let out = run(name, &args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name} {args:?}: {err}");
        assert_clean(&format!("{name} {args:?}"), &out.stderr);
        assert!(
            err.contains("x\\u{1b}]0;owned\\u{7}\\nFAKE LINE"),
            "{name} {args:?}: the input is shown, escaped: {err}"
        );
    }
    // The whole string, as one piece.
    let err = text(&run("copy", &["oci:a", "oci:b", EVIL]).stderr);
    assert!(err.contains(&format!("'{EVIL_ESCAPED}'")), "{err}");
}

#[test]
fn creds_come_from_the_environment_and_are_never_shown() {
    const SECRET: &str = "s3cret-do-not-print";
    let with_colon = format!("alice:{SECRET}");
    let without_colon = format!("alice-{SECRET}");
    let empty_user = format!(":{SECRET}");
    // The help names the variable, never its value.
    for name in ["copy", "sync"] {
        let out = run_env(name, &["--help"], &[("OCI_RS_CREDS", &with_colon)]);
        let help = text(&out.stdout);
        assert_eq!(out.status.code(), Some(0));
        assert!(help.contains("[env: OCI_RS_CREDS]"), "{name}: {help}");
        assert!(!help.contains(SECRET), "{name}: {help}");
    }
    // A value that does not parse, from the command line or the environment: exit 2, the
    // option named, the value hidden.
    let from_args = |creds: &str| vec!["--creds".to_owned(), creds.to_owned()];
    for (name, target) in [("copy", vec!["oci:a", "oci:b"]), ("sync", vec!["list"])] {
        for (args, env) in [
            (from_args(&without_colon), None),
            (from_args(&empty_user), None),
            (vec![format!("--creds={without_colon}")], None),
            (vec![], Some(without_colon.as_str())),
            (vec![], Some(empty_user.as_str())),
        ] {
            let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
            all.extend_from_slice(&target);
            let env: Vec<(&str, &str)> = env.map(|v| ("OCI_RS_CREDS", v)).into_iter().collect();
            let out = run_env(name, &all, &env);
            let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
            assert_eq!(
                out.status.code(),
                Some(2),
                "{name} {all:?} {env:?}: {stderr}"
            );
            assert!(
                stderr.contains("invalid value '(hidden)' for '--creds <USER:PASS>'"),
                "{name} {all:?} {env:?}: {stderr}"
            );
            assert!(
                !stderr.contains(SECRET) && !stdout.contains(SECRET),
                "{name} {all:?} {env:?}: {stdout}{stderr}"
            );
        }
        // Good credentials in the environment and another mistake: the secret is not shown.
        let mut all = vec!["--jobs", "0"];
        all.extend_from_slice(&target);
        let out = run_env(name, &all, &[("OCI_RS_CREDS", &with_colon)]);
        assert_eq!(out.status.code(), Some(2));
        assert!(!text(&out.stderr).contains(SECRET), "{}", text(&out.stderr));
    }
    // A misspelt option with the secret glued to it shows the option only.
    let glued = format!("--cred={with_colon}");
    let err = usage_error(
        "copy",
        &[&glued, "oci:a", "oci:b"],
        "unexpected argument '--cred'",
    );
    assert!(!err.contains(SECRET), "{err}");
    // Valid credentials from the environment are taken (a copy between layouts does not use
    // them; tests/copy_registry.rs pushes with them to a registry that requires them).
    let dir = common::TempDir::new("creds-env");
    let src = format!(
        "oci:{}:sample",
        oci_examples::sample::committed_path().display()
    );
    let dst = format!("oci:{}:v1", dir.path().join("out").display());
    let out = run_env(
        "copy",
        &["-q", &src, &dst],
        &[("OCI_RS_CREDS", &with_colon)],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!text(&out.stdout).contains(SECRET) && !text(&out.stderr).contains(SECRET));
}
