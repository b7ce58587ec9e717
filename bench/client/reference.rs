//! Loads and attaches the reference programs (`jump-ebpf/src/reference.rs`): the floor the
//! bench measures jump's programs against.

use std::{fs::File, io::Read, net::Ipv4Addr};

use aya::{
    maps::HashMap,
    programs::{
        links::CgroupAttachMode, CgroupSkb, CgroupSkbAttachType, CgroupSock, CgroupSockAddr,
    },
    Ebpf,
};

const SOCK_ADDR: [&str; 5] = [
    "ref_connect4",
    "ref_connect4_record",
    "ref_connect6",
    "ref_sendmsg4",
    "ref_sendmsg6",
];

/// Which reference programs to attach.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Set {
    /// All of them, on a cgroup of their own: the floor, records included.
    All,
    /// The one-lookup programs only, on a child of jump's cgroup or the parent of one: they run
    /// on the same calls as jump's programs (a cgroup's own programs run before its parent's),
    /// and jump's `sock_create` still creates the socket's first storage, as it does alone.
    Lookups,
}

/// Loads program `$name` of `$bpf` as a `$ty` and attaches it with `$arg`s (`$cgroup` names
/// the cgroup in the error). A macro: aya's program types share no trait for `load` and
/// `attach`, whose arguments differ by type.
macro_rules! load_attach {
    ($bpf:expr, $ty:ty, $name:expr, $cgroup:expr, $($arg:expr),+) => {{
        let name = $name;
        let p: &mut $ty = $bpf
            .program_mut(name)
            .ok_or(format!("no program `{name}`"))?
            .try_into()
            .map_err(|e| format!("{name}: {e}"))?;
        p.load()
            .map_err(|e| format!("failed to load `{name}`: {e}"))?;
        p.attach($($arg),+)
            .map_err(|e| format!("failed to attach `{name}` to `{}`: {e}", $cgroup))?;
    }};
}

fn attach(
    object: &str,
    cgroup: &str,
    uid: u32,
    to: Ipv4Addr,
    ports: &[u16],
    set: Set,
) -> Result<Ebpf, String> {
    let mut bpf = Ebpf::load_file(object).map_err(|e| format!("failed to load `{object}`: {e}"))?;
    {
        let mut grants: HashMap<_, u64, u32> =
            HashMap::try_from(bpf.map_mut("REF_GRANTS").ok_or("no map `REF_GRANTS`")?)
                .map_err(|e| e.to_string())?;
        // The keys as the programs build them: `user_port` holds the port in network byte
        // order in its low 16 bits, `remote_ip4` the address as the kernel stores it.
        for &p in ports {
            grants
                .insert(u64::from(uid) << 32 | u64::from(p.to_be()), 1, 0)
                .map_err(|e| e.to_string())?;
        }
        grants
            .insert(u64::from(u32::from_ne_bytes(to.octets())), 1, 0)
            .map_err(|e| e.to_string())?;
    }
    let fd = File::open(cgroup).map_err(|e| format!("failed to open `{cgroup}`: {e}"))?;
    let mode = CgroupAttachMode::Single;
    for name in SOCK_ADDR {
        if set == Set::Lookups && name == "ref_connect4_record" {
            continue;
        }
        load_attach!(bpf, CgroupSockAddr, name, cgroup, &fd, mode);
    }
    if set == Set::All {
        load_attach!(bpf, CgroupSock, "ref_sock_create_record", cgroup, &fd, mode);
    }
    load_attach!(
        bpf,
        CgroupSkb,
        "ref_egress",
        cgroup,
        &fd,
        CgroupSkbAttachType::Egress,
        mode
    );
    Ok(bpf)
}

/// Attaches, says `ready`, and holds the programs until stdin reaches its end.
pub fn serve(
    object: &str,
    cgroup: &str,
    uid: u32,
    to: Ipv4Addr,
    ports: &[u16],
    set: Set,
) -> Result<(), String> {
    let bpf = attach(object, cgroup, uid, to, ports, set)?;
    println!("ready");
    std::io::Write::flush(&mut std::io::stdout()).map_err(|e| e.to_string())?;
    let mut rest = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut rest);
    drop(bpf);
    Ok(())
}
