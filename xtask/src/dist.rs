//! What a jump installation is, file by file. One list, staged as a tree: `cargo xtask deb`
//! packages the tree (jump-userspace's `[package.metadata.deb]` assets are globs over it) and
//! `cargo xtask install` copies it onto a host, so both install the same set.
//!
//! | what                                   | where (`install` puts `/usr` at its `--prefix`)       |
//! |----------------------------------------|-------------------------------------------------------|
//! | jumpd, jumpctl                         | `/usr/sbin/jumpd`, `/usr/bin/jumpctl`                 |
//! | systemd unit                           | `/lib/systemd/system/jumpd.service` (`/etc` is the admin's) |
//! | the `jump-admin` group                 | `/usr/lib/sysusers.d/jump.conf`                       |
//! | config, example policy (conffiles)     | `/etc/jump/jumpd.yaml`, `/etc/jump/policies/00-example.yaml` |
//! | JSON Schema of policy files            | `/usr/share/jump/schema.json`                         |
//! | jumpd(8), jumpctl(1) + one per subcommand, jump-policy(5) | `/usr/share/man/man{8,1,5}/*.gz`   |
//! | bash, zsh, fish completions            | `/usr/share/{bash-completion/completions,zsh/vendor-completions,fish/vendor_completions.d}` |
//! | README, policy docs, unit drop-ins     | `/usr/share/doc/jump/`                                |
//!
//! The manual pages and completions are generated (`generate`): jumpd(8) and jumpctl(1) from
//! the clap definitions by `jump-userspace/examples/manuals.rs`, jump-policy(5) from
//! policies/README.md by go-md2man, the completions by `jumpctl completions SHELL`.

use std::{
    fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context};

use crate::build::{sh, target_dir, Bins};

/// Where the files under `/usr` go: `/usr` for the package, `--prefix` for `install`.
pub struct Prefix(pub PathBuf);

impl Prefix {
    fn is_usr(&self) -> bool {
        self.0 == Path::new("/usr")
    }
    /// Debian's place for packaged units is /lib/systemd/system; systemd also reads
    /// /usr/local/lib/systemd/system, which is where `install` puts it by default.
    fn unit_dir(&self) -> PathBuf {
        if self.is_usr() {
            "/lib/systemd/system".into()
        } else {
            self.0.join("lib/systemd/system")
        }
    }
    /// zsh's fpath has Debian's vendor directory under /usr and `site-functions` elsewhere.
    fn zsh_dir(&self) -> PathBuf {
        if self.is_usr() {
            "/usr/share/zsh/vendor-completions".into()
        } else {
            self.0.join("share/zsh/site-functions")
        }
    }
}

/// One file of the installation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct File {
    /// Absolute, on the target host.
    pub path: PathBuf,
    pub mode: u32,
    /// The admin's once installed: a dpkg conffile (everything under /etc), kept by `install`
    /// when it exists.
    pub conffile: bool,
}

enum Source {
    Copy(PathBuf),
    Text(String),
    /// Manual pages, compressed as Debian policy asks (`gzip -9n`: no name or time stamp).
    Gzip(PathBuf),
}

/// Builds and runs the generators into `out`: `out/man/*.{1,5,8}`, `out/completions/*`.
pub fn generate(root: &Path, bins: &Bins, out: &Path) -> anyhow::Result<()> {
    if out.exists() {
        fs::remove_dir_all(out).with_context(|| format!("failed to clear `{}`", out.display()))?;
    }
    let man = out.join("man");
    let completions = out.join("completions");
    fs::create_dir_all(&man)?;
    fs::create_dir_all(&completions)?;
    eprintln!("dist: manual pages and completions");
    // `build::run` built the generator with the binaries.
    sh(Command::new(target_dir().join("release/examples/manuals")).arg(&man))?;

    let readme = fs::read_to_string(root.join("policies/README.md"))?;
    let page = man.join("jump-policy.5");
    let mut md2man = Command::new("go-md2man")
        .arg("-out")
        .arg(&page)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .context("failed to start go-md2man (`cargo xtask setup` installs it)")?;
    std::io::Write::write_all(
        md2man.stdin.as_mut().expect("piped"),
        policy_page(&readme).as_bytes(),
    )?;
    drop(md2man.stdin.take());
    if !md2man.wait()?.success() {
        bail!("go-md2man failed on policies/README.md");
    }

    for (shell, name) in [
        ("bash", "jumpctl"),
        ("zsh", "_jumpctl"),
        ("fish", "jumpctl.fish"),
    ] {
        let o = Command::new(&bins.jumpctl)
            .args(["completions", shell])
            .output()
            .with_context(|| format!("failed to run `{}`", bins.jumpctl.display()))?;
        if !o.status.success() || o.stdout.is_empty() {
            bail!(
                "`jumpctl completions {shell}` failed: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        fs::write(completions.join(name), o.stdout)?;
    }
    Ok(())
}

/// jump-policy(5) in markdown: the "Policy format" part of policies/README.md (everything
/// before its `## jumpctl` section, without its own heading) under a title block and NAME.
pub fn policy_page(readme: &str) -> String {
    let format = readme.split("\n## jumpctl").next().unwrap_or(readme);
    let body = format
        .strip_prefix("## Policy format\n")
        .unwrap_or(format)
        .trim_start();
    format!(
        "% JUMP-POLICY 5 \"\" \"jump\" \"File Formats Manual\"\n\n# NAME\n\njump-policy - \
         jump's egress policy files (/etc/jump/policies/*.yaml)\n\n# DESCRIPTION\n\n{body}\n\n\
         # SEE ALSO\n\njumpd(8), jumpctl(1)\n"
    )
}

/// The installation's files from the workspace `root`, the release binaries in `bin` and the
/// generated files (`generate`), written under `out` (`out/usr/sbin/jumpd`, …).
pub fn stage(
    root: &Path,
    bin: &Path,
    generated: &Path,
    prefix: &Prefix,
    out: &Path,
) -> anyhow::Result<Vec<File>> {
    let p = &prefix.0;
    let unit = fs::read_to_string(root.join("contrib/systemd/jumpd.service"))?;
    let contrib = root.join("contrib");
    let doc = p.join("share/doc/jump");
    let mut list: Vec<(Source, PathBuf, u32)> = vec![
        (Source::Copy(bin.join("jumpd")), p.join("sbin/jumpd"), 0o755),
        (
            Source::Copy(bin.join("jumpctl")),
            p.join("bin/jumpctl"),
            0o755,
        ),
        (
            Source::Text(unit_text(&unit, prefix)),
            prefix.unit_dir().join("jumpd.service"),
            0o644,
        ),
        (
            Source::Copy(contrib.join("sysusers.d/jump.conf")),
            p.join("lib/sysusers.d/jump.conf"),
            0o644,
        ),
        (
            Source::Copy(contrib.join("jumpd.yaml")),
            "/etc/jump/jumpd.yaml".into(),
            0o644,
        ),
        (
            Source::Copy(contrib.join("policies/00-example.yaml")),
            "/etc/jump/policies/00-example.yaml".into(),
            0o644,
        ),
        (
            Source::Copy(root.join("policies/schema.json")),
            p.join("share/jump/schema.json"),
            0o644,
        ),
        (
            Source::Copy(generated.join("completions/jumpctl")),
            p.join("share/bash-completion/completions/jumpctl"),
            0o644,
        ),
        (
            Source::Copy(generated.join("completions/_jumpctl")),
            prefix.zsh_dir().join("_jumpctl"),
            0o644,
        ),
        (
            Source::Copy(generated.join("completions/jumpctl.fish")),
            p.join("share/fish/vendor_completions.d/jumpctl.fish"),
            0o644,
        ),
        (
            Source::Copy(root.join("README.md")),
            doc.join("README.md"),
            0o644,
        ),
        (
            Source::Copy(root.join("policies/README.md")),
            doc.join("policies.md"),
            0o644,
        ),
        (
            Source::Copy(contrib.join("systemd/ssh-requires-jumpd.conf")),
            doc.join("ssh-requires-jumpd.conf"),
            0o644,
        ),
        (
            Source::Copy(contrib.join("systemd/jumpd-etcd.conf")),
            doc.join("jumpd-etcd.conf"),
            0o644,
        ),
    ];
    let mut pages: Vec<PathBuf> = fs::read_dir(generated.join("man"))
        .with_context(|| format!("no generated manual pages in `{}`", generated.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    pages.sort();
    for page in pages {
        let name = page
            .file_name()
            .expect("a file")
            .to_string_lossy()
            .into_owned();
        let Some((_, section)) = name.rsplit_once('.') else {
            bail!("manual page `{name}` has no section");
        };
        let to = p.join(format!("share/man/man{section}/{name}.gz"));
        list.push((Source::Gzip(page), to, 0o644));
    }

    if out.exists() {
        fs::remove_dir_all(out).with_context(|| format!("failed to clear `{}`", out.display()))?;
    }
    let mut files = Vec::new();
    for (source, path, mode) in list {
        let to = under(out, &path);
        fs::create_dir_all(to.parent().expect("a file has a directory"))?;
        match source {
            Source::Copy(from) => {
                fs::copy(&from, &to).with_context(|| {
                    format!("failed to copy `{}` to `{}`", from.display(), to.display())
                })?;
            }
            Source::Text(text) => fs::write(&to, text)?,
            Source::Gzip(from) => {
                let o = Command::new("gzip")
                    .args(["-9", "-n", "-c"])
                    .arg(&from)
                    .output()
                    .context("failed to run gzip")?;
                if !o.status.success() {
                    bail!("gzip `{}` failed", from.display());
                }
                fs::write(&to, o.stdout)?;
            }
        }
        fs::set_permissions(&to, fs::Permissions::from_mode(mode))?;
        let conffile = path.starts_with("/etc");
        files.push(File {
            path,
            mode,
            conffile,
        });
    }
    Ok(files)
}

/// `path` (absolute) below `root`.
pub fn under(root: &Path, path: &Path) -> PathBuf {
    root.join(path.strip_prefix("/").unwrap_or(path))
}

/// The unit with its ExecStart at PREFIX/sbin/jumpd.
pub fn unit_text(unit: &str, prefix: &Prefix) -> String {
    unit.replace(
        "/usr/sbin/jumpd",
        &prefix.0.join("sbin/jumpd").display().to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_page_is_the_policy_format_part_of_the_policy_docs() {
        let readme =
            "## Policy format\n\nA policy is…\n\n### Semantics\n\nx\n\n## jumpctl\n\nvalidate…\n";
        let page = policy_page(readme);
        assert!(page.starts_with("% JUMP-POLICY 5"), "{page}");
        assert!(page.contains("# DESCRIPTION\n\nA policy is…"), "{page}");
        assert!(page.contains("### Semantics"), "{page}");
        assert!(!page.contains("## Policy format"), "{page}");
        assert!(
            !page.contains("validate…"),
            "jumpctl's part is jumpctl(1)'s: {page}"
        );
    }

    #[test]
    fn the_real_policy_docs_have_the_jumpctl_section_the_page_stops_at() {
        let readme =
            fs::read_to_string(crate::workspace_root().join("policies/README.md")).unwrap();
        assert!(readme.starts_with("## Policy format\n"));
        assert!(readme.contains("\n## jumpctl\n"));
    }
}
