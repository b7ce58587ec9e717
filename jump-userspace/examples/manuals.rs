//! `manuals OUT_DIR`: writes jumpd(8), jumpctl(1) and one jumpctl-SUBCOMMAND(1) page per
//! subcommand, generated from the clap definitions the binaries parse with (`cargo xtask deb`
//! and `cargo xtask install` run it; jump-policy(5) comes from the policy docs instead).

use std::{io::Write, path::Path};

use clap::CommandFactory;
use clap_mangen::{
    roff::{italic, roman, Roff},
    Man,
};
use jump_userspace::{ctl, daemon::args::Args};

/// `(path, what)` pairs as a FILES section.
fn files(roff: &mut Roff, entries: &[(&str, &str)]) {
    roff.control("SH", ["FILES"]);
    for (path, what) in entries {
        roff.control("TP", [])
            .text([italic(*path)])
            .text([roman(*what)]);
    }
}

fn see_also(roff: &mut Roff, pages: &[&str]) {
    roff.control("SH", ["SEE ALSO"])
        .text([roman(pages.join(", "))]);
}

fn write(dir: &Path, man: &Man, extra: &Roff) -> std::io::Result<()> {
    let mut page = Vec::new();
    man.render(&mut page)?;
    extra.to_writer(&mut page)?;
    std::fs::File::create(dir.join(man.get_filename()))?.write_all(&page)
}

fn main() -> std::io::Result<()> {
    let dir = std::env::args_os()
        .nth(1)
        .expect("usage: manuals OUT_DIR (jumpd.8, jumpctl.1, jumpctl-*.1 are written there)");
    let dir = Path::new(&dir);
    std::fs::create_dir_all(dir)?;

    let mut extra = Roff::new();
    files(
        &mut extra,
        &[
            (
                "/etc/jump/jumpd.yaml",
                "configuration; every key is also a flag, which wins",
            ),
            (
                "/etc/jump/policies/",
                "the policy directory (jump-policy(5))",
            ),
            (
                "/run/jump/jumpd.sock",
                "the control socket jumpctl(1) talks to",
            ),
            ("/sys/fs/bpf/jump/", "the pinned programs, links and maps"),
            ("/var/lib/jump/", "state kept across restarts (grants)"),
            (
                "/usr/share/jump/schema.json",
                "the JSON Schema of policy files",
            ),
        ],
    );
    see_also(
        &mut extra,
        &[
            "jumpctl(1)",
            "jump-policy(5)",
            "journalctl(1)",
            "systemd.exec(5)",
        ],
    );
    write(dir, &Man::new(Args::command()).section("8"), &extra)?;

    // Every subcommand gets its page (`jumpctl-validate.1`, …); then jumpctl.1 again, with
    // the sections clap has no place for.
    clap_mangen::generate_to(ctl::Cli::command(), dir)?;
    let mut extra = Roff::new();
    extra.control("SH", ["EXIT STATUS"]);
    for (code, what) in [
        (ctl::exit::OK, "valid, allowed, every case passed, or done"),
        (ctl::exit::FAIL, "invalid policy, denied, or a case failed"),
        (
            ctl::exit::ERROR,
            "the question could not be answered (bad arguments, unreadable files)",
        ),
        (ctl::exit::UNREACHABLE, "jumpd is not running"),
        (
            ctl::exit::REFUSED,
            "permission denied: neither root nor in jumpd's admin group",
        ),
    ] {
        extra
            .control("TP", [])
            .text([roman(code.to_string())])
            .text([roman(what)]);
    }
    files(
        &mut extra,
        &[
            (
                "/run/jump/jumpd.sock",
                "jumpd's control socket (JUMP_SOCKET, --socket)",
            ),
            ("/etc/jump/policies/", "jumpd's default policy directory"),
        ],
    );
    see_also(&mut extra, &["jumpd(8)", "jump-policy(5)"]);
    let cli = ctl::Cli::command().disable_help_subcommand(true);
    write(dir, &Man::new(cli), &extra)
}
