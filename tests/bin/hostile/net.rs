//! The network attempts: TCP connect, UDP with a reply, a raw IPv4 SYN (IP_HDRINCL), an
//! Ethernet frame through AF_PACKET on every non-loopback interface, and a double-forked orphan.
//! A datagram, SYN or frame that got no answer is reported `refused: no reply…`: only the
//! test's listener can tell whether it left.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use crate::{Verdict, errno, errno_name, refused_errno};

const PAYLOAD: &[u8] = b"scanq-hostile\n";
const REPLY_WAIT: Duration = Duration::from_secs(1);

pub fn tcp(to: SocketAddr) -> Verdict {
    match TcpStream::connect_timeout(&to, Duration::from_secs(2)) {
        Ok(mut s) => {
            let _ = s.write_all(PAYLOAD);
            Verdict::Escaped(format!("connected to {to}"))
        }
        Err(err) => Verdict::Refused(errno_name(err)),
    }
}

/// A UDP socket on any address of `to`'s family, waiting at most [`REPLY_WAIT`] per read.
fn udp_socket(to: SocketAddr) -> std::io::Result<UdpSocket> {
    let any: SocketAddr = if to.is_ipv4() {
        "0.0.0.0:0".parse().unwrap()
    } else {
        "[::]:0".parse().unwrap()
    };
    let sock = UdpSocket::bind(any)?;
    sock.set_read_timeout(Some(REPLY_WAIT))?;
    Ok(sock)
}

/// Waits for one datagram on `sock`; `what` says what was sent.
fn await_reply(sock: &UdpSocket, what: &str) -> Verdict {
    let mut buf = [0u8; 1500];
    match sock.recv_from(&mut buf) {
        Ok((n, from)) => Verdict::Escaped(format!("{what}; reply of {n} bytes from {from}")),
        Err(_) => Verdict::Refused(format!("no reply within 1 s ({what})")),
    }
}

pub fn udp(to: SocketAddr) -> Verdict {
    let sock = match udp_socket(to) {
        Ok(s) => s,
        Err(err) => return Verdict::Refused(errno_name(err)),
    };
    if let Err(err) = sock.send_to(PAYLOAD, to) {
        return Verdict::Refused(errno_name(err));
    }
    await_reply(&sock, &format!("datagram sent to {to}"))
}

fn ipv4(to: SocketAddr) -> Result<(Ipv4Addr, u16), String> {
    match to {
        SocketAddr::V4(v4) => Ok((*v4.ip(), v4.port())),
        SocketAddr::V6(_) => Err("raw-syn and packet take an IPv4 address".into()),
    }
}

/// The one's-complement sum of `data` (RFC 1071), folded, not yet inverted.
fn sum16(mut acc: u32, data: &[u8]) -> u32 {
    for pair in data.chunks(2) {
        let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
        acc += u32::from(word);
    }
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc
}

/// A 20-byte IPv4 header with its checksum.
fn ip_header(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, payload_len: usize) -> [u8; 20] {
    let mut h = [0u8; 20];
    h[0] = 0x45;
    h[2..4].copy_from_slice(&((20 + payload_len) as u16).to_be_bytes());
    h[4..6].copy_from_slice(&(std::process::id() as u16).to_be_bytes());
    h[8] = 64;
    h[9] = proto;
    h[12..16].copy_from_slice(&src.octets());
    h[16..20].copy_from_slice(&dst.octets());
    let sum = !(sum16(0, &h) as u16);
    h[10..12].copy_from_slice(&sum.to_be_bytes());
    h
}

/// The source address the routing table picks for `to` (a connected UDP socket sends nothing).
fn source_for(to: SocketAddr) -> std::io::Result<Ipv4Addr> {
    let sock = UdpSocket::bind("0.0.0.0:0")?;
    sock.connect(to)?;
    match sock.local_addr()? {
        SocketAddr::V4(v4) => Ok(*v4.ip()),
        SocketAddr::V6(_) => Err(std::io::Error::from_raw_os_error(libc::EAFNOSUPPORT)),
    }
}

/// A raw socket or `Refused(errno)`.
fn raw_socket(domain: i32, kind: i32, proto: i32) -> Result<i32, Verdict> {
    // SAFETY: integers only.
    let fd = unsafe { libc::socket(domain, kind | libc::SOCK_CLOEXEC, proto) };
    if fd < 0 { Err(refused_errno()) } else { Ok(fd) }
}

/// Waits until `fd` is readable or `deadline` passes.
fn readable(fd: i32, deadline: Instant) -> bool {
    let left = deadline.saturating_duration_since(Instant::now());
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one pollfd we own.
    unsafe { libc::poll(&mut pfd, 1, left.as_millis() as i32) > 0 }
}

/// A TCP SYN in a hand-built IPv4 packet (IP_HDRINCL); a SYN-ACK or RST back is an escape.
pub fn raw_syn(to: SocketAddr) -> Result<Verdict, String> {
    let (dst, dport) = ipv4(to)?;
    let src = match source_for(to) {
        Ok(s) => s,
        Err(err) => return Ok(Verdict::Refused(errno_name(err))),
    };
    let recv = match raw_socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_TCP) {
        Ok(fd) => fd,
        Err(v) => return Ok(v),
    };
    let send = match raw_socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW) {
        Ok(fd) => fd,
        Err(v) => return Ok(v),
    };
    let one: i32 = 1;
    // SAFETY: one int option we own.
    unsafe {
        libc::setsockopt(
            send,
            libc::IPPROTO_IP,
            libc::IP_HDRINCL,
            (&one as *const i32).cast(),
            4,
        )
    };
    let sport = 40000 + (std::process::id() % 20000) as u16;
    let mut tcp = [0u8; 20];
    tcp[0..2].copy_from_slice(&sport.to_be_bytes());
    tcp[2..4].copy_from_slice(&dport.to_be_bytes());
    tcp[4..8].copy_from_slice(&0x5ca7_0001u32.to_be_bytes());
    tcp[12] = 5 << 4;
    tcp[13] = 0x02; // SYN
    tcp[14..16].copy_from_slice(&1024u16.to_be_bytes());
    let mut pseudo = Vec::with_capacity(12);
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&[0, libc::IPPROTO_TCP as u8, 0, 20]);
    let sum = !(sum16(sum16(0, &pseudo), &tcp) as u16);
    tcp[16..18].copy_from_slice(&sum.to_be_bytes());
    let mut packet = ip_header(src, dst, libc::IPPROTO_TCP as u8, 20).to_vec();
    packet.extend_from_slice(&tcp);

    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as u16,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(dst.octets()),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: a buffer and an address we own, with their lengths.
    let sent = unsafe {
        libc::sendto(
            send,
            packet.as_ptr().cast(),
            packet.len(),
            0,
            (&addr as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as u32,
        )
    };
    if sent < 0 {
        return Ok(refused_errno());
    }
    let deadline = Instant::now() + REPLY_WAIT;
    let mut buf = [0u8; 1500];
    while readable(recv, deadline) {
        // SAFETY: the kernel writes at most `buf.len()` bytes.
        let n = unsafe { libc::recv(recv, buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 40 {
            continue;
        }
        let ihl = usize::from(buf[0] & 0x0f) * 4;
        let seg = &buf[ihl..n as usize];
        let from_target = buf[12..16] == dst.octets();
        if from_target
            && seg.len() >= 14
            && seg[0..2] == dport.to_be_bytes()
            && seg[2..4] == sport.to_be_bytes()
        {
            let kind = if seg[13] & 0x04 != 0 {
                "RST"
            } else {
                "SYN-ACK"
            };
            return Ok(Verdict::Escaped(format!(
                "raw SYN to {to} answered with {kind}"
            )));
        }
    }
    Ok(Verdict::Refused(format!(
        "no reply within 1 s (raw SYN sent to {to})"
    )))
}

/// An interface that is up and not loopback: index, name, MAC, IPv4 address.
struct Iface {
    index: i32,
    name: String,
    mac: [u8; 6],
    ip: Option<Ipv4Addr>,
}

/// The interfaces that are up and not loopback, from `getifaddrs`.
fn interfaces() -> Vec<Iface> {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs allocates the list; we read it and free it once.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return Vec::new();
    }
    let mut found: Vec<Iface> = Vec::new();
    let mut v4: Vec<(String, Ipv4Addr)> = Vec::new();
    let mut cur = list;
    while !cur.is_null() {
        // SAFETY: a node of the list getifaddrs gave us, alive until freeifaddrs.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        let flags = ifa.ifa_flags as i32;
        if ifa.ifa_addr.is_null() || flags & libc::IFF_UP == 0 || flags & libc::IFF_LOOPBACK != 0 {
            continue;
        }
        // SAFETY: ifa_name is a NUL-terminated string of the list.
        let name = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) }
            .to_string_lossy()
            .into_owned();
        // SAFETY: sa_family says which sockaddr this is.
        match i32::from(unsafe { (*ifa.ifa_addr).sa_family }) {
            libc::AF_PACKET => {
                // SAFETY: an AF_PACKET address is a sockaddr_ll.
                let ll = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_ll) };
                let mut mac = [0u8; 6];
                mac.copy_from_slice(&ll.sll_addr[..6]);
                found.push(Iface {
                    index: ll.sll_ifindex,
                    name,
                    mac,
                    ip: None,
                });
            }
            libc::AF_INET => {
                // SAFETY: an AF_INET address is a sockaddr_in.
                let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                v4.push((name, Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr))));
            }
            _ => {}
        }
    }
    // SAFETY: the list from getifaddrs, freed once.
    unsafe { libc::freeifaddrs(list) };
    for iface in &mut found {
        iface.ip = v4.iter().find(|(n, _)| *n == iface.name).map(|(_, ip)| *ip);
    }
    found
}

/// The neighbour table's MAC for `ip` on `dev`, or broadcast.
fn neighbour_mac(ip: Ipv4Addr, dev: &str) -> [u8; 6] {
    let table = std::fs::read_to_string("/proc/net/arp").unwrap_or_default();
    for line in table.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() >= 6 && f[0] == ip.to_string() && f[5] == dev && f[2] != "0x0" {
            let bytes: Vec<u8> = f[3]
                .split(':')
                .filter_map(|b| u8::from_str_radix(b, 16).ok())
                .collect();
            if let Ok(mac) = <[u8; 6]>::try_from(bytes) {
                return mac;
            }
        }
    }
    [0xff; 6]
}

/// An Ethernet + IPv4 + UDP frame to `to` on every non-loopback interface that is up; a UDP
/// reply to the frame's source port is an escape.
pub fn packet(to: SocketAddr) -> Result<Verdict, String> {
    let (dst, dport) = ipv4(to)?;
    let fd = match raw_socket(libc::AF_PACKET, libc::SOCK_RAW, 0) {
        Ok(fd) => fd,
        Err(v) => return Ok(v),
    };
    let reply = match udp_socket(to) {
        Ok(s) => s,
        Err(err) => return Ok(Verdict::Refused(errno_name(err))),
    };
    let sport = reply.local_addr().map(|a| a.port()).unwrap_or(40000);
    let ifaces = interfaces();
    if ifaces.is_empty() {
        return Ok(Verdict::Refused("no non-loopback interface is up".into()));
    }
    let (mut sent_on, mut last_err) = (Vec::new(), String::new());
    for iface in &ifaces {
        let dst_mac = neighbour_mac(dst, &iface.name);
        let src = iface.ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
        let mut udp = Vec::new();
        udp.extend_from_slice(&sport.to_be_bytes());
        udp.extend_from_slice(&dport.to_be_bytes());
        udp.extend_from_slice(&((8 + PAYLOAD.len()) as u16).to_be_bytes());
        udp.extend_from_slice(&[0, 0]); // no checksum
        udp.extend_from_slice(PAYLOAD);
        let mut frame = Vec::new();
        frame.extend_from_slice(&dst_mac);
        frame.extend_from_slice(&iface.mac);
        frame.extend_from_slice(&0x0800u16.to_be_bytes());
        frame.extend_from_slice(&ip_header(src, dst, libc::IPPROTO_UDP as u8, udp.len()));
        frame.extend_from_slice(&udp);
        // SAFETY: sockaddr_ll is plain integers, valid all zero.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = 0x0800u16.to_be();
        addr.sll_ifindex = iface.index;
        addr.sll_halen = 6;
        addr.sll_addr[..6].copy_from_slice(&dst_mac);
        // SAFETY: a buffer and an address we own, with their lengths.
        let r = unsafe {
            libc::sendto(
                fd,
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&addr as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if r < 0 {
            last_err = errno();
        } else {
            sent_on.push(iface.name.clone());
        }
    }
    if sent_on.is_empty() {
        return Ok(Verdict::Refused(last_err));
    }
    Ok(await_reply(
        &reply,
        &format!("frame to {to} sent on {}", sent_on.join(",")),
    ))
}

/// Double fork + `setsid`: the grandchild, detached from the tool's group and stdio, keeps
/// trying TCP connects to `to` for `secs` seconds (one success and it stops); the leader
/// prints its line and exits 0 at once.
pub fn orphan(to: SocketAddr, secs: u64) {
    // SAFETY: single-threaded; the children only make plain system calls and exit.
    match unsafe { libc::fork() } {
        -1 => {
            println!("refused: {}", errno());
            return;
        }
        0 => {}
        child => {
            let mut status = 0;
            // SAFETY: one int we own.
            unsafe { libc::waitpid(child, &mut status, 0) };
            println!("orphan: a detached process tries {to} for {secs} s");
            return;
        }
    }
    // The child: a new session, then the grandchild, then exit so it is reparented.
    // SAFETY: as above.
    unsafe {
        libc::setsid();
        if libc::fork() != 0 {
            libc::_exit(0);
        }
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        for fd in 0..3 {
            libc::dup2(null, fd);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if let Ok(mut s) = TcpStream::connect_timeout(&to, Duration::from_millis(200)) {
            let _ = s.write_all(b"scanq-hostile orphan\n");
            break;
        }
        // The attacker's own pacing between tries (this is the hostile tool, not a test
        // waiting for a condition: the test's observation is its packet witness).
        std::thread::sleep(Duration::from_millis(100));
    }
    // SAFETY: exit without running the parent's atexit handlers.
    unsafe { libc::_exit(0) };
}
