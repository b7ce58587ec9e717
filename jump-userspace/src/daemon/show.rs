//! `jumpctl show [USER]` against the running jumpd: the effective policy rendered from the image
//! jumpd installed in the kernel (audit mode applied), so it shows what is enforced now.

use super::State;
use crate::protocol::{ErrorKind, Reply, Shown};

/// Serves `{"cmd":"show","user":…}`: `{generation, mode, user?, text}`.
pub(super) fn show(st: &State, opts: &super::Options, user: Option<&str>) -> Reply {
    let Some(image) = &st.installed else {
        return Reply::err(ErrorKind::Failed, "no policy loaded");
    };
    let who = match user {
        None => None,
        Some(u) => match u.parse::<u32>() {
            Ok(uid) => Some((u.to_string(), uid)),
            Err(_) => match nix::unistd::User::from_name(u).ok().flatten() {
                Some(p) => Some((u.to_string(), p.uid.as_raw())),
                None => return Reply::err(ErrorKind::Invalid, format!("unknown user `{u}`")),
            },
        },
    };
    let mut text = format!(
        "# generation {}, {} mode, policy sha256 {}\n",
        st.generation,
        opts.mode.name(),
        st.active.as_ref().map(|a| a.sha256.as_str()).unwrap_or("")
    );
    text.push_str(&crate::compile::show::show(
        image,
        who.as_ref().map(|(n, u)| (n.as_str(), *u)),
        &super::user_name,
    ));
    Reply::ok(Shown {
        generation: st.generation,
        mode: opts.mode.name().to_string(),
        user: who.map(|(_, u)| u),
        text,
    })
}
