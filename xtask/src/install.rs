//! `cargo xtask install [--prefix /usr/local] [--destdir DIR]`: puts a built jump on a host —
//! the same files as the Debian package (`dist::stage`), with `/usr` at PREFIX.
//!
//! An admin's config and policies are never overwritten: an existing `/etc/jump/jumpd.yaml` is
//! kept, and the example policy goes in only when the policy directory has no files. Everything
//! lands under DESTDIR when given (for packaging, and for the tests below); nothing is enabled
//! or started.

use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::Context;

use crate::dist::{self, File};

pub struct Layout {
    pub prefix: PathBuf,
    pub destdir: PathBuf,
}

/// Copies the staged files (`dist::stage` into `staged`) under `layout.destdir`.
pub fn install(staged: &Path, files: &[File], layout: &Layout) -> anyhow::Result<()> {
    for f in files {
        let to = dist::under(&layout.destdir, &f.path);
        if f.conffile && to.exists() {
            eprintln!("install: keeping the existing {}", to.display());
            continue;
        }
        let dir = to.parent().expect("a file has a directory");
        if f.conffile && dir.ends_with("etc/jump/policies") && has_files(dir) {
            eprintln!(
                "install: keeping the existing policies in {} (no example added)",
                dir.display()
            );
            continue;
        }
        fs::create_dir_all(dir).with_context(|| format!("failed to create `{}`", dir.display()))?;
        let from = dist::under(staged, &f.path);
        // Copy, then rename: a running jumpd's binary is replaced, not written into.
        let tmp = to.with_extension("jump-install-new");
        fs::copy(&from, &tmp).with_context(|| {
            format!("failed to copy `{}` to `{}`", from.display(), tmp.display())
        })?;
        fs::rename(&tmp, &to)?;
        eprintln!("install: {}", to.display());
    }
    Ok(())
}

fn has_files(dir: &Path) -> bool {
    fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some())
}

/// After installing onto this host: create the admin group the way the package's postinst
/// does, and say what is left to the admin.
pub fn finish(layout: &Layout) {
    if layout.destdir != Path::new("/") {
        return;
    }
    let sysusers = layout.prefix.join("lib/sysusers.d/jump.conf");
    match std::process::Command::new("systemd-sysusers")
        .arg(&sysusers)
        .status()
    {
        Ok(s) if s.success() => {}
        _ => eprintln!(
            "install: could not run `systemd-sysusers {}`: run `groupadd --system jump-admin`",
            sysusers.display()
        ),
    }
    eprintln!(
        "install: done. Next: review /etc/jump/jumpd.yaml and /etc/jump/policies, `jumpctl validate /etc/jump/policies`, then `systemctl daemon-reload && systemctl enable --now jumpd`"
    );
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::dist::{stage, unit_text, Prefix};

    /// Stand-ins for the binaries and the generated pages and completions.
    fn fake_inputs(dir: &Path) -> (PathBuf, PathBuf) {
        let bin = dir.join("bin");
        let gen = dir.join("generated");
        for d in [&bin, &gen.join("man"), &gen.join("completions")] {
            fs::create_dir_all(d).unwrap();
        }
        for b in ["jumpd", "jumpctl"] {
            fs::write(bin.join(b), "#!/bin/sh\nexit 0\n").unwrap();
        }
        for page in [
            "jumpd.8",
            "jumpctl.1",
            "jumpctl-validate.1",
            "jump-policy.5",
        ] {
            fs::write(gen.join("man").join(page), ".TH X 1\n").unwrap();
        }
        for c in ["jumpctl", "_jumpctl", "jumpctl.fish"] {
            fs::write(gen.join("completions").join(c), "# completion\n").unwrap();
        }
        (bin, gen)
    }

    #[test]
    fn installs_the_packages_files_at_the_prefix_and_keeps_an_admins_files() {
        let root = crate::workspace_root();
        let t = tempfile::tempdir().unwrap();
        let (bin, gen) = fake_inputs(t.path());
        let staged = t.path().join("staged");
        let layout = Layout {
            prefix: "/usr/local".into(),
            destdir: t.path().join("dest"),
        };
        let files = stage(&root, &bin, &gen, &Prefix(layout.prefix.clone()), &staged).unwrap();
        install(&staged, &files, &layout).unwrap();
        let d = &layout.destdir;
        for f in &files {
            assert!(
                dist::under(d, &f.path).is_file(),
                "{} is installed",
                f.path.display()
            );
        }
        for f in [
            "usr/local/sbin/jumpd",
            "usr/local/bin/jumpctl",
            "usr/local/lib/systemd/system/jumpd.service",
            "usr/local/lib/sysusers.d/jump.conf",
            "etc/jump/jumpd.yaml",
            "etc/jump/policies/00-example.yaml",
            "usr/local/share/jump/schema.json",
            "usr/local/share/man/man8/jumpd.8.gz",
            "usr/local/share/man/man1/jumpctl-validate.1.gz",
            "usr/local/share/man/man5/jump-policy.5.gz",
            "usr/local/share/bash-completion/completions/jumpctl",
            "usr/local/share/zsh/site-functions/_jumpctl",
            "usr/local/share/fish/vendor_completions.d/jumpctl.fish",
            "usr/local/share/doc/jump/README.md",
        ] {
            assert!(d.join(f).is_file(), "{f} is installed");
        }
        let mode = |f: &str| fs::metadata(d.join(f)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode("usr/local/sbin/jumpd"), 0o755);
        assert_eq!(mode("etc/jump/jumpd.yaml"), 0o644);
        let conffiles: Vec<_> = files
            .iter()
            .filter(|f| f.conffile)
            .map(|f| f.path.clone())
            .collect();
        assert_eq!(
            conffiles,
            [
                PathBuf::from("/etc/jump/jumpd.yaml"),
                PathBuf::from("/etc/jump/policies/00-example.yaml")
            ]
        );

        // The admin's edits, and a policy directory of their own, survive a second install.
        fs::write(d.join("etc/jump/jumpd.yaml"), "cgroup: /mine\n").unwrap();
        fs::remove_file(d.join("etc/jump/policies/00-example.yaml")).unwrap();
        fs::write(d.join("etc/jump/policies/10-mine.yaml"), "# mine\n").unwrap();
        install(&staged, &files, &layout).unwrap();
        assert_eq!(
            fs::read_to_string(d.join("etc/jump/jumpd.yaml")).unwrap(),
            "cgroup: /mine\n",
            "an existing config is kept"
        );
        assert!(
            !d.join("etc/jump/policies/00-example.yaml").exists(),
            "no example is added to a policy directory that has policies"
        );
    }

    #[test]
    fn the_unit_points_at_the_prefix_and_systemd_analyze_verifies_it() {
        let root = crate::workspace_root();
        let unit = fs::read_to_string(root.join("contrib/systemd/jumpd.service")).unwrap();
        assert!(
            unit.contains("ExecStart=/usr/sbin/jumpd --config"),
            "the unit as packaged"
        );
        let dest = tempfile::tempdir().unwrap();
        // The prefix is the tempdir itself, so ExecStart names an executable that exists.
        let text = unit_text(&unit, &Prefix(dest.path().into()));
        let exec = format!("ExecStart={}/sbin/jumpd --config", dest.path().display());
        assert!(text.contains(&exec), "{text}");
        for key in [
            "Type=notify",
            "Before=sshd.service ssh.service",
            "Restart=on-failure",
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "ReadWritePaths=/sys/fs/bpf",
            "StateDirectory=jump",
            "WatchdogSec=",
            "CapabilityBoundingSet=",
            "Documentation=man:jumpd(8) man:jumpctl(1) man:jump-policy(5)",
        ] {
            assert!(text.contains(key), "the unit has `{key}`");
        }
        let Ok(out) = std::process::Command::new("systemd-analyze")
            .arg("--version")
            .output()
        else {
            eprintln!("SKIPPED systemd-analyze verify: systemd-analyze is not installed");
            return;
        };
        assert!(out.status.success());
        fs::create_dir_all(dest.path().join("sbin")).unwrap();
        fs::write(dest.path().join("sbin/jumpd"), "#!/bin/sh\nexit 0\n").unwrap();
        fs::set_permissions(
            dest.path().join("sbin/jumpd"),
            fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        let unit_path = dest.path().join("jumpd.service");
        fs::write(&unit_path, text).unwrap();
        let out = std::process::Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(&unit_path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        // Lines about other units (sshd.service not installed here) are the host's business.
        let ours: Vec<&str> = stderr
            .lines()
            .filter(|l| l.contains("jumpd.service"))
            .filter(|l| !l.contains("Failed to create") && !l.contains("not found"))
            .collect();
        assert!(
            out.status.success() || ours.is_empty(),
            "systemd-analyze verify: {stderr}"
        );
        assert!(
            ours.is_empty(),
            "systemd-analyze verify complains: {ours:#?}"
        );
    }
}
