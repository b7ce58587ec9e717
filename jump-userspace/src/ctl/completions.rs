//! `jumpctl completions SHELL`: the shell's completion script, generated from the same clap
//! definitions that parse jumpctl's command line, so it never offers a flag jumpctl lacks. The
//! Debian package ships the bash, zsh and fish scripts this prints.

use std::io::Write;

use clap::{Args, CommandFactory};

use super::{exit, Cli};

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

pub fn run(a: &CompletionsArgs, out: &mut dyn Write) -> u8 {
    let mut cmd = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(a.shell, &mut cmd, "jumpctl", &mut script);
    match out.write_all(&script) {
        Ok(()) => exit::OK,
        Err(_) => exit::ERROR,
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn script(shell: &str) -> String {
        let cli = Cli::try_parse_from(["jumpctl", "completions", shell]).unwrap();
        let super::super::Command::Completions(a) = cli.command else {
            panic!("parsed as completions")
        };
        let mut out = Vec::new();
        assert_eq!(run(&a, &mut out), exit::OK);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn every_shell_script_offers_the_subcommands_and_their_flags() {
        // fish spells a long flag `-l junit`.
        for (shell, long) in [("bash", "--"), ("zsh", "--"), ("fish", "-l ")] {
            let s = script(shell);
            for word in ["validate", "check", "grant", "completions"] {
                assert!(s.contains(word), "the {shell} script offers `{word}`");
            }
            for flag in ["passwd", "junit", "socket"] {
                let spelt = format!("{long}{flag}");
                assert!(s.contains(&spelt), "the {shell} script offers `{spelt}`");
            }
        }
    }

    #[test]
    fn an_unknown_shell_is_refused_by_the_parser() {
        let e = Cli::try_parse_from(["jumpctl", "completions", "tcsh"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::InvalidValue);
    }
}
