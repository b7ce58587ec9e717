//! The policy loader under hostile and careless input: a corpus generated here (never large
//! files in the repository), each case run through `jumpctl` as an admin would, under a time
//! limit (`timeout`) and an address-space limit (`prlimit --as`), with its expected exit code
//! and message. Cases that need another owner or a non-root caller run as root.

use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::Command,
};

use jump_tests::{privileged, Bins};

/// Every case finishes within this (a FIFO that hung `validate` did not).
const SECONDS: &str = "20";
/// Address space per case: jumpctl itself needs about 30 MiB; the largest policy allowed
/// (16 MiB over 16 files) must parse within a small multiple of its size.
const ADDRESS_SPACE: u64 = 512 << 20;

const GRANT_ALL: &str =
    "defaults:\n  egress: deny\nrules:\n  - name: all\n    users: [\"*\"]\n    allow: [{to: 0.0.0.0/0}]\n";
const DENY: &str =
    "rules:\n  - name: no-db\n    users: [\"*\"]\n    deny: [{to: 198.51.100.128/25}]\n";

struct Case {
    name: &'static str,
    /// Fills the (empty, root-owned, 0755) policy directory.
    setup: Box<dyn Fn(&Path)>,
    /// jumpctl arguments; `{dir}` stands for the policy directory.
    args: Vec<&'static str>,
    /// Run as `nobody` instead of root.
    as_nobody: bool,
    code: i32,
    /// Each must appear in stdout or stderr.
    says: Vec<String>,
    /// None may appear.
    never: Vec<&'static str>,
}

fn case(name: &'static str, setup: impl Fn(&Path) + 'static) -> Case {
    Case {
        name,
        setup: Box::new(setup),
        args: vec!["validate", "{dir}"],
        as_nobody: false,
        code: 1,
        says: Vec::new(),
        never: vec!["internal error", "panicked"],
    }
}

impl Case {
    fn code(mut self, c: i32) -> Self {
        self.code = c;
        self
    }
    fn says(mut self, s: impl Into<String>) -> Self {
        self.says.push(s.into());
        self
    }
    fn never(mut self, s: &'static str) -> Self {
        self.never.push(s);
        self
    }
    fn args(mut self, a: &[&'static str]) -> Self {
        self.args = a.to_vec();
        self
    }
    fn run_as_nobody(mut self) -> Self {
        self.as_nobody = true;
        self
    }
}

fn put(dir: &Path, name: &str, bytes: impl AsRef<[u8]>) {
    std::fs::write(dir.join(name), bytes).unwrap();
}

fn rule(name: &str, extra: &str) -> String {
    format!("rules:\n  - name: {name}\n    users: [\"*\"]\n{extra}")
}

fn cases() -> Vec<Case> {
    let mut v = vec![
        // --- What is read is exactly what is written.
        case("nul byte", |d| {
            put(d, "10-all.yaml", GRANT_ALL);
            put(d, "20-deny.yaml", format!("# x\0\n{DENY}"));
        })
        .says("20-deny.yaml:1:4: NUL byte: a policy file is text, and YAML does not allow NUL"),
        case("control character", |d| put(d, "a.yaml", format!("{GRANT_ALL}# \x1b[2J\n")))
            .says("a.yaml:7:3: character U+001B is not allowed in YAML"),
        case("invalid utf-8", |d| put(d, "a.yaml", b"rules:\n  - name: \xc3\x28\n"))
            .says("a.yaml:2:11: invalid UTF-8: a policy file is UTF-8 text"),
        case("bom at the start is accepted", |d| {
            put(d, "a.yaml", format!("\u{FEFF}{GRANT_ALL}"))
        })
        .code(0)
        .says("valid policy"),
        case("bom later is refused", |d| put(d, "a.yaml", format!("{GRANT_ALL}#\u{FEFF}\n")))
            .says("a.yaml:7:2: byte order mark (U+FEFF) after the start of the file"),
        // --- Nothing named like a policy file is skipped.
        case("dangling symlink", |d| {
            put(d, "10-all.yaml", GRANT_ALL);
            std::os::unix::fs::symlink("/nonexistent/20-deny.yaml", d.join("20-deny.yaml")).unwrap();
        })
        .says("20-deny.yaml: is a symbolic link: policy files must be regular files"),
        case("fifo does not hang", |d| {
            put(d, "10-all.yaml", GRANT_ALL);
            nix::unistd::mkfifo(&d.join("20-deny.yaml"), nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        })
        .says("20-deny.yaml: is a FIFO, not a regular file"),
        case("socket", |d| {
            put(d, "10-all.yaml", GRANT_ALL);
            let l = std::os::unix::net::UnixListener::bind(d.join("20-deny.yaml")).unwrap();
            std::mem::forget(l);
        })
        .says("20-deny.yaml: is a socket, not a regular file"),
        case("directory", |d| {
            put(d, "10-all.yaml", GRANT_ALL);
            std::fs::create_dir(d.join("20-deny.yml")).unwrap();
        })
        .says("20-deny.yml: is a directory, not a regular file"),
        case("upper-case extension is a policy file", |d| {
            put(d, "10-all.yaml", GRANT_ALL);
            put(d, "20-DENY.YAML", "rules: [\n");
        })
        .says("20-DENY.YAML:2:1: invalid YAML"),
        case("hidden files are ignored", |d| {
            put(d, "10-all.yaml", GRANT_ALL);
            put(d, ".20-deny.yaml", "not: [valid\n");
        })
        .code(0)
        .says("valid policy"),
        case("symlink to a root-only file is not followed", |d| {
            std::os::unix::fs::symlink("/etc/shadow", d.join("a.yaml")).unwrap();
        })
        .says("a.yaml: is a symbolic link")
        .never("root:"),
        case("a file the caller cannot read is not quoted", |d| {
            put(d, "a.yaml", "root:$6$secretsalt$hash:19000:0:99999:7:::\n");
            std::fs::set_permissions(d.join("a.yaml"), std::fs::Permissions::from_mode(0o600)).unwrap();
        })
        .run_as_nobody()
        .says("a.yaml: cannot open: Permission denied")
        .never("secretsalt"),
        // --- Ownership and modes: validate warns, jumpd refuses (tests/loader.rs, unit tests).
        case("file owned by another user", |d| {
            put(d, "a.yaml", GRANT_ALL);
            nix::unistd::chown(&d.join("a.yaml"), Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
        })
        .code(0)
        .says("a.yaml: warning: policy file is not owned by root (owner nobody (uid 65534), mode 0644)")
        .says("help: jumpd refuses this policy until only root can write it"),
        case("group-writable directory", |d| {
            put(d, "a.yaml", GRANT_ALL);
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o775)).unwrap();
        })
        .code(0)
        .says("warning: policy directory is writable by others than root (owner root (uid 0), mode 0775)"),
        case("unreadable after the capability drop", |d| {
            put(d, "a.yaml", GRANT_ALL);
            std::fs::set_permissions(d.join("a.yaml"), std::fs::Permissions::from_mode(0o044)).unwrap();
        })
        .says("a.yaml: not readable by jumpd after it drops its capabilities (owner root (uid 0), mode 0044)"),
        // --- YAML tags, empty lists, names.
        case("tag", |d| {
            put(d, "a.yaml", "defaults:\n  egress: !!str allow\n")
        })
        .says("a.yaml:2:17: invalid YAML: YAML tags (`!!str`) are not supported in policies"),
        case("null tag on a user", |d| {
            put(d, "a.yaml", "rules:\n  - name: r\n    users: [!!null root]\n    allow: [{to: 10.0.0.0/8}]\n")
        })
        .says("YAML tags (`!!null`) are not supported in policies"),
        case("empty proto", |d| put(d, "a.yaml", rule("r", "    allow: [{to: 10.0.0.0/8, proto: []}]\n")))
            .says("a.yaml:4:37: `proto` is empty"),
        case("rule name with a control character", |d| {
            put(d, "a.yaml", rule("\"a\\tb\"", "    allow: [{to: 10.0.0.0/8}]\n"))
        })
        .says("invalid rule name `a\\tb`: it holds a control character"),
        case("rule name only spaces", |d| put(d, "a.yaml", rule("\"  \"", "    allow: [{to: 10.0.0.0/8}]\n")))
            .says("invalid rule name `  `: it is blank"),
        case("rule names differing in trailing space", |d| {
            put(d, "a.yaml", format!("{}  - name: \"ops \"\n    users: [\"*\"]\n    allow: [{{to: 10.0.0.0/8}}]\n", rule("ops", "    allow: [{to: 10.0.0.0/8}]\n")))
        })
        .says("invalid rule name `ops `: it begins or ends with white space"),
        // --- Numbers at the edges.
        case("uid 4294967295", |d| {
            put(d, "a.yaml", "rules:\n  - name: r\n    users: [4294967295]\n    allow: [{to: 10.0.0.0/8}]\n")
        })
        .says("a.yaml:3:13: invalid uid `4294967295`"),
        case("port with a sign", |d| put(d, "a.yaml", rule("r", "    allow: [{to: 10.0.0.0/8, ports: [\"+22\"]}]\n")))
            .says("invalid port `+22`"),
        case("prefix length with a leading zero", |d| put(d, "a.yaml", rule("r", "    allow: [{to: 10.0.0.0/08}]\n")))
            .says("invalid CIDR `10.0.0.0/08`"),
        case("offset beyond 23:59", |d| {
            put(d, "a.yaml", rule("r", "    allow: [{to: 10.0.0.0/8}]\n    expires: 2027-01-01T00:00:00+25:00\n"))
        })
        .says("invalid `expires` `2027-01-01T00:00:00+25:00`: the offset is out of range"),
        case("expires beyond the kernel clock", |d| {
            put(d, "a.yaml", rule("r", "    allow: [{to: 10.0.0.0/8}]\n    expires: 9999-12-31T23:59:59Z\n"))
        })
        .says("invalid `expires` `9999-12-31T23:59:59Z`: out of range")
        .says("between 1970-01-01T00:00:00Z and 2554-07-21T23:34:33Z"),
        // --- Capacity: more rules than the former 16,384-rule cap compile (issue 19); the
        // rule table is now bounded by the total size of the files alone.
        case("more rules than the former rule cap", |d| {
            for f in 0..2 {
                let mut s = String::from("rules:\n");
                for i in 0..8200 {
                    s.push_str(&format!("  - name: r{f}-{i}\n    users: [\"*\"]\n    allow: [{{to: 10.0.0.0/8}}]\n"));
                }
                put(d, &format!("{f}.yaml"), s);
            }
        })
        .code(0)
        .never("more than the kernel map holds"),
        // --- Bounded work.
        case("suggestions stay cheap", |d| {
            // 400 KB: thousands of zones and thousands of references to unknown ones.
            let mut s = String::from("zones:\n");
            for i in 0..6000 {
                s.push_str(&format!("  zone-number-{i}: [10.0.0.0/8]\n"));
            }
            s.push_str("rules:\n  - name: r\n    users: [\"*\"]\n    allow:\n");
            for i in 0..6000 {
                s.push_str(&format!("      - {{to: zone-numbr-{i}}}\n"));
            }
            put(d, "a.yaml", s);
        })
        .says("did you mean `zone-number-0`?")
        .says("more errors not shown (at most 1000 are)"),
        case("total size", |d| {
            for i in 0..17 {
                put(d, &format!("{i}.yaml"), vec![b'#'; 1_000_000]);
            }
        })
        .says("the policy files hold more than 16777216 bytes in total, the limit"),
        case("file count", |d| {
            for i in 0..1025 {
                put(d, &format!("{i:04}.yaml"), "");
            }
        })
        .says("more than 1024 policy files, the limit"),
        case("memory stays a small multiple of the input", |d| {
            // Eight files of a million one-character scalars each: the most tree per byte.
            for i in 0..8 {
                let mut s = format!("zones:\n  z{i}: [");
                while s.len() < 1_040_000 {
                    s.push_str("a,");
                }
                s.push_str("a]\n");
                put(d, &format!("{i}.yaml"), s);
            }
        })
        .says("0.yaml:2:8: invalid address `a`")
        .says("more errors not shown"),
        // --- check answers as the kernel does.
        case("listen on port 0", |d| put(d, "a.yaml", GRANT_ALL))
            .args(&["check", "{dir}", "0", "listen:0"])
            .code(0)
            .says("port 0 asks the kernel for an ephemeral port: binding it is always allowed"),
        case("check before 1970", |d| put(d, "a.yaml", GRANT_ALL))
            .args(&["check", "{dir}", "0", "198.51.100.7:22", "--at", "1969-12-31T23:59:59Z"])
            .code(2)
            .says("invalid time `1969-12-31T23:59:59Z`: out of range"),
        case("check after 2554", |d| put(d, "a.yaml", GRANT_ALL))
            .args(&["check", "{dir}", "0", "198.51.100.7:22", "--at", "2600-01-01T00:00:00Z"])
            .code(2)
            .says("invalid time `2600-01-01T00:00:00Z`: out of range"),
        case("check at the last moment", |d| put(d, "a.yaml", GRANT_ALL))
            .args(&["check", "{dir}", "0", "198.51.100.7:22", "--at", "2554-07-21T23:34:33Z"])
            .code(0)
            .says("allow: uid 0 → 198.51.100.7:22/tcp at 2554-07-21T23:34:33Z"),
    ];
    // Each case is also checked never to quote anything it should not.
    for c in &mut v {
        c.never.dedup();
    }
    v
}

fn run(bins: &Bins, c: &Case, dir: &Path) -> (i32, String) {
    let args: Vec<String> = c
        .args
        .iter()
        .map(|a| a.replace("{dir}", &dir.display().to_string()))
        .collect();
    let mut cmd = Command::new("timeout");
    cmd.args(["--kill-after=5", SECONDS, "prlimit"])
        .arg(format!("--as={ADDRESS_SPACE}"))
        .arg("--");
    if c.as_nobody {
        cmd.args([
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
        ]);
    }
    let out = cmd
        .arg(&bins.jumpctl)
        .args(&args)
        .output()
        .expect("run jumpctl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn hostile_and_careless_policies_get_clear_errors_within_bounds() {
    if !privileged("hostile_and_careless_policies_get_clear_errors_within_bounds") {
        return;
    }
    let bins = Bins::from_env();
    let mut failures = Vec::new();
    for c in cases() {
        let root = tempfile::tempdir().unwrap();
        // Traversable by `nobody` for the cases run as nobody.
        std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let dir: PathBuf = root.path().join("policies");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        (c.setup)(&dir);
        let started = std::time::Instant::now();
        let (code, text) = run(&bins, &c, &dir);
        let took = started.elapsed();
        let mut why = Vec::new();
        if code == 124 || code == 137 {
            why.push(format!("timed out after {SECONDS} s"));
        } else if code != c.code {
            why.push(format!("exit {code}, expected {}", c.code));
        }
        for s in &c.says {
            if !text.contains(s.as_str()) {
                why.push(format!("does not say `{s}`"));
            }
        }
        for s in &c.never {
            if text.contains(s) {
                why.push(format!("says `{s}`"));
            }
        }
        if text.contains("memory allocation") || text.contains("out of memory") {
            why.push(format!(
                "ran out of its {ADDRESS_SPACE} bytes of address space"
            ));
        }
        eprintln!("case `{}`: exit {code} in {took:?}", c.name);
        if !why.is_empty() {
            let shown: String = text.chars().take(1500).collect();
            failures.push(format!("case `{}`: {}\n{shown}", c.name, why.join("; ")));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
