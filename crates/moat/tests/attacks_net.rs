//! Network exfiltration attempts (network off, the default), checked from the host side:
//! the host listener must have received nothing.
//!
//! Cases (each as root and as user): tcp_host_loopback, udp_host_loopback,
//! tcp_ipv6_loopback, abstract_unix_socket, pathname_socket_in_tmp,
//! proc_net_dev_only_lo, dns_udp_53.
//!
//! Not an attack case: a pathname unix socket that the host created in `outside/` (or
//! anywhere outside the private runtime dirs). Such connects are NOT mediated yet (the
//! report says "not mediated"), so the connect may succeed; see DESIGN.md's supervisor.
//!
//! Only loopback addresses and unix sockets are used; nothing leaves the machine.

#[macro_use]
mod common;

use common::{Harness, PYTHON, chmod};
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
use std::sync::Mutex;

/// Serializes the cases that bind fixed host addresses.
static FIXED_PORTS: Mutex<()> = Mutex::new(());

/// Python that connects a stream socket, sends a marker and prints CONNECTED or REFUSED.
fn py_stream(family: &str, addr: &str) -> String {
    format!(
        "import socket\n\
         s = socket.socket(socket.{family}, socket.SOCK_STREAM)\n\
         s.settimeout(5)\n\
         try:\n    s.connect({addr})\n    s.sendall(b'LEAK')\n    print('CONNECTED')\n\
         except OSError as e:\n    print('REFUSED', repr(e))\n"
    )
}

/// Python that sends a few UDP datagrams and prints SENT or the error.
fn py_udp(family: &str, addr: &str) -> String {
    format!(
        "import socket\n\
         s = socket.socket(socket.{family}, socket.SOCK_DGRAM)\n\
         try:\n    [s.sendto(b'LEAK', {addr}) for _ in range(3)]\n    print('SENT')\n\
         except OSError as e:\n    print('REFUSED', repr(e))\n"
    )
}

/// Asserts a non-blocking TCP listener has no pending connection.
#[track_caller]
fn assert_tcp_nothing(listener: &TcpListener, why: &dyn std::fmt::Display) {
    match listener.accept() {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        Ok((_, peer)) => panic!("the host listener accepted a connection from {peer}{why}"),
        Err(e) => panic!("accept failed: {e}{why}"),
    }
}

/// Asserts a non-blocking unix listener has no pending connection.
#[track_caller]
fn assert_unix_nothing(listener: &UnixListener, why: &dyn std::fmt::Display) {
    match listener.accept() {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        Ok(_) => panic!("the host unix listener accepted a connection{why}"),
        Err(e) => panic!("accept failed: {e}{why}"),
    }
}

/// Asserts a non-blocking UDP socket received nothing.
#[track_caller]
fn assert_udp_nothing(sock: &UdpSocket, why: &dyn std::fmt::Display) {
    let mut buf = [0u8; 512];
    match sock.recv_from(&mut buf) {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        Ok((n, peer)) => panic!("the host UDP socket received {n} bytes from {peer}{why}"),
        Err(e) => panic!("recv failed: {e}{why}"),
    }
}

sandbox_test!(tcp_host_loopback, |h: &Harness| {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let out = h
        .run(&[
            PYTHON,
            "-c",
            &py_stream("AF_INET", &format!("('127.0.0.1', {port})")),
        ])
        .output();
    assert_tcp_nothing(&listener, &out);
    out.stdout_lacks("CONNECTED").stdout_has("REFUSED");
});

sandbox_test!(udp_host_loopback, |h: &Harness| {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_nonblocking(true).unwrap();
    let port = sock.local_addr().unwrap().port();
    let out = h
        .run(&[
            PYTHON,
            "-c",
            &py_udp("AF_INET", &format!("('127.0.0.1', {port})")),
        ])
        .output();
    // Sending to 127.0.0.1 inside may succeed (it reaches the sandbox's own lo).
    assert_udp_nothing(&sock, &out);
    out.ok();
});

sandbox_test!(tcp_ipv6_loopback, |h: &Harness| {
    let Ok(listener) = TcpListener::bind("[::1]:0") else {
        println!("skipped: IPv6 loopback is not available on the host");
        return;
    };
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let out = h
        .run(&[
            PYTHON,
            "-c",
            &py_stream("AF_INET6", &format!("('::1', {port})")),
        ])
        .output();
    assert_tcp_nothing(&listener, &out);
    out.stdout_lacks("CONNECTED").stdout_has("REFUSED");
    let sock = UdpSocket::bind("[::1]:0").unwrap();
    sock.set_nonblocking(true).unwrap();
    let port = sock.local_addr().unwrap().port();
    let out = h
        .run(&[
            PYTHON,
            "-c",
            &py_udp("AF_INET6", &format!("('::1', {port})")),
        ])
        .output();
    assert_udp_nothing(&sock, &out);
});

sandbox_test!(abstract_unix_socket, |h: &Harness| {
    let name = h.unique("abstract");
    let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let listener = UnixListener::bind_addr(&addr).unwrap();
    // The listener works for a host client, so a refusal below is the sandbox's doing.
    let mut probe = UnixStream::connect_addr(&addr).unwrap();
    let (mut served, _) = listener.accept().unwrap();
    probe.write_all(b"ping").unwrap();
    let mut buf = [0u8; 4];
    served.read_exact(&mut buf).unwrap();
    listener.set_nonblocking(true).unwrap();
    let out = h
        .run(&[PYTHON, "-c", &py_stream("AF_UNIX", &format!("'\\0{name}'"))])
        .output();
    assert_unix_nothing(&listener, &out);
    out.stdout_lacks("CONNECTED").stdout_has("REFUSED");
});

/// Removes a host socket file when dropped.
struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

sandbox_test!(pathname_socket_in_tmp, |h: &Harness| {
    // A host daemon's socket in the host /tmp: the sandbox's /tmp is private, so the
    // path must not even resolve. (Sockets in outside/ are not mediated yet: see the top.)
    let path = std::path::PathBuf::from(format!("/tmp/{}.sock", h.unique("sock")));
    let listener = UnixListener::bind(&path).unwrap();
    let _cleanup = RemoveOnDrop(path.clone());
    chmod(&path, 0o777);
    listener.set_nonblocking(true).unwrap();
    let out = h
        .run(&[
            PYTHON,
            "-c",
            &py_stream("AF_UNIX", &format!("'{}'", path.display())),
        ])
        .output();
    assert_unix_nothing(&listener, &out);
    out.stdout_lacks("CONNECTED").stdout_has("REFUSED");
    let listing = h.run(&["ls", "-a", "/tmp"]).output();
    listing.ok();
    assert!(
        !listing
            .stdout
            .contains(path.file_name().unwrap().to_str().unwrap()),
        "{listing}"
    );
});

sandbox_test!(proc_net_dev_only_lo, |h: &Harness| {
    let out = h.run(&["cat", "/proc/net/dev"]).output();
    out.ok();
    let ifaces: Vec<&str> = out
        .stdout
        .lines()
        .filter_map(|l| l.split_once(':').map(|(name, _)| name.trim()))
        .filter(|n| !n.contains('|'))
        .collect();
    assert_eq!(ifaces, ["lo"], "interfaces inside the sandbox{out}");
});

sandbox_test!(dns_udp_53, |h: &Harness| {
    let _guard = FIXED_PORTS.lock().unwrap_or_else(|e| e.into_inner());
    // A fake resolver on the host (when this process may bind port 53) that must get nothing.
    let resolver = UdpSocket::bind("127.0.0.53:53").ok();
    if let Some(r) = &resolver {
        r.set_nonblocking(true).unwrap();
    } else {
        println!("note: cannot bind 127.0.0.53:53 on the host; checking the inside only");
    }
    let query = "b'\\x12\\x34\\x01\\x00\\x00\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x07example\\x03com\\x00\\x00\\x01\\x00\\x01'";
    let code = format!(
        "import socket\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         s.settimeout(2)\n\
         try:\n    s.sendto({query}, ('127.0.0.53', 53))\n    s.recvfrom(512)\n    print('ANSWERED')\n\
         except OSError as e:\n    print('FAILED', repr(e))\n"
    );
    let out = h.run(&[PYTHON, "-c", &code]).output();
    if let Some(r) = &resolver {
        assert_udp_nothing(r, &out);
    }
    out.ok().stdout_lacks("ANSWERED").stdout_has("FAILED");
});
