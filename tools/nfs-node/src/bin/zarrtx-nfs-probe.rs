//! zarrtx-nfs-probe: a worker process for the two-node self-test. It reads one command per line
//! on stdin, performs it with plain system calls and answers one line on stdout:
//! `ok ...` or `err ERRNO_NAME`.
//!
//! Commands (paths must not contain spaces):
//!   write PATH TEXT            create/truncate PATH, write TEXT, close
//!   fill PATH LEN LETTER       create/truncate PATH, write LEN bytes LETTER, close
//!   read PATH                  open, read all, close -> `ok LEN TEXT` (TEXT: up to 64 bytes)
//!                              or `ok LEN uniform:L` / `ok LEN mixed` for longer files
//!   stat PATH                  -> `ok INO NLINK SIZE`
//!   link SRC DST | rename SRC DST | unlink PATH | mkdir PATH | rmdir PATH
//!   excl PATH                  open(O_CREAT|O_EXCL|O_WRONLY)
//!   renameat2 SRC DST noreplace|exchange
//!   flock PATH nb|wait:MS      exclusive flock, held until `unlock PATH`
//!   lockf PATH nb|wait:MS      exclusive fcntl (POSIX) lock, held until `unlock PATH`
//!   hold PATH                  open PATH read-only and keep the fd
//!   readheld PATH              read the held fd from offset 0 (like `read`)
//!   fstatheld PATH             fstat the held fd -> `ok INO NLINK SIZE`
//!   unlock PATH                release a lock and/or close a held fd
//!   renameloop DIR TARGET COUNT LEN   COUNT times: write DIR/.tmp-PID (LEN bytes of the
//!                              round's letter), rename it over TARGET -> `ok COUNT`
//!   readloop PATH LEN STOPFILE open+read+close PATH until STOPFILE exists; every read must be
//!                              LEN bytes of one letter -> `ok reads=N ok=N torn=N ESTALE@read=N ...`
//!   exit

use std::collections::{BTreeMap, HashMap};
use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::Path;

fn errname(e: &io::Error) -> String {
    let Some(n) = e.raw_os_error() else {
        return format!("{e}").replace(' ', "_");
    };
    let name = match n {
        libc::EEXIST => "EEXIST",
        libc::ENOENT => "ENOENT",
        libc::ESTALE => "ESTALE",
        libc::EINVAL => "EINVAL",
        libc::EAGAIN => "EAGAIN",
        libc::EACCES => "EACCES",
        libc::EINTR => "EINTR",
        libc::EIO => "EIO",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::ENOTEMPTY => "ENOTEMPTY",
        libc::EBADF => "EBADF",
        libc::EISDIR => "EISDIR",
        libc::ENOTDIR => "ENOTDIR",
        libc::EPERM => "EPERM",
        libc::ENOTCONN => "ENOTCONN",
        libc::ENOSYS => "ENOSYS",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        _ => return format!("E{n}"),
    };
    name.to_string()
}

fn cstr(p: &str) -> CString {
    CString::new(p).expect("no NUL in path")
}

fn check(r: libc::c_int) -> io::Result<()> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

extern "C" fn on_alarm(_: libc::c_int) {}

/// Arms a one-shot SIGALRM in `ms` milliseconds (0 disarms); the handler is installed without
/// SA_RESTART, so a blocking flock/fcntl returns EINTR when it fires.
fn alarm_ms(ms: u64) {
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_alarm as *const () as usize;
        sa.sa_flags = 0;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGALRM, &sa, std::ptr::null_mut());
        let it = libc::itimerval {
            it_interval: libc::timeval {
                tv_sec: 0,
                tv_usec: 0,
            },
            it_value: libc::timeval {
                tv_sec: (ms / 1000) as libc::time_t,
                tv_usec: ((ms % 1000) * 1000) as libc::suseconds_t,
            },
        };
        libc::setitimer(libc::ITIMER_REAL, &it, std::ptr::null_mut());
    }
}

fn write_file(path: &str, data: &[u8]) -> io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    f.write_all(data)?;
    drop(f);
    Ok(())
}

/// Reads with plain read() calls and no fstat first (std's read_to_end asks for the size, and that
/// stat makes FUSE refresh the attributes: it would hide a kernel clamping reads to a stale size).
fn read_all(f: &mut File) -> io::Result<Vec<u8>> {
    let mut v = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match f.read(&mut buf) {
            Ok(0) => return Ok(v),
            Ok(n) => v.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

fn read_file(path: &str) -> io::Result<Vec<u8>> {
    read_all(&mut File::open(path)?)
}

fn describe(data: &[u8]) -> String {
    match data.first() {
        None => "ok 0 -".to_string(),
        Some(&b) if data.len() > 1 && data.iter().all(|&x| x == b) => {
            format!("ok {} uniform:{}", data.len(), b as char)
        }
        _ if data.len() <= 64 && data.iter().all(|b| b.is_ascii_graphic()) => {
            format!("ok {} {}", data.len(), String::from_utf8_lossy(data))
        }
        _ => format!("ok {} mixed", data.len()),
    }
}

fn lock(held: &mut HashMap<String, File>, kind: &str, path: &str, mode: &str) -> io::Result<()> {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .open(path)?;
    let fd = f.as_raw_fd();
    let wait = mode
        .strip_prefix("wait:")
        .map(|ms| ms.parse::<u64>().unwrap_or(1000));
    if let Some(ms) = wait {
        alarm_ms(ms);
    }
    let r = if kind == "flock" {
        let op = libc::LOCK_EX | if wait.is_none() { libc::LOCK_NB } else { 0 };
        check(unsafe { libc::flock(fd, op) })
    } else {
        let mut fl: libc::flock = unsafe { std::mem::zeroed() };
        fl.l_type = libc::F_WRLCK as libc::c_short;
        fl.l_whence = libc::SEEK_SET as libc::c_short;
        let cmd = if wait.is_none() {
            libc::F_SETLK
        } else {
            libc::F_SETLKW
        };
        check(unsafe { libc::fcntl(fd, cmd, &fl) })
    };
    if wait.is_some() {
        alarm_ms(0);
    }
    r?;
    held.insert(path.to_string(), f);
    Ok(())
}

fn run(cmd: &[&str], held: &mut HashMap<String, File>) -> io::Result<String> {
    let bad = || io::Error::new(io::ErrorKind::InvalidInput, "bad_command");
    match cmd {
        ["write", path, text] => write_file(path, text.as_bytes()).map(|_| "ok".into()),
        ["fill", path, len, letter] => {
            let len: usize = len.parse().map_err(|_| bad())?;
            let b = *letter.as_bytes().first().ok_or_else(bad)?;
            write_file(path, &vec![b; len]).map(|_| "ok".into())
        }
        ["read", path] => read_file(path).map(|d| describe(&d)),
        ["stat", path] => {
            let m = std::fs::metadata(path)?;
            Ok(format!("ok {} {} {}", m.ino(), m.nlink(), m.size()))
        }
        ["link", src, dst] => std::fs::hard_link(src, dst).map(|_| "ok".into()),
        ["rename", src, dst] => std::fs::rename(src, dst).map(|_| "ok".into()),
        ["unlink", path] => std::fs::remove_file(path).map(|_| "ok".into()),
        ["mkdir", path] => std::fs::create_dir(path).map(|_| "ok".into()),
        ["rmdir", path] => std::fs::remove_dir(path).map(|_| "ok".into()),
        ["excl", path] => OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(path)
            .map(|_| "ok".into()),
        ["renameat2", src, dst, how] => {
            let flags = match *how {
                "noreplace" => libc::RENAME_NOREPLACE,
                "exchange" => libc::RENAME_EXCHANGE,
                _ => return Err(bad()),
            };
            let (s, d) = (cstr(src), cstr(dst));
            check(unsafe {
                libc::renameat2(
                    libc::AT_FDCWD,
                    s.as_ptr(),
                    libc::AT_FDCWD,
                    d.as_ptr(),
                    flags,
                )
            })
            .map(|_| "ok".into())
        }
        [kind @ ("flock" | "lockf"), path, mode] => {
            lock(held, kind, path, mode).map(|_| "ok".into())
        }
        ["hold", path] => {
            let f = File::open(path)?;
            held.insert(format!("hold:{path}"), f);
            Ok("ok".into())
        }
        ["readheld", path] => {
            let f = held.get(&format!("hold:{path}")).ok_or_else(bad)?;
            let mut buf = vec![0u8; 1 << 20];
            let mut v = Vec::new();
            loop {
                let n = std::os::unix::fs::FileExt::read_at(f, &mut buf, v.len() as u64)?;
                if n == 0 {
                    break;
                }
                v.extend_from_slice(&buf[..n]);
            }
            Ok(describe(&v))
        }
        ["fstatheld", path] => {
            let f = held.get(&format!("hold:{path}")).ok_or_else(bad)?;
            let m = f.metadata()?;
            Ok(format!("ok {} {} {}", m.ino(), m.nlink(), m.size()))
        }
        ["unlock", path] => {
            held.remove(&format!("hold:{path}"));
            held.remove(*path);
            Ok("ok".into())
        }
        ["renameloop", dir, target, count, len] => {
            let count: usize = count.parse().map_err(|_| bad())?;
            let len: usize = len.parse().map_err(|_| bad())?;
            let tmp = format!("{dir}/.tmp-{}", std::process::id());
            for i in 0..count {
                let letter = b'a' + (i % 26) as u8;
                write_file(&tmp, &vec![letter; len])?;
                std::fs::rename(&tmp, target)?;
            }
            Ok(format!("ok {count}"))
        }
        ["readloop", path, len, stop] => {
            let len: usize = len.parse().map_err(|_| bad())?;
            let mut counts: BTreeMap<String, u64> = BTreeMap::new();
            let mut n = 0u64;
            loop {
                // Check the stop file first, but always do at least one more read after it
                // appears, so a loop never ends before the writer's last rename.
                let stop_now = Path::new(stop).exists();
                n += 1;
                // Errors are told apart by the call that failed: open (path-based) or read (on
                // the open fd).
                let res = File::open(path)
                    .map_err(|e| format!("{}@open", errname(&e)))
                    .and_then(|mut f| {
                        read_all(&mut f).map_err(|e| format!("{}@read", errname(&e)))
                    });
                let key = match res {
                    Ok(d) if d.len() == len && d.iter().all(|&b| b == d[0]) => "ok".to_string(),
                    Ok(_) => "torn".to_string(),
                    Err(e) => e,
                };
                *counts.entry(key).or_default() += 1;
                if stop_now {
                    break;
                }
            }
            let mut s = format!("ok reads={n}");
            for (k, v) in counts {
                s.push_str(&format!(" {k}={v}"));
            }
            Ok(s)
        }
        _ => Err(bad()),
    }
}

fn main() {
    let stdin = io::stdin();
    let mut out = io::stdout().lock();
    let mut held = HashMap::new();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        let cmd: Vec<&str> = line.split_whitespace().collect();
        if cmd.first() == Some(&"exit") {
            break;
        }
        let reply = match run(&cmd, &mut held) {
            Ok(s) => s,
            Err(e) => format!("err {}", errname(&e)),
        };
        if writeln!(out, "{reply}").and_then(|_| out.flush()).is_err() {
            break;
        }
    }
}
