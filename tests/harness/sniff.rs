//! A packet sniffer on the far side of an attack: an `AF_PACKET` socket in a network namespace
//! the test made, recording every frame that arrives there until it is stopped. Tests assert on
//! what the wire carried, not on what the attacker's process was told.

use std::{
    io::Read,
    net::IpAddr,
    path::PathBuf,
    sync::{
        atomic::{AtomicBool, Ordering},
        mpsc, Arc,
    },
    thread::JoinHandle,
    time::Duration,
};

use socket2::{Domain, Protocol, Socket, Type};

/// `ETH_P_ALL` (linux/if_ether.h), in network byte order as `socket(2)` wants it.
const ETH_P_ALL: u16 = 0x0003;

pub struct Sniffer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<Vec<Vec<u8>>, String>>>,
}

impl Sniffer {
    /// Starts capturing in `netns`; returns once the socket is open.
    pub fn start(netns: PathBuf) -> anyhow::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let open = || -> Result<Socket, String> {
                let file = std::fs::File::open(&netns).map_err(|e| format!("open netns: {e}"))?;
                nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(|e| format!("setns: {e}"))?;
                let s = Socket::new(
                    Domain::PACKET,
                    Type::RAW,
                    Some(Protocol::from(i32::from(ETH_P_ALL.to_be()))),
                )
                .map_err(|e| format!("packet socket: {e}"))?;
                s.set_read_timeout(Some(Duration::from_millis(50)))
                    .map_err(|e| e.to_string())?;
                Ok(s)
            };
            let s = match open() {
                Ok(s) => {
                    let _ = ready_tx.send(Ok(()));
                    s
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e.clone()));
                    return Err(e);
                }
            };
            let mut frames = Vec::new();
            let mut buf = vec![0u8; 65536];
            while !flag.load(Ordering::Relaxed) {
                match (&s).read(&mut buf) {
                    Ok(n) => frames.push(buf[..n].to_vec()),
                    // The read timeout, so the stop flag is seen.
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    // A sniffer that stopped reading would make "nothing arrived" pass vacuously.
                    Err(e) => return Err(format!("read: {e}")),
                }
            }
            Ok(frames)
        });
        ready_rx
            .recv()
            .map_err(|_| anyhow::anyhow!("sniffer thread ended before it was ready"))?
            .map_err(|e| anyhow::anyhow!("sniffer: {e}"))?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }

    /// Waits `settle` for packets still in flight, then stops and returns every frame seen.
    /// Panics if the capture failed: an empty capture must mean that nothing arrived.
    pub fn stop(mut self, settle: Duration) -> Vec<Vec<u8>> {
        std::thread::sleep(settle);
        self.stop.store(true, Ordering::Relaxed);
        let thread = self
            .thread
            .take()
            .expect("a running sniffer has its thread");
        match thread.join() {
            Ok(Ok(frames)) => frames,
            Ok(Err(e)) => panic!("the sniffer failed, so its capture proves nothing: {e}"),
            Err(_) => panic!("the sniffer thread panicked, so its capture proves nothing"),
        }
    }
}

impl Drop for Sniffer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What a frame says about an address: an IPv4 or IPv6 packet to or from it, or an ARP or
/// neighbour solicitation asking for it.
pub fn mentions(frame: &[u8], addr: IpAddr) -> bool {
    if frame.len() < 14 {
        return false;
    }
    let ethertype = u16::from_be_bytes([frame[12], frame[13]]);
    let l3 = &frame[14..];
    match (ethertype, addr) {
        (0x0800, IpAddr::V4(a)) if l3.len() >= 20 => {
            l3[12..16] == a.octets() || l3[16..20] == a.octets()
        }
        (0x0806, IpAddr::V4(a)) if l3.len() >= 28 => l3[24..28] == a.octets(),
        (0x86dd, IpAddr::V6(a)) if l3.len() >= 40 => {
            let ns_target =
                l3.len() >= 64 && l3[6] == 58 && l3[40] == 135 && l3[48..64] == a.octets();
            l3[8..24] == a.octets() || l3[24..40] == a.octets() || ns_target
        }
        _ => false,
    }
}

/// Whether the bytes of `addr` appear anywhere in the frame (a group inside an IGMP or MLD
/// report).
pub fn carries(frame: &[u8], addr: IpAddr) -> bool {
    let needle: Vec<u8> = match addr {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    frame.windows(needle.len()).any(|w| w == needle.as_slice())
}
