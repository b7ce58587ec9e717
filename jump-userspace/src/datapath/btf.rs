//! Byte offsets of `struct task_struct` (and one `struct sock`) members in the running kernel,
//! read from its BTF (`/sys/kernel/btf/vmlinux`), so the kernel programs can read the audit
//! login uid and session, pid and command name of the task that made a decision, and the owner
//! of a socket. aya keeps its BTF type
//! accessors private, hence this small reader of the documented format
//! (linux/Documentation/bpf/btf.rst): a header, a type section of variable-length records, and
//! a string section.

const MAGIC: u16 = 0xeb9f;

// Kinds (btf_type.info bits 24..28) and the size of the data each appends to its record.
const KIND_INT: u32 = 1;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_FUNC_PROTO: u32 = 13;
const KIND_VAR: u32 = 14;
const KIND_DATASEC: u32 = 15;
const KIND_DECL_TAG: u32 = 17;
const KIND_ENUM64: u32 = 19;

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn str_at(strings: &[u8], off: u32) -> &[u8] {
    let s = strings.get(off as usize..).unwrap_or_default();
    &s[..s.iter().position(|&c| c == 0).unwrap_or(s.len())]
}

/// Byte offsets of `members` of struct `name`, in the order asked; `None` for a member (or the
/// struct) that is not there. Little-endian BTF only (what x86-64 and arm64 have).
pub fn member_offsets(btf: &[u8], name: &str, members: &[&str]) -> Option<Vec<Option<u32>>> {
    if u16::from_le_bytes(btf.get(0..2)?.try_into().ok()?) != MAGIC {
        return None;
    }
    let hdr_len = u32_at(btf, 4)? as usize;
    let (type_off, type_len) = (u32_at(btf, 8)? as usize, u32_at(btf, 12)? as usize);
    let (str_off, str_len) = (u32_at(btf, 16)? as usize, u32_at(btf, 20)? as usize);
    let types = btf.get(hdr_len + type_off..hdr_len + type_off + type_len)?;
    let strings = btf.get(hdr_len + str_off..hdr_len + str_off + str_len)?;
    let mut at = 0;
    while at + 12 <= types.len() {
        let (name_off, info) = (u32_at(types, at)?, u32_at(types, at + 4)?);
        let kind = (info >> 24) & 0x1f;
        let vlen = (info & 0xffff) as usize;
        let extra = match kind {
            KIND_INT | KIND_VAR | KIND_DECL_TAG => 4,
            KIND_ARRAY => 12,
            KIND_STRUCT | KIND_UNION | KIND_DATASEC | KIND_ENUM64 => 12 * vlen,
            KIND_ENUM | KIND_FUNC_PROTO => 8 * vlen,
            _ => 0,
        };
        if kind == KIND_STRUCT && str_at(strings, name_off) == name.as_bytes() {
            let kind_flag = info >> 31 == 1;
            let found = members
                .iter()
                .map(|m| {
                    (0..vlen).find_map(|i| {
                        let rec = at + 12 + 12 * i;
                        (str_at(strings, u32_at(types, rec)?) == m.as_bytes()).then(|| {
                            // With kind_flag the low 24 bits are the bit offset.
                            let bits = u32_at(types, rec + 8)?;
                            Some(if kind_flag { bits & 0xff_ffff } else { bits } / 8)
                        })?
                    })
                })
                .collect();
            return Some(found);
        }
        at += 12 + extra;
    }
    None
}

/// Byte offsets of the `task_struct` members the kernel programs read from the current task,
/// and of `sock.sk_uid`; 0 where one cannot be found. The programs then fall back: no audit ids without
/// `loginuid`/`sessionid` (kernels without CONFIG_AUDIT; userspace falls back to /proc), and
/// the slower helpers for `comm` and `tgid` and for the uid and gid (`cred`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Offsets {
    pub loginuid: u32,
    pub sessionid: u32,
    /// `task_struct.group_leader` and `task_struct.start_boottime`: when the process started,
    /// which tells jumpd whether a pid still belongs to it (events' `start_ticks`). Both or
    /// none.
    pub group_leader: u32,
    pub start_boottime: u32,
    pub comm: u32,
    pub tgid: u32,
    /// `task_struct.cred`, then `cred.uid` and `cred.gid` (the real ids, which
    /// `bpf_get_current_uid_gid` reads): all three or none.
    pub cred: u32,
    pub cred_uid: u32,
    pub cred_gid: u32,
    /// `sock.sk_uid`: a socket's owner as the initial user namespace sees it (egress, for
    /// sockets without a record; without it, `bpf_get_socket_uid`).
    pub sock_uid: u32,
}

/// `Offsets` of the running kernel.
pub fn offsets() -> Offsets {
    let Ok(btf) = std::fs::read("/sys/kernel/btf/vmlinux") else {
        return Offsets::default();
    };
    offsets_in(&btf)
}

fn offsets_in(btf: &[u8]) -> Offsets {
    let found = member_offsets(
        btf,
        "task_struct",
        &[
            "loginuid",
            "sessionid",
            "comm",
            "tgid",
            "cred",
            "group_leader",
            "start_boottime",
        ],
    )
    .unwrap_or_default();
    let at = |i: usize| found.get(i).copied().flatten().unwrap_or(0);
    let ids = member_offsets(btf, "cred", &["uid", "gid"]).unwrap_or_default();
    let id_at = |i: usize| ids.get(i).copied().flatten().unwrap_or(0);
    // Offset 0 means unknown; `cred.uid` follows the usage count, so it is never at 0.
    let (cred, cred_uid, cred_gid) = match (at(4), id_at(0), id_at(1)) {
        (0, _, _) | (_, 0, _) | (_, _, 0) => (0, 0, 0),
        all => all,
    };
    let (loginuid, sessionid) = match (at(0), at(1)) {
        (0, _) | (_, 0) => (0, 0),
        both => both,
    };
    let (group_leader, start_boottime) = match (at(5), at(6)) {
        (0, _) | (_, 0) => (0, 0),
        both => both,
    };
    Offsets {
        loginuid,
        sessionid,
        group_leader,
        start_boottime,
        comm: at(2),
        tgid: at(3),
        cred,
        cred_uid,
        cred_gid,
        sock_uid: member_offsets(btf, "sock", &["sk_uid"])
            .and_then(|f| f.first().copied().flatten())
            .unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A BTF blob with one int type and `struct t { int a; int b; }` (b at byte 4).
    fn blob() -> Vec<u8> {
        let strings = b"\0int\0t\0a\0b\0";
        let mut types = Vec::new();
        // [1] int: name "int", kind INT, size 4, encoding
        for v in [1u32, KIND_INT << 24, 4, 32] {
            types.extend(v.to_le_bytes());
        }
        // [2] struct t, 2 members, size 8
        for v in [5u32, (KIND_STRUCT << 24) | 2, 8, 7, 1, 0, 9, 1, 32] {
            types.extend(v.to_le_bytes());
        }
        let mut b = Vec::new();
        b.extend(MAGIC.to_le_bytes());
        b.extend([1u8, 0]);
        for v in [
            24u32,
            0,
            types.len() as u32,
            types.len() as u32,
            strings.len() as u32,
        ] {
            b.extend(v.to_le_bytes());
        }
        b.extend(types);
        b.extend(strings);
        b
    }

    #[test]
    fn finds_member_offsets_after_skipping_other_records() {
        assert_eq!(
            member_offsets(&blob(), "t", &["b", "a", "c"]),
            Some(vec![Some(4), Some(0), None])
        );
        assert_eq!(member_offsets(&blob(), "missing", &["a"]), None);
        assert_eq!(member_offsets(b"not btf", "t", &["a"]), None);
    }

    #[test]
    fn the_running_kernel_has_the_task_struct_members_the_programs_read() {
        // jump targets kernels with BTF and CONFIG_AUDIT (see the brief); a missing
        // /sys/kernel/btf/vmlinux is a broken test host, not a pass.
        assert!(
            std::path::Path::new("/sys/kernel/btf/vmlinux").exists(),
            "/sys/kernel/btf/vmlinux is missing: the kernel has no BTF"
        );
        let o = offsets();
        assert!(
            o.loginuid > 0 && o.sessionid > 0 && o.loginuid != o.sessionid,
            "loginuid at {}, sessionid at {}",
            o.loginuid,
            o.sessionid
        );
        assert!(o.comm > 0 && o.tgid > 0, "{o:?}");
        assert!(o.group_leader > 0 && o.start_boottime > 0, "{o:?}");
        assert!(o.sock_uid > 0, "{o:?}");
        assert!(
            o.cred > 0 && o.cred_uid > 0 && o.cred_gid == o.cred_uid + 4,
            "{o:?}"
        );
    }
}
