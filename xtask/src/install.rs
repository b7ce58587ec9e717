//! `cargo xtask install [--prefix /usr/local] [--destdir DIR]`: puts a built jump on a host.
//!
//! | what                         | where                                               |
//! |------------------------------|-----------------------------------------------------|
//! | jumpd                        | `PREFIX/sbin/jumpd`                                 |
//! | jumpctl                      | `PREFIX/bin/jumpctl`                                |
//! | systemd unit                 | `/etc/systemd/system/jumpd.service` (ExecStart at PREFIX) |
//! | example config               | `/etc/jump/jumpd.yaml`, unless one exists           |
//! | example policies             | `/etc/jump/policies/`, unless the directory has files |
//! | README, policy docs          | `PREFIX/share/doc/jump/`                            |
//!
//! An admin's config and policies are never overwritten. Everything lands under `DESTDIR` when
//! given (for packaging, and for the test below); nothing is enabled or started.

use std::{
    fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

use anyhow::Context;

pub struct Layout {
    pub prefix: PathBuf,
    pub destdir: PathBuf,
}

impl Layout {
    fn at(&self, path: &Path) -> PathBuf {
        self.destdir.join(path.strip_prefix("/").unwrap_or(path))
    }
    fn sbin(&self) -> PathBuf {
        self.prefix.join("sbin")
    }
}

fn copy(from: &Path, to: &Path, mode: u32) -> anyhow::Result<()> {
    if let Some(dir) = to.parent() {
        fs::create_dir_all(dir).with_context(|| format!("failed to create `{}`", dir.display()))?;
    }
    fs::copy(from, to)
        .with_context(|| format!("failed to copy `{}` to `{}`", from.display(), to.display()))?;
    fs::set_permissions(to, fs::Permissions::from_mode(mode))?;
    eprintln!("install: {}", to.display());
    Ok(())
}

/// The unit with its ExecStart pointing at PREFIX/sbin/jumpd.
pub fn unit_text(unit: &str, layout: &Layout) -> String {
    unit.replace(
        "/usr/local/sbin/jumpd",
        &layout.sbin().join("jumpd").display().to_string(),
    )
    .replace(
        "/usr/local/share/doc/jump",
        &layout.prefix.join("share/doc/jump").display().to_string(),
    )
}

/// Installs from `root` (the workspace) and `bin` (the release binaries).
pub fn install(root: &Path, bin: &Path, layout: &Layout) -> anyhow::Result<()> {
    copy(
        &bin.join("jumpd"),
        &layout.at(&layout.sbin().join("jumpd")),
        0o755,
    )?;
    copy(
        &bin.join("jumpctl"),
        &layout.at(&layout.prefix.join("bin/jumpctl")),
        0o755,
    )?;
    let unit = fs::read_to_string(root.join("contrib/systemd/jumpd.service"))?;
    let unit_path = layout.at(Path::new("/etc/systemd/system/jumpd.service"));
    fs::create_dir_all(unit_path.parent().expect("has a parent"))?;
    fs::write(&unit_path, unit_text(&unit, layout))?;
    fs::set_permissions(&unit_path, fs::Permissions::from_mode(0o644))?;
    eprintln!("install: {}", unit_path.display());

    let etc = layout.at(Path::new("/etc/jump"));
    let config = etc.join("jumpd.yaml");
    if config.exists() {
        eprintln!("install: keeping the existing {}", config.display());
    } else {
        copy(&root.join("contrib/jumpd.yaml"), &config, 0o640)?;
    }
    let policies = etc.join("policies");
    let has_files = fs::read_dir(&policies).is_ok_and(|mut d| d.next().is_some());
    if has_files {
        eprintln!(
            "install: keeping the existing policies in {}",
            policies.display()
        );
    } else {
        for entry in fs::read_dir(root.join("policies"))? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "yaml") {
                copy(
                    &path,
                    &policies.join(path.file_name().expect("a file")),
                    0o640,
                )?;
            }
        }
    }
    let doc = layout.at(&layout.prefix.join("share/doc/jump"));
    copy(&root.join("README.md"), &doc.join("README.md"), 0o644)?;
    copy(
        &root.join("policies/README.md"),
        &doc.join("policies.md"),
        0o644,
    )?;
    copy(
        &root.join("contrib/systemd/ssh-requires-jumpd.conf"),
        &doc.join("ssh-requires-jumpd.conf"),
        0o644,
    )?;
    eprintln!(
        "install: done. Next: `groupadd --system jump-admin`, review /etc/jump/jumpd.yaml, then `systemctl daemon-reload && systemctl enable --now jumpd`"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_bins(dir: &Path) {
        for b in ["jumpd", "jumpctl"] {
            fs::write(dir.join(b), "#!/bin/sh\nexit 0\n").unwrap();
        }
    }

    #[test]
    fn installs_everything_into_a_destdir_and_keeps_an_admins_files() {
        let root = crate::workspace_root();
        let bin = tempfile::tempdir().unwrap();
        fake_bins(bin.path());
        let dest = tempfile::tempdir().unwrap();
        let layout = Layout {
            prefix: "/usr/local".into(),
            destdir: dest.path().into(),
        };
        install(&root, bin.path(), &layout).unwrap();
        let d = dest.path();
        for f in [
            "usr/local/sbin/jumpd",
            "usr/local/bin/jumpctl",
            "etc/systemd/system/jumpd.service",
            "etc/jump/jumpd.yaml",
            "etc/jump/policies/00-defaults.yaml",
            "etc/jump/policies/20-access.yaml",
            "usr/local/share/doc/jump/README.md",
        ] {
            assert!(d.join(f).is_file(), "{f} is installed");
        }
        let mode = fs::metadata(d.join("usr/local/sbin/jumpd"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);
        assert!(
            !d.join("etc/jump/policies/README.md").exists(),
            "only policy files go into the policy directory"
        );

        fs::write(d.join("etc/jump/jumpd.yaml"), "cgroup: /mine\n").unwrap();
        fs::write(d.join("etc/jump/policies/00-defaults.yaml"), "# mine\n").unwrap();
        install(&root, bin.path(), &layout).unwrap();
        assert_eq!(
            fs::read_to_string(d.join("etc/jump/jumpd.yaml")).unwrap(),
            "cgroup: /mine\n",
            "an existing config is kept"
        );
        assert_eq!(
            fs::read_to_string(d.join("etc/jump/policies/00-defaults.yaml")).unwrap(),
            "# mine\n",
            "existing policies are kept"
        );
    }

    #[test]
    fn the_unit_points_at_the_prefix_and_systemd_analyze_verifies_it() {
        let root = crate::workspace_root();
        let unit = fs::read_to_string(root.join("contrib/systemd/jumpd.service")).unwrap();
        let bin = tempfile::tempdir().unwrap();
        fake_bins(bin.path());
        let dest = tempfile::tempdir().unwrap();
        // The prefix is the destdir itself, so ExecStart names an executable that exists.
        let layout = Layout {
            prefix: dest.path().into(),
            destdir: "/".into(),
        };
        let text = unit_text(&unit, &layout);
        let exec = format!("ExecStart={}/sbin/jumpd --config", dest.path().display());
        assert!(text.contains(&exec), "{text}");
        for key in [
            "Type=notify",
            "Before=sshd.service ssh.service",
            "Restart=on-failure",
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "ReadWritePaths=/sys/fs/bpf",
            "WatchdogSec=",
            "CapabilityBoundingSet=",
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
        copy(
            &bin.path().join("jumpd"),
            &dest.path().join("sbin/jumpd"),
            0o755,
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
