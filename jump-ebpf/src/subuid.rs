//! Subordinate uids (`/etc/subuid`): a uid that a user namespace maps to is decided and logged
//! as the user who owns it, so `newuidmap`/rootless containers are no way around that user's
//! rules. Consulted only when `JUMP_USERS` has no entry for the uid (lookup step 2).

use aya_ebpf::maps::lpm_trie::Key;
use jump_common::{SubuidKey, SUBUID_FIXED_BITS};

use crate::maps::JUMP_SUBUIDS;

/// The owner of `uid` in `slot`'s image, if `uid` is someone's subordinate uid. The compiler
/// writes disjoint aligned blocks that leave out every account and every uid a rule names, so
/// a hit is the only match and never shadows a uid of its own.
#[inline(always)]
pub fn owner(slot: u32, uid: u32) -> Option<u32> {
    let key = Key::new(
        SUBUID_FIXED_BITS + 32,
        SubuidKey {
            slot_be: slot.to_be(),
            uid_be: uid.to_be(),
        },
    );
    JUMP_SUBUIDS.get(&key).map(|v| v.owner)
}
