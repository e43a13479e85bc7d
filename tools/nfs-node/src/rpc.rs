//! ONC RPC transport for `nfs3_client`: blocking TCP with a per-call deadline, one connection per
//! FUSE worker thread, retries for idempotent calls only.
//!
//! `nfs3_client` is written against its own small async I/O traits. We implement them over a
//! blocking `std::net::TcpStream` (every read and write is bounded by the call's deadline), so a
//! call's future completes on its first poll and a trivial `block_on` drives it.
//!
//! The record-marking layer is handled here too: `nfs3_client` refuses replies sent in several
//! fragments, so the reader below reassembles a whole record and hands it over as one fragment.

use std::cell::RefCell;
use std::future::Future;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use nfs3_client::io::{AsyncRead, AsyncWrite};
use nfs3_client::nfs3_types::nfs3::{nfsstat3, Nfs3Result};
use nfs3_client::nfs3_types::rpc::{auth_unix, opaque_auth};
use nfs3_client::nfs3_types::xdr_codec::Opaque;
use nfs3_client::{MountClient, Nfs3Client, RpcError};

/// Largest RPC record we accept (a READ reply is at most rtmax plus a little).
const MAX_RECORD: usize = 64 << 20;

/// A TCP connection to one RPC service, with the deadline of the call in flight.
pub struct Conn {
    stream: TcpStream,
    deadline: Instant,
    /// One reassembled reply record, presented as a single last fragment.
    rbuf: Vec<u8>,
    rpos: usize,
}

fn timed_out(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, format!("RPC {what} timed out"))
}

impl Conn {
    pub fn connect(addr: SocketAddr, deadline: Instant) -> io::Result<Conn> {
        let left = deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| timed_out("connect"))?;
        let stream = TcpStream::connect_timeout(&addr, left)?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            deadline,
            rbuf: Vec::new(),
            rpos: 0,
        })
    }

    fn left(&self, what: &str) -> io::Result<Duration> {
        self.deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| timed_out(what))
    }

    fn read_full(&mut self, buf: &mut [u8]) -> io::Result<()> {
        let mut off = 0;
        while off < buf.len() {
            let left = self.left("read")?;
            self.stream.set_read_timeout(Some(left))?;
            match self.stream.read(&mut buf[off..]) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "server closed the connection",
                    ))
                }
                Ok(n) => off += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.kind() == io::ErrorKind::TimedOut =>
                {
                    return Err(timed_out("read"))
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Reads one whole RPC record (all its fragments).
    fn fill_record(&mut self) -> io::Result<()> {
        let mut payload = Vec::new();
        loop {
            let mut hdr = [0u8; 4];
            self.read_full(&mut hdr)?;
            let h = u32::from_be_bytes(hdr);
            let len = (h & 0x7fff_ffff) as usize;
            if payload.len() + len > MAX_RECORD {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "RPC record too large",
                ));
            }
            let start = payload.len();
            payload.resize(start + len, 0);
            self.read_full(&mut payload[start..])?;
            if h & 0x8000_0000 != 0 {
                break;
            }
        }
        let mut rec = Vec::with_capacity(payload.len() + 4);
        rec.extend_from_slice(&(0x8000_0000u32 | payload.len() as u32).to_be_bytes());
        rec.extend_from_slice(&payload);
        self.rbuf = rec;
        self.rpos = 0;
        Ok(())
    }

    fn read_some(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.rpos >= self.rbuf.len() {
            self.fill_record()?;
        }
        let n = buf.len().min(self.rbuf.len() - self.rpos);
        buf[..n].copy_from_slice(&self.rbuf[self.rpos..self.rpos + n]);
        self.rpos += n;
        Ok(n)
    }

    fn write_some(&mut self, buf: &[u8]) -> io::Result<usize> {
        loop {
            let left = self.left("write")?;
            self.stream.set_write_timeout(Some(left))?;
            match self.stream.write(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.kind() == io::ErrorKind::TimedOut =>
                {
                    return Err(timed_out("write"))
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// The I/O object handed to `nfs3_client` for one call.
pub struct ConnRef<'a>(pub &'a mut Conn);

impl AsyncRead for ConnRef<'_> {
    async fn async_read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read_some(buf)
    }
}

impl AsyncWrite for ConnRef<'_> {
    async fn async_write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write_some(buf)
    }
}

/// Drives a future whose I/O is blocking: it is ready on its first poll.
pub fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::yield_now();
    }
}

/// AUTH_SYS credentials of the process that made the FUSE request.
#[derive(Clone, Copy, Debug)]
pub struct Cred {
    pub uid: u32,
    pub gid: u32,
}

/// Why a call produced no NFS result.
#[derive(Debug)]
pub enum CallError {
    /// No reply within the deadline (after the allowed retries): outcome unknown for a
    /// non-idempotent call.
    TimedOut,
    /// Transport or RPC-level failure (not an NFS status).
    Failed(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::TimedOut => write!(f, "no reply (timed out)"),
            CallError::Failed(m) => write!(f, "{m}"),
        }
    }
}

impl CallError {
    pub fn errno(&self) -> i32 {
        match self {
            CallError::TimedOut => libc::ETIMEDOUT,
            CallError::Failed(_) => libc::EIO,
        }
    }
}

pub type NfsClient<'a> = Nfs3Client<ConnRef<'a>>;

thread_local! {
    static CONN: RefCell<Option<Conn>> = const { RefCell::new(None) };
}

pub struct Rpc {
    pub addr: SocketAddr,
    pub timeout: Duration,
    /// Attempts for an idempotent call (each bounded by `timeout`).
    pub attempts: u32,
    pub machine: Vec<u8>,
    pub node: String,
    stamp: AtomicU64,
    pub debug: bool,
}

fn is_timeout(e: &RpcError) -> bool {
    matches!(e, RpcError::Io(io) if io.kind() == io::ErrorKind::TimedOut)
}

impl Rpc {
    pub fn new(
        addr: SocketAddr,
        timeout: Duration,
        attempts: u32,
        node: String,
        debug: bool,
    ) -> Rpc {
        let machine = format!("zarrtx-nfs-{node}").into_bytes();
        Rpc {
            addr,
            timeout,
            attempts: attempts.max(1),
            machine,
            node,
            stamp: AtomicU64::new(1),
            debug,
        }
    }

    fn auth(&self, cred: Cred) -> opaque_auth<'static> {
        opaque_auth::auth_unix(&auth_unix {
            stamp: self.stamp.fetch_add(1, Ordering::Relaxed) as u32,
            machinename: Opaque::owned(self.machine.clone()),
            uid: cred.uid,
            gid: cred.gid,
            gids: vec![cred.gid],
        })
    }

    /// One NFS call. `idempotent` calls are retried on a fresh connection after a timeout or a
    /// transport error, for at most `attempts` x `timeout` in all; the others are sent once and
    /// fail with ETIMEDOUT (no reply within `timeout`) or EIO when the reply is lost. A call that
    /// could not even connect was never sent, so it is retried until its deadline whatever its
    /// kind.
    ///
    /// Quick idempotent calls (`what` is a metadata call or READ) wait 2 s for their first reply,
    /// then 4 s, 8 s, then `timeout`: ganesha 4.3 occasionally never answers one request (seen
    /// for READ), and a 2 s first timeout keeps that from stalling a test for 10 s.
    pub fn call<T>(
        &self,
        what: &str,
        cred: Cred,
        idempotent: bool,
        mut f: impl FnMut(&mut NfsClient<'_>) -> Result<T, RpcError>,
    ) -> Result<T, CallError> {
        let quick = matches!(
            what,
            "READ"
                | "GETATTR"
                | "LOOKUP"
                | "ACCESS"
                | "READDIRPLUS"
                | "FSSTAT"
                | "FSINFO"
                | "READLINK"
        );
        let budget = self.timeout * if idempotent { self.attempts } else { 1 };
        let start = Instant::now();
        let mut attempt_timeout = if quick {
            self.timeout.min(Duration::from_secs(2))
        } else {
            self.timeout
        };
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let deadline = Instant::now() + attempt_timeout;
            let res = CONN.with(|cell| {
                let mut slot = cell.borrow_mut();
                if slot.is_none() {
                    loop {
                        match Conn::connect(self.addr, deadline) {
                            Ok(c) => {
                                *slot = Some(c);
                                break;
                            }
                            Err(e) if Instant::now() + Duration::from_millis(100) < deadline => {
                                if self.debug {
                                    eprintln!(
                                        "[{}] connect {}: {e}; retrying",
                                        self.node, self.addr
                                    );
                                }
                                std::thread::sleep(Duration::from_millis(100));
                            }
                            Err(e) => return Err((true, RpcError::Io(e))),
                        }
                    }
                }
                let conn = slot.as_mut().expect("connected above");
                conn.deadline = deadline;
                conn.rbuf.clear();
                conn.rpos = 0;
                let mut client = Nfs3Client::new_with_auth(
                    ConnRef(conn),
                    self.auth(cred),
                    opaque_auth::default(),
                );
                match f(&mut client) {
                    Ok(v) => Ok(v),
                    Err(e) => {
                        // Whatever happened, the stream may hold a late reply: never reuse it.
                        *slot = None;
                        Err((false, e))
                    }
                }
            });
            let (never_sent, e) = match res {
                Ok(v) => {
                    if attempt > 1 {
                        eprintln!("[{}] NFS {what} succeeded at attempt {attempt}", self.node);
                    }
                    return Ok(v);
                }
                Err(x) => x,
            };
            let timeout = is_timeout(&e);
            let last = if timeout {
                CallError::TimedOut
            } else {
                CallError::Failed(e.to_string())
            };
            let elapsed = start.elapsed();
            let give_up = (!idempotent && !never_sent) || elapsed >= budget;
            eprintln!(
                "[{}] NFS {what} attempt {attempt} failed after {:.1} s: {e}{}{}",
                self.node,
                elapsed.as_secs_f64(),
                if never_sent { " (not sent)" } else { "" },
                if give_up { "; giving up" } else { "; retrying" }
            );
            if give_up {
                return Err(last);
            }
            if !timeout {
                std::thread::sleep(Duration::from_millis(50));
            }
            attempt_timeout = (attempt_timeout * 2).min(self.timeout).min(
                budget
                    .saturating_sub(start.elapsed())
                    .max(Duration::from_millis(100)),
            );
        }
    }

    /// An NFS call whose reply carries an `nfsstat3`: NFS3ERR_JUKEBOX ("try again later": the
    /// server did nothing) is retried for every kind of call.
    pub fn nfs<T, E>(
        &self,
        what: &str,
        cred: Cred,
        idempotent: bool,
        mut f: impl FnMut(&mut NfsClient<'_>) -> Result<Nfs3Result<T, E>, RpcError>,
    ) -> Result<Result<T, nfsstat3>, CallError> {
        let mut delay = Duration::from_millis(10);
        for _ in 0..50 {
            match self.call(what, cred, idempotent, &mut f)? {
                Nfs3Result::Ok(v) => return Ok(Ok(v)),
                Nfs3Result::Err((nfsstat3::NFS3ERR_JUKEBOX, _)) => {
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(Duration::from_millis(500));
                }
                Nfs3Result::Err((stat, _)) => return Ok(Err(stat)),
            }
        }
        Err(CallError::Failed(format!(
            "{what}: server kept answering NFS3ERR_JUKEBOX"
        )))
    }
}

/// MOUNT protocol: returns the root file handle of `export`.
pub fn mount_export(
    addr: SocketAddr,
    export: &str,
    timeout: Duration,
    machine: &[u8],
) -> Result<Vec<u8>, String> {
    let deadline = Instant::now() + timeout;
    let mut conn =
        Conn::connect(addr, deadline).map_err(|e| format!("connect to mountd {addr}: {e}"))?;
    let cred = opaque_auth::auth_unix(&auth_unix {
        stamp: 0,
        machinename: Opaque::owned(machine.to_vec()),
        uid: 0,
        gid: 0,
        gids: vec![0],
    });
    let mut client = MountClient::new_with_auth(ConnRef(&mut conn), cred, opaque_auth::default());
    let path = nfs3_client::nfs3_types::mount::dirpath(Opaque::borrowed(export.as_bytes()));
    let ok = block_on(client.mnt(path)).map_err(|e| format!("MNT {export}: {e}"))?;
    Ok(ok.fhandle.0.to_vec())
}

/// Maps an NFSv3 status to the errno the Linux NFS client reports.
pub fn errno_of(stat: nfsstat3) -> i32 {
    use nfsstat3::*;
    match stat {
        NFS3_OK => 0,
        NFS3ERR_PERM => libc::EPERM,
        NFS3ERR_NOENT => libc::ENOENT,
        NFS3ERR_IO => libc::EIO,
        NFS3ERR_NXIO => libc::ENXIO,
        NFS3ERR_ACCES => libc::EACCES,
        NFS3ERR_EXIST => libc::EEXIST,
        NFS3ERR_XDEV => libc::EXDEV,
        NFS3ERR_NODEV => libc::ENODEV,
        NFS3ERR_NOTDIR => libc::ENOTDIR,
        NFS3ERR_ISDIR => libc::EISDIR,
        NFS3ERR_INVAL => libc::EINVAL,
        NFS3ERR_FBIG => libc::EFBIG,
        NFS3ERR_NOSPC => libc::ENOSPC,
        NFS3ERR_ROFS => libc::EROFS,
        NFS3ERR_MLINK => libc::EMLINK,
        NFS3ERR_NAMETOOLONG => libc::ENAMETOOLONG,
        NFS3ERR_NOTEMPTY => libc::ENOTEMPTY,
        NFS3ERR_DQUOT => libc::EDQUOT,
        NFS3ERR_STALE => libc::ESTALE,
        NFS3ERR_REMOTE => libc::EREMOTE,
        NFS3ERR_BADHANDLE => libc::ESTALE,
        NFS3ERR_NOT_SYNC => libc::EIO,
        NFS3ERR_BAD_COOKIE => libc::EIO,
        NFS3ERR_NOTSUPP => libc::EOPNOTSUPP,
        NFS3ERR_TOOSMALL => libc::EIO,
        NFS3ERR_SERVERFAULT => libc::EREMOTEIO,
        NFS3ERR_BADTYPE => libc::EINVAL,
        NFS3ERR_JUKEBOX => libc::EAGAIN,
    }
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;

    use nfs3_client::nfs3_types::xdr_codec::{Pack, Void};

    use super::*;

    /// A server that accepts connections, reads requests and never answers.
    fn silent_server() -> (SocketAddr, Arc<AtomicUsize>) {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        let n = Arc::new(AtomicUsize::new(0));
        let n2 = n.clone();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { break };
                n2.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    while matches!(s.read(&mut buf), Ok(k) if k > 0) {}
                });
            }
        });
        (addr, n)
    }

    fn null_call(cl: &mut NfsClient<'_>) -> Result<(), RpcError> {
        block_on(cl.null())
    }

    const ROOT: Cred = Cred { uid: 0, gid: 0 };

    #[test]
    fn non_idempotent_call_is_sent_once_and_times_out() {
        let (addr, accepted) = silent_server();
        let rpc = Rpc::new(addr, Duration::from_secs(1), 3, "t".into(), false);
        let t = Instant::now();
        let r = rpc.call("MKDIR", ROOT, false, null_call);
        let took = t.elapsed();
        assert!(matches!(r, Err(CallError::TimedOut)), "{r:?}");
        assert_eq!(r.unwrap_err().errno(), libc::ETIMEDOUT);
        assert!(
            took >= Duration::from_millis(950) && took < Duration::from_millis(1900),
            "{took:?}"
        );
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            1,
            "a non-idempotent call must not be resent"
        );
    }

    #[test]
    fn idempotent_call_is_retried_on_fresh_connections_within_its_budget() {
        let (addr, accepted) = silent_server();
        let rpc = Rpc::new(addr, Duration::from_secs(1), 3, "t".into(), false);
        let t = Instant::now();
        let r = rpc.call("GETATTR", ROOT, true, null_call);
        let took = t.elapsed();
        assert!(matches!(r, Err(CallError::TimedOut)), "{r:?}");
        assert!(
            took >= Duration::from_millis(2900) && took < Duration::from_millis(4000),
            "{took:?}"
        );
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            3,
            "three 1 s attempts, each on a new connection"
        );
    }

    #[test]
    fn reply_split_into_fragments_is_reassembled() {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        std::thread::spawn(move || {
            let (mut s, _) = l.accept().expect("accept");
            let mut hdr = [0u8; 4];
            s.read_exact(&mut hdr).expect("header");
            let len = (u32::from_be_bytes(hdr) & 0x7fff_ffff) as usize;
            let mut req = vec![0u8; len];
            s.read_exact(&mut req).expect("request");
            // reply: xid, REPLY(1), MSG_ACCEPTED(0), verifier AUTH_NULL (0, 0), SUCCESS(0), void
            let mut reply = Vec::new();
            reply.extend_from_slice(&req[..4]);
            for v in [1u32, 0, 0, 0, 0] {
                v.pack(&mut reply).expect("pack");
            }
            Void.pack(&mut reply).expect("pack");
            let (a, b) = reply.split_at(10);
            let mut out = Vec::new();
            out.extend_from_slice(&(a.len() as u32).to_be_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(&(0x8000_0000u32 | b.len() as u32).to_be_bytes());
            out.extend_from_slice(b);
            s.write_all(&out).expect("write");
            let mut sink = [0u8; 64];
            let _ = s.read(&mut sink);
        });
        let rpc = Rpc::new(addr, Duration::from_secs(2), 1, "t".into(), false);
        rpc.call("NULL", ROOT, true, null_call)
            .expect("two-fragment reply accepted");
    }
}
