//! Embeds the eBPF object that `cargo xtask build` produced. The xtask passes its path in
//! `JUMP_EBPF_OBJECT`; without it we look where the xtask writes it. When it is missing (plain
//! `cargo check`/`clippy` on a machine without the eBPF toolchain) an empty object is embedded
//! and `jumpd` refuses to start with a message that says how to build it.

use std::{env, fs, path::PathBuf};

fn main() {
    println!("cargo:rerun-if-env-changed=JUMP_EBPF_OBJECT");
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let default = manifest.join("../target/ebpf/bpfel-unknown-none/release/jump");
    let src = env::var_os("JUMP_EBPF_OBJECT")
        .map(PathBuf::from)
        .unwrap_or(default);
    println!("cargo:rerun-if-changed={}", src.display());
    let out = PathBuf::from(env::var_os("OUT_DIR").unwrap()).join("jump.bpf.o");
    match fs::read(&src) {
        Ok(bytes) => fs::write(&out, bytes).unwrap(),
        Err(_) => {
            println!(
                "cargo:warning=eBPF object not found at {}; jumpd will not start (run `cargo xtask build`)",
                src.display()
            );
            fs::write(&out, []).unwrap();
        }
    }
}
