//! Times the policy pipeline's pure stages, as jumpd runs them (release build): `load_dir`
//! (read, parse, validate) and `compile` (model → map image). Used by `cargo xtask bench`:
//!
//! `policy-compile-time DIR REPS` prints one JSON line with the times of every repetition and
//! the compiled image's entry counts.
#![forbid(unsafe_code)]

use std::time::Instant;

use jump_userspace::{compile, policy, resolve};
use serde_json::json;

/// jumpd's allocator, so the times are jumpd's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn run(dir: &str, reps: usize) -> Result<(), String> {
    let (mut load_ns, mut compile_ns) = (Vec::new(), Vec::new());
    let mut shape = json!(null);
    for _ in 0..reps {
        let t = Instant::now();
        let loaded = policy::load_dir(dir.as_ref()).map_err(|e| e.to_string())?;
        load_ns.push(t.elapsed().as_nanos() as u64);
        let t = Instant::now();
        let image = compile::compile(
            &loaded.policy,
            &resolve::SystemDirectory::default(),
            jiff::Timestamp::now(),
        )
        .map_err(|e| e.to_string())?;
        compile_ns.push(t.elapsed().as_nanos() as u64);
        shape = json!({
            "rules": image.rules.len() - 1,
            "users": image.users.len(),
            "dests": image.dests.len(),
            "ports": image.ports.len(),
        });
    }
    println!(
        "{}",
        json!({"ok": true, "load_ns": load_ns, "compile_ns": compile_ns, "image": shape})
    );
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match &args[..] {
        [dir, reps] => reps
            .parse()
            .map_err(|_| format!("bad count `{reps}`"))
            .and_then(|r| run(dir, r)),
        _ => Err("usage: policy-compile-time DIR REPS".into()),
    };
    if let Err(e) = result {
        println!("{}", json!({"ok": false, "error": e}));
        std::process::exit(2);
    }
}
