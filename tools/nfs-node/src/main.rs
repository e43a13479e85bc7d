//! zarrtx-nfs-node: mounts an NFSv3 export through FUSE with a userspace NFS client, so that one
//! machine can have several independent "cluster nodes" on one real NFS server (each daemon has
//! its own TCP connections, FUSE superblock, kernel caches and kernel lock table).
//!
//! Usage:
//!   zarrtx-nfs-node --server 127.0.0.1 --nfs-port 2049 --mount-port 20048 --export /export \
//!       [--name node-a] [--timeout-secs 10] [--attempts 3] [--threads 8] [--debug] <mountpoint>
//!
//! Runs in the foreground; SIGTERM, SIGINT or SIGHUP unmount and exit 0.

mod fs;
mod rpc;

use std::ffi::CString;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use fuser::{Config, MountOption, SessionACL};

struct Args {
    server: IpAddr,
    nfs_port: u16,
    mount_port: u16,
    export: String,
    name: String,
    timeout: Duration,
    attempts: u32,
    threads: usize,
    debug: bool,
    mountpoint: PathBuf,
}

const USAGE: &str = "usage: zarrtx-nfs-node --server ADDR [--nfs-port 2049] [--mount-port 20048] \
[--export /export] [--name NAME] [--timeout-secs 10] [--attempts 3] [--threads 8] [--debug] MOUNTPOINT";

fn parse_args() -> Result<Args, String> {
    let mut server = None;
    let mut nfs_port = 2049u16;
    let mut mount_port = 20048u16;
    let mut export = "/export".to_string();
    let mut name = None;
    let mut timeout = 10u64;
    let mut attempts = 3u32;
    let mut threads = 8usize;
    let mut debug =
        std::env::var_os("ZARRTX_NFS_NODE_DEBUG").is_some_and(|v| v != "0" && !v.is_empty());
    let mut mountpoint = None;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut val = |flag: &str| it.next().ok_or_else(|| format!("{flag} needs a value"));
        match a.as_str() {
            "--server" => {
                server = Some(
                    val("--server")?
                        .parse::<IpAddr>()
                        .map_err(|e| format!("--server: {e}"))?,
                )
            }
            "--nfs-port" => {
                nfs_port = val("--nfs-port")?
                    .parse()
                    .map_err(|e| format!("--nfs-port: {e}"))?
            }
            "--mount-port" => {
                mount_port = val("--mount-port")?
                    .parse()
                    .map_err(|e| format!("--mount-port: {e}"))?
            }
            "--export" => export = val("--export")?,
            "--name" => name = Some(val("--name")?),
            "--timeout-secs" => {
                timeout = val("--timeout-secs")?
                    .parse()
                    .map_err(|e| format!("--timeout-secs: {e}"))?
            }
            "--attempts" => {
                attempts = val("--attempts")?
                    .parse()
                    .map_err(|e| format!("--attempts: {e}"))?
            }
            "--threads" => {
                threads = val("--threads")?
                    .parse()
                    .map_err(|e| format!("--threads: {e}"))?
            }
            "--debug" => debug = true,
            "-h" | "--help" => return Err(USAGE.to_string()),
            s if s.starts_with('-') => return Err(format!("unknown option {s}\n{USAGE}")),
            s => {
                if mountpoint.replace(PathBuf::from(s)).is_some() {
                    return Err(format!("more than one mount point\n{USAGE}"));
                }
            }
        }
    }
    let mountpoint = mountpoint.ok_or_else(|| format!("no mount point\n{USAGE}"))?;
    let server = server.ok_or_else(|| format!("--server is required\n{USAGE}"))?;
    let name = name.unwrap_or_else(|| {
        mountpoint
            .file_name()
            .map_or_else(|| "node".to_string(), |n| n.to_string_lossy().into_owned())
    });
    Ok(Args {
        server,
        nfs_port,
        mount_port,
        export,
        name,
        timeout: Duration::from_secs(timeout.max(1)),
        attempts: attempts.max(1),
        threads: threads.clamp(1, 64),
        debug,
        mountpoint,
    })
}

/// Blocks the termination signals in this thread (and so in every thread spawned after) and
/// returns the set, to be collected with sigwait.
fn block_signals() -> libc::sigset_t {
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&mut set, s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

fn unmount(path: &std::path::Path) {
    let Ok(c) = CString::new(path.as_os_str().as_encoded_bytes()) else {
        return;
    };
    unsafe {
        if libc::umount2(c.as_ptr(), 0) != 0 {
            // Busy (a process still has its cwd or a file there): detach it lazily.
            libc::umount2(c.as_ptr(), libc::MNT_DETACH);
        }
    }
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let sigs = block_signals();

    // A mount point left by a crashed daemon answers ENOTCONN: detach it first.
    if let Err(e) = std::fs::metadata(&args.mountpoint) {
        if e.raw_os_error() == Some(libc::ENOTCONN) {
            eprintln!(
                "[{}] {} is a dead FUSE mount: detaching it",
                args.name,
                args.mountpoint.display()
            );
            unmount(&args.mountpoint);
        }
    }

    let mount_addr = SocketAddr::new(args.server, args.mount_port);
    let nfs_addr = SocketAddr::new(args.server, args.nfs_port);
    let machine = format!("zarrtx-nfs-{}", args.name).into_bytes();
    let root_fh = match rpc::mount_export(mount_addr, &args.export, args.timeout, &machine) {
        Ok(fh) => fh,
        Err(e) => {
            eprintln!("[{}] mount of {} failed: {e}", args.name, args.export);
            return ExitCode::from(1);
        }
    };
    let rpc = rpc::Rpc::new(
        nfs_addr,
        args.timeout,
        args.attempts,
        args.name.clone(),
        args.debug,
    );
    let fs = match fs::NfsFs::new(rpc, root_fh, args.debug) {
        Ok(fs) => fs,
        Err(e) => {
            eprintln!("[{}] {e}", args.name);
            return ExitCode::from(1);
        }
    };

    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::FSName(format!("{}:{}", args.server, args.export)),
        MountOption::Subtype("zarrtx-nfs".to_string()),
        MountOption::RW,
        MountOption::NoAtime,
    ];
    config.acl = SessionACL::All;
    config.n_threads = Some(args.threads);
    config.clone_fd = true;
    let session = match fuser::spawn_mount(fs, &args.mountpoint, &config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!(
                "[{}] FUSE mount at {} failed: {e}",
                args.name,
                args.mountpoint.display()
            );
            return ExitCode::from(1);
        }
    };
    eprintln!(
        "[{}] mounted {}:{} at {} (pid {})",
        args.name,
        args.server,
        args.export,
        args.mountpoint.display(),
        std::process::id()
    );

    let mut sig: libc::c_int = 0;
    unsafe {
        libc::sigwait(&sigs, &mut sig);
    }
    eprintln!(
        "[{}] signal {sig}: unmounting {}",
        args.name,
        args.mountpoint.display()
    );
    unmount(&args.mountpoint);
    // Do not join the FUSE threads (a lazily detached mount may still have users); exiting
    // closes /dev/fuse, which ends the connection.
    std::mem::forget(session);
    ExitCode::SUCCESS
}
