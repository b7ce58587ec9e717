//! The Debian package as an admin gets it (`cargo xtask deb`; `cargo xtask test` builds it and
//! names it in `JUMP_DEB`): its file list, control data, conffiles and maintainer scripts read
//! back with `dpkg-deb`, then its contents unpacked and used — the packaged jumpctl validates the
//! packaged example policy against a host that has only root, its completions and schema are
//! what the binary prints, its manual pages render, its sysusers entry creates the group.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

/// The package under test, or `None` (a skip, or a failure under `cargo xtask test`).
fn deb(test: &str) -> Option<PathBuf> {
    match std::env::var_os("JUMP_DEB").map(PathBuf::from) {
        Some(p) if p.is_file() => Some(p),
        other => {
            let msg = format!(
                "SKIPPED {test}: no package in JUMP_DEB ({other:?}); run `cargo xtask deb`"
            );
            if std::env::var_os("JUMP_TESTS_REQUIRED").is_some() {
                panic!("{msg}");
            }
            eprintln!("{msg}");
            None
        }
    }
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

fn dpkg_deb(args: &[&str], deb: &Path) -> String {
    run(Command::new("dpkg-deb").args(args).arg(deb))
}

/// `./usr/sbin/jumpd` → (`-rwxr-xr-x`, `0/0`), from `dpkg-deb -c`.
fn listing(deb: &Path) -> Vec<(String, String, String)> {
    dpkg_deb(&["-c"], deb)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[5].to_string(), f[0].to_string(), f[1].to_string())
        })
        .collect()
}

#[test]
fn the_package_holds_every_file_where_debian_expects_it_owned_by_root() {
    let Some(deb) = deb("the_package_holds_every_file_where_debian_expects_it_owned_by_root")
    else {
        return;
    };
    let files = listing(&deb);
    let mode = |path: &str| {
        files
            .iter()
            .find(|(p, _, _)| p == path)
            .map(|(_, m, _)| m.as_str())
            .unwrap_or_else(|| panic!("the package has {path}: {files:#?}"))
    };
    assert_eq!(mode("./usr/sbin/jumpd"), "-rwxr-xr-x");
    assert_eq!(mode("./usr/bin/jumpctl"), "-rwxr-xr-x");
    for f in [
        "./lib/systemd/system/jumpd.service",
        "./usr/lib/sysusers.d/jump.conf",
        "./etc/jump/jumpd.yaml",
        "./etc/jump/policies/00-example.yaml",
        "./usr/share/jump/schema.json",
        "./usr/share/man/man8/jumpd.8.gz",
        "./usr/share/man/man1/jumpctl.1.gz",
        "./usr/share/man/man1/jumpctl-validate.1.gz",
        "./usr/share/man/man1/jumpctl-completions.1.gz",
        "./usr/share/man/man5/jump-policy.5.gz",
        "./usr/share/bash-completion/completions/jumpctl",
        "./usr/share/zsh/vendor-completions/_jumpctl",
        "./usr/share/fish/vendor_completions.d/jumpctl.fish",
        "./usr/share/doc/jump/copyright",
        "./usr/share/doc/jump/README.md",
    ] {
        assert_eq!(mode(f), "-rw-r--r--", "{f} is a plain file, not executable");
    }
    for (path, _, owner) in &files {
        assert_eq!(owner, "0/0", "{path} belongs to root");
        assert!(
            !path.starts_with("./usr/local") && !path.starts_with("./etc/systemd"),
            "{path}: /usr/local and /etc/systemd are the admin's, never a package's"
        );
    }
}

#[test]
fn the_control_data_names_the_dependencies_and_exactly_the_two_conffiles() {
    let Some(deb) = deb("the_control_data_names_the_dependencies_and_exactly_the_two_conffiles")
    else {
        return;
    };
    assert_eq!(
        dpkg_deb(&["-f"], &deb).lines().next(),
        Some("Package: jump")
    );
    let depends = run(Command::new("dpkg-deb").arg("-f").arg(&deb).arg("Depends"));
    assert!(
        depends.contains("libc6 (>="),
        "the binaries' shared libraries (dpkg-shlibdeps): {depends}"
    );
    assert!(
        depends.contains("systemd | systemd-standalone-sysusers | systemd-sysusers"),
        "postinst runs systemd-sysusers: {depends}"
    );
    assert_eq!(
        dpkg_deb(&["-I"], &deb.clone())
            .lines()
            .filter(|l| l.contains("conffiles"))
            .count(),
        1,
        "the package has a conffiles member"
    );
    let conffiles = run(Command::new("dpkg-deb")
        .arg("-I")
        .arg(&deb)
        .arg("conffiles"));
    assert_eq!(
        conffiles.lines().collect::<Vec<_>>(),
        ["/etc/jump/jumpd.yaml", "/etc/jump/policies/00-example.yaml"],
        "the config and the example policy are the admin's once installed"
    );
}

#[test]
fn installing_enables_and_starts_nothing_and_creates_the_admin_group() {
    let Some(deb) = deb("installing_enables_and_starts_nothing_and_creates_the_admin_group") else {
        return;
    };
    let control = tempfile::tempdir().expect("tempdir");
    run(Command::new("dpkg-deb")
        .arg("-e")
        .arg(&deb)
        .arg(control.path()));
    let mut scripts = Vec::new();
    for name in ["preinst", "postinst", "prerm", "postrm"] {
        if let Ok(text) = std::fs::read_to_string(control.path().join(name)) {
            let commands = text.lines().map(str::trim).filter(|l| !l.starts_with('#'));
            for line in commands {
                for word in [
                    "deb-systemd-invoke",
                    "deb-systemd-helper",
                    "invoke-rc.d",
                    "update-rc.d",
                ] {
                    assert!(!line.contains(word), "{name} runs `{line}`");
                }
                assert!(
                    !line.contains("systemctl")
                        || line.contains("systemctl --system daemon-reload"),
                    "{name} may only make systemd re-read units, not `{line}`"
                );
            }
            scripts.push(name);
        }
    }
    let postinst = std::fs::read_to_string(control.path().join("postinst")).expect("postinst");
    assert!(
        postinst.contains("systemd-sysusers jump.conf"),
        "{postinst}"
    );
    assert_eq!(scripts, ["postinst", "postrm"]);

    // The sysusers entry, applied to an empty root the way postinst applies it to the host.
    let root = tempfile::tempdir().expect("tempdir");
    run(Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(root.path()));
    run(Command::new("systemd-sysusers")
        .arg("--root")
        .arg(root.path())
        .arg(root.path().join("usr/lib/sysusers.d/jump.conf")));
    let group = std::fs::read_to_string(root.path().join("etc/group")).expect("etc/group");
    assert!(
        group.lines().any(|l| l.starts_with("jump-admin:x:")),
        "systemd-sysusers created the group: {group}"
    );
}

#[test]
fn the_unpacked_package_works_as_documented() {
    let Some(deb) = deb("the_unpacked_package_works_as_documented") else {
        return;
    };
    let root = tempfile::tempdir().expect("tempdir");
    let r = root.path();
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(r));
    let jumpctl = r.join("usr/bin/jumpctl");

    // Valid on any host: checked against a host whose only account is root.
    let accounts = tempfile::tempdir().expect("tempdir");
    let passwd = accounts.path().join("passwd");
    let group = accounts.path().join("group");
    std::fs::write(&passwd, "root:x:0:0:root:/root:/bin/sh\n").expect("passwd");
    std::fs::write(&group, "root:x:0:\n").expect("group");
    let out = run(Command::new(&jumpctl)
        .arg("validate")
        .arg(r.join("etc/jump/policies"))
        .arg("--passwd")
        .arg(&passwd)
        .arg("--group")
        .arg(&group));
    assert!(out.contains("valid policy"), "{out}");

    let version = run(Command::new(r.join("usr/sbin/jumpd")).arg("--version"));
    assert!(version.starts_with("jumpd "), "{version}");

    for (shell, path) in [
        ("bash", "usr/share/bash-completion/completions/jumpctl"),
        ("zsh", "usr/share/zsh/vendor-completions/_jumpctl"),
        ("fish", "usr/share/fish/vendor_completions.d/jumpctl.fish"),
    ] {
        let printed = run(Command::new(&jumpctl).args(["completions", shell]));
        let shipped = std::fs::read_to_string(r.join(path)).expect("completion file");
        assert_eq!(printed, shipped, "the {shell} completions are jumpctl's");
    }
    let schema = run(Command::new(&jumpctl).arg("schema"));
    assert_eq!(
        schema,
        std::fs::read_to_string(r.join("usr/share/jump/schema.json")).expect("schema"),
        "the shipped schema is the one jumpctl prints"
    );

    // Every page the unit's Documentation= names is shipped, and renders.
    let unit = std::fs::read_to_string(r.join("lib/systemd/system/jumpd.service")).expect("unit");
    assert!(unit.contains("\nExecStart=/usr/sbin/jumpd --config /etc/jump/jumpd.yaml\n"));
    let docs = unit
        .lines()
        .find_map(|l| l.strip_prefix("Documentation="))
        .expect("Documentation=");
    for (page, expect) in [
        ("jumpd(8)", "--policy-dir"),
        ("jumpctl(1)", "jumpctl-validate(1)"),
        ("jump-policy(5)", "Semantics"),
    ] {
        assert!(docs.contains(&format!("man:{page}")), "{docs}");
        let (name, section) = page.trim_end_matches(')').split_once('(').expect("name(n)");
        let file = r.join(format!("usr/share/man/man{section}/{name}.{section}.gz"));
        let text = run(Command::new("man")
            .arg("-l")
            .arg(&file)
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "100"));
        assert!(
            text.contains(expect),
            "{page} renders with `{expect}`:\n{text}"
        );
    }
}
