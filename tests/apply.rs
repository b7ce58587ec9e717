//! Applying policies to the kernel maps (issue 19): a reload fills the inactive slot and then
//! removes the old slot's entries by the keys jumpd wrote, without scanning; a jumpd that
//! adopted pinned state it did not write falls back to the scan. Either way the maps must end
//! up holding the new generation's entries and nothing of the old slot — read back here with
//! `bpftool`, the way root would see them.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use jump_tests::{cgroup::TestCgroup, daemon::Jumpd, privileged, Bins};
use nix::sys::signal::Signal;
use serde_json::Value;

/// This file's uids (643xx: see TEAM.md).
const A: u32 = 64301;
const B: u32 = 64302;

/// Generation `g`'s policy: A may reach port 7000 + g; from generation 3 on, B gets two
/// destinations of its own, so reloads add and remove users and destinations.
fn policy(g: u16) -> String {
    let mut p = format!(
        "defaults:\n  egress: deny\nrules:\n  - name: a\n    users: [{A}]\n    allow: [{{to: [198.51.100.10], ports: [{}]}}]\n",
        7000 + g
    );
    if g >= 3 && g % 2 == 1 {
        p.push_str(&format!(
            "  - name: b\n    users: [{B}]\n    allow: [{{to: [198.51.100.{g}, 203.0.113.0/24], ports: [22]}}]\n"
        ));
    }
    p
}

/// The pinned maps of jumpd `j` on cgroup `cg` (`<pin root>/<layout>/cgroup-<inode>/maps`).
fn maps_dir(j: &Jumpd, cg: &Path) -> PathBuf {
    let ino = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(cg).expect("cgroup"));
    let want = format!("cgroup-{ino}");
    std::fs::read_dir(&j.pin_root)
        .expect("pin root")
        .flatten()
        .map(|layout| layout.path().join(&want).join("maps"))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("no `{want}/maps` under `{}`", j.pin_root.display()))
}

/// Every key of a pinned map, as bytes.
fn keys(map: &Path) -> Vec<Vec<u8>> {
    let out = Command::new("bpftool")
        .args(["-j", "map", "dump", "pinned"])
        .arg(map)
        .output()
        .expect("bpftool (installed by `cargo xtask setup`)");
    assert!(
        out.status.success(),
        "bpftool map dump {}: {}",
        map.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("bpftool JSON");
    v.as_array()
        .expect("a list of entries")
        .iter()
        .map(|e| {
            e["key"]
                .as_array()
                .unwrap_or_else(|| panic!("no raw key in {e}"))
                .iter()
                .map(|b| {
                    u8::from_str_radix(b.as_str().unwrap_or("").trim_start_matches("0x"), 16)
                        .expect("hex byte")
                })
                .collect()
        })
        .collect()
}

fn u32_at(b: &[u8], at: usize, big_endian: bool) -> u32 {
    let w: [u8; 4] = b[at..at + 4].try_into().expect("4 bytes");
    if big_endian {
        u32::from_be_bytes(w)
    } else {
        u32::from_ne_bytes(w)
    }
}

/// The slot of every entry in the policy maps: users (`UserKey { slot, uid }`), destinations
/// and ports (LPM keys: prefix length, then the big-endian slot).
fn slots_in_use(maps: &Path) -> Vec<(&'static str, u32)> {
    let mut out = Vec::new();
    for k in keys(&maps.join("JUMP_USERS")) {
        out.push(("JUMP_USERS", u32_at(&k, 0, false)));
    }
    for map in ["JUMP_DESTS", "JUMP_PORTS"] {
        for k in keys(&maps.join(map)) {
            out.push((map, u32_at(&k, 4, true)));
        }
    }
    out
}

fn active_slot(maps: &Path) -> u32 {
    let k = keys(&maps.join("JUMP_ACTIVE"));
    assert_eq!(k.len(), 1, "JUMP_ACTIVE has one entry");
    let out = Command::new("bpftool")
        .args(["-j", "map", "lookup", "pinned"])
        .arg(maps.join("JUMP_ACTIVE"))
        .args(["key", "0", "0", "0", "0"])
        .output()
        .expect("bpftool");
    let v: Value = serde_json::from_slice(&out.stdout).expect("bpftool JSON");
    let b: Vec<u8> = v["value"]
        .as_array()
        .expect("raw value")
        .iter()
        .map(|b| u8::from_str_radix(b.as_str().unwrap().trim_start_matches("0x"), 16).unwrap())
        .collect();
    u32_at(&b, 0, false)
}

/// Users of each slot in JUMP_USERS.
fn users_of(maps: &Path, slot: u32) -> Vec<u32> {
    let mut u: Vec<u32> = keys(&maps.join("JUMP_USERS"))
        .iter()
        .filter(|k| u32_at(k, 0, false) == slot)
        .map(|k| u32_at(k, 4, false))
        .collect();
    u.sort_unstable();
    u
}

fn assert_only_active(maps: &Path, generation: u16) {
    let active = active_slot(maps);
    let stale: Vec<_> = slots_in_use(maps)
        .into_iter()
        .filter(|(_, s)| *s != active)
        .collect();
    assert!(
        stale.is_empty(),
        "after generation {generation}, entries of the inactive slot remain: {stale:?}"
    );
    let want: Vec<u32> = if generation >= 3 && generation % 2 == 1 {
        vec![A, B]
    } else {
        vec![A]
    };
    let users = users_of(maps, active);
    for uid in &want {
        assert!(
            users.contains(uid),
            "generation {generation} grants uid {uid}: the active slot's users are {users:?}"
        );
    }
    assert!(
        want.contains(&B) || !users.contains(&B),
        "generation {generation} no longer names uid {B}: {users:?}"
    );
}

#[test]
fn reloads_leave_the_new_generation_and_nothing_of_the_old_slot() {
    if !privileged("reloads_leave_the_new_generation_and_nothing_of_the_old_slot") {
        return;
    }
    let bins = Bins::from_env();
    let cg = TestCgroup::new().expect("cgroup");
    let dir = tempfile::tempdir().expect("policy dir");
    std::fs::write(dir.path().join("p.yaml"), policy(1)).expect("policy");
    let mut j = Jumpd::start(&bins, dir.path(), &cg.path, &["--no-watch"]).expect("jumpd");
    j.wait_generation(1);
    let maps = maps_dir(&j, &cg.path);
    assert_only_active(&maps, 1);
    // Reloads by this jumpd: the old slot's entries go by their keys.
    for g in 2..=5 {
        std::fs::write(dir.path().join("p.yaml"), policy(g)).expect("policy");
        j.signal(Signal::SIGHUP);
        j.wait_generation(u64::from(g));
        assert_only_active(&maps, g);
    }
    // A jumpd that adopts this pinned state did not write the slots: its first reload must
    // still leave nothing of the old one (and must not trust the inactive slot to be empty).
    j.kill();
    std::fs::write(dir.path().join("p.yaml"), policy(6)).expect("policy");
    j.restart().expect("jumpd again");
    j.wait_generation(6);
    assert_only_active(&maps, 6);
    std::fs::write(dir.path().join("p.yaml"), policy(7)).expect("policy");
    j.signal(Signal::SIGHUP);
    j.wait_generation(7);
    assert_only_active(&maps, 7);
}
