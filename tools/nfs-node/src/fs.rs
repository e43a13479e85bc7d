//! The FUSE filesystem: every operation becomes NFSv3 calls, nothing is cached here.
//!
//! * Entry and attribute timeouts are 0, no `FOPEN_KEEP_CACHE`, no `direct_io`: each path walk
//!   sends LOOKUP, each stat GETATTR, each open drops the kernel's page cache of the file, and a
//!   read first refreshes the size with GETATTR on the open file's handle (close-to-open).
//! * Writes are sent to the server (UNSTABLE) before `write()` returns; fsync sends COMMIT.
//! * Every open file keeps the NFS file handle it was opened with: reads, writes, fstat and
//!   ftruncate use that handle, so they answer for that file, and ESTALE from it reaches the
//!   application (as on NFS when another client replaced or removed the file).
//! * Locks are not implemented: the kernel then keeps flock/fcntl locks in this mount's own
//!   lock table, i.e. node-local, like NFS mounted with `local_lock=all`.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use fuser::{
    AccessFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation,
    INodeNo, InitFlags, KernelConfig, LockOwner, OpenAccMode, OpenFlags, RenameFlags, ReplyAttr,
    ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs,
    ReplyWrite, Request, TimeOrNow, WriteFlags,
};
use nfs3_client::nfs3_types::nfs3::*;
use nfs3_client::nfs3_types::xdr_codec::Opaque;

use crate::rpc::{errno_of, CallError, Cred, Rpc};

const TTL: Duration = Duration::ZERO;
/// Node ids handed out when a fileid cannot be used as the node id (see `Table::remember`).
const SYNTH_BASE: u64 = 1 << 62;

struct Node {
    fh: Vec<u8>,
    nlookup: u64,
    gen: u64,
}

/// FUSE node ids <-> NFS file handles. A node id is the file's NFS fileid (so `st_ino` is the
/// same on every node, as on NFS) unless that id is still held by another file handle (the
/// server reused an inode number while this mount still knows the old file): then a synthetic
/// id is used, so the kernel never mixes two files in one inode.
struct Table {
    nodes: HashMap<u64, Node>,
    by_fh: HashMap<Vec<u8>, u64>,
    next_synth: u64,
    next_gen: u64,
}

impl Table {
    fn fh(&self, ino: u64) -> Option<Vec<u8>> {
        self.nodes.get(&ino).map(|n| n.fh.clone())
    }

    fn remember(&mut self, fh: &[u8], fileid: u64) -> (u64, u64) {
        if let Some(&ino) = self.by_fh.get(fh) {
            let n = self.nodes.get_mut(&ino).expect("table consistent");
            n.nlookup += 1;
            return (ino, n.gen);
        }
        let ino = if fileid > 1 && fileid < SYNTH_BASE && !self.nodes.contains_key(&fileid) {
            fileid
        } else {
            self.next_synth += 1;
            SYNTH_BASE + self.next_synth
        };
        self.next_gen += 1;
        let gen = self.next_gen;
        self.nodes.insert(
            ino,
            Node {
                fh: fh.to_vec(),
                nlookup: 1,
                gen,
            },
        );
        self.by_fh.insert(fh.to_vec(), ino);
        (ino, gen)
    }

    fn forget(&mut self, ino: u64, n: u64) {
        if ino == 1 {
            return;
        }
        if let Some(node) = self.nodes.get_mut(&ino) {
            node.nlookup = node.nlookup.saturating_sub(n);
            if node.nlookup == 0 {
                let node = self.nodes.remove(&ino).expect("present");
                self.by_fh.remove(&node.fh);
            }
        }
    }

    fn ino_of(&self, fh: &[u8]) -> Option<u64> {
        self.by_fh.get(fh).copied()
    }
}

struct OpenFile {
    fh: Vec<u8>,
}

struct DirHandle {
    entries: Option<Vec<(u64, FileType, OsString)>>,
}

pub struct NfsFs {
    rpc: Rpc,
    root_fh: Vec<u8>,
    root_fileid: u64,
    rtmax: u32,
    wtmax: u32,
    dtpref: u32,
    table: Mutex<Table>,
    files: Mutex<HashMap<u64, OpenFile>>,
    dirs: Mutex<HashMap<u64, DirHandle>>,
    next_handle: AtomicU64,
    debug: bool,
}

fn err(e: i32) -> Errno {
    Errno::from_i32(e)
}

fn nfh(fh: &[u8]) -> nfs_fh3 {
    nfs_fh3 {
        data: Opaque::owned(fh.to_vec()),
    }
}

fn dirop<'a>(dir: &[u8], name: &'a OsStr) -> diropargs3<'a> {
    diropargs3 {
        dir: nfh(dir),
        name: filename3(Opaque::borrowed(name.as_bytes())),
    }
}

fn time(t: &nfstime3) -> SystemTime {
    SystemTime::from(t)
}

fn kind(t: ftype3) -> FileType {
    match t {
        ftype3::NF3REG => FileType::RegularFile,
        ftype3::NF3DIR => FileType::Directory,
        ftype3::NF3BLK => FileType::BlockDevice,
        ftype3::NF3CHR => FileType::CharDevice,
        ftype3::NF3LNK => FileType::Symlink,
        ftype3::NF3SOCK => FileType::Socket,
        ftype3::NF3FIFO => FileType::NamedPipe,
    }
}

fn to_attr(ino: u64, a: &fattr3) -> FileAttr {
    FileAttr {
        ino: INodeNo(ino),
        size: a.size,
        blocks: a.used.div_ceil(512),
        atime: time(&a.atime),
        mtime: time(&a.mtime),
        ctime: time(&a.ctime),
        crtime: time(&a.ctime),
        kind: kind(a.type_),
        perm: (a.mode & 0o7777) as u16,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: libc::makedev(a.rdev.specdata1, a.rdev.specdata2) as u32,
        blksize: 4096,
        flags: 0,
    }
}

fn cred(req: &Request) -> Cred {
    Cred {
        uid: req.uid(),
        gid: req.gid(),
    }
}

fn mode_only(mode: u32) -> sattr3 {
    sattr3 {
        mode: Nfs3Option::Some(mode & 0o7777),
        ..Default::default()
    }
}

/// Result of one operation: an errno on failure.
type R<T> = Result<T, i32>;

fn call_err(e: CallError) -> i32 {
    e.errno()
}

impl NfsFs {
    pub fn new(rpc: Rpc, root_fh: Vec<u8>, debug: bool) -> Result<NfsFs, String> {
        let c = Cred { uid: 0, gid: 0 };
        let info = rpc
            .nfs("FSINFO", c, true, |cl| {
                rpc_block(cl.fsinfo(&FSINFO3args {
                    fsroot: nfh(&root_fh),
                }))
            })
            .map_err(|e| format!("FSINFO: {e}"))?
            .map_err(|s| format!("FSINFO: {s}"))?;
        let attrs = rpc
            .nfs("GETATTR", c, true, |cl| {
                rpc_block(cl.getattr(&GETATTR3args {
                    object: nfh(&root_fh),
                }))
            })
            .map_err(|e| format!("GETATTR of the export root: {e}"))?
            .map_err(|s| format!("GETATTR of the export root: {s}"))?;
        let mut table = Table {
            nodes: HashMap::new(),
            by_fh: HashMap::new(),
            next_synth: 0,
            next_gen: 1,
        };
        table.nodes.insert(
            1,
            Node {
                fh: root_fh.clone(),
                nlookup: u64::MAX / 2,
                gen: 0,
            },
        );
        table.by_fh.insert(root_fh.clone(), 1);
        let fs = NfsFs {
            rpc,
            root_fh,
            root_fileid: attrs.obj_attributes.fileid,
            rtmax: info.rtmax.clamp(4096, 1 << 20),
            wtmax: info.wtmax.clamp(4096, 1 << 20),
            dtpref: info.dtpref.clamp(4096, 1 << 16),
            table: Mutex::new(table),
            files: Mutex::new(HashMap::new()),
            dirs: Mutex::new(HashMap::new()),
            next_handle: AtomicU64::new(1),
            debug,
        };
        eprintln!(
            "[{}] export root fileid {}, rtmax {}, wtmax {}, dtpref {}",
            fs.rpc.node, fs.root_fileid, fs.rtmax, fs.wtmax, fs.dtpref
        );
        Ok(fs)
    }

    fn node_fh(&self, ino: INodeNo) -> R<Vec<u8>> {
        self.table.lock().unwrap().fh(ino.0).ok_or(libc::ESTALE)
    }

    fn file_fh(&self, fh: FileHandle) -> R<Vec<u8>> {
        self.files
            .lock()
            .unwrap()
            .get(&fh.0)
            .map(|f| f.fh.clone())
            .ok_or(libc::EBADF)
    }

    fn getattr_fh(&self, c: Cred, fh: &[u8]) -> R<fattr3> {
        self.rpc
            .nfs("GETATTR", c, true, |cl| {
                rpc_block(cl.getattr(&GETATTR3args { object: nfh(fh) }))
            })
            .map_err(call_err)?
            .map(|ok| ok.obj_attributes)
            .map_err(errno_of)
    }

    fn lookup_fh(&self, c: Cred, dir: &[u8], name: &OsStr) -> R<(Vec<u8>, fattr3)> {
        let ok = self
            .rpc
            .nfs("LOOKUP", c, true, |cl| {
                rpc_block(cl.lookup(&LOOKUP3args {
                    what: dirop(dir, name),
                }))
            })
            .map_err(call_err)?
            .map_err(errno_of)?;
        let fh = ok.object.data.to_vec();
        let a = match ok.obj_attributes {
            Nfs3Option::Some(a) => a,
            Nfs3Option::None => self.getattr_fh(c, &fh)?,
        };
        Ok((fh, a))
    }

    /// Registers a new entry reference (lookup, create, mkdir, link, ...) and builds its reply.
    fn entry(&self, fh: &[u8], a: &fattr3) -> (FileAttr, Generation) {
        let (ino, gen) = self.table.lock().unwrap().remember(fh, a.fileid);
        (to_attr(ino, a), Generation(gen))
    }

    /// fh and attributes of a newly created object: from the reply, else LOOKUP/GETATTR.
    fn created_obj(
        &self,
        c: Cred,
        dir: &[u8],
        name: &OsStr,
        obj: post_op_fh3,
        attrs: post_op_attr,
    ) -> R<(Vec<u8>, fattr3)> {
        match (obj, attrs) {
            (Nfs3Option::Some(fh), Nfs3Option::Some(a)) => Ok((fh.data.to_vec(), a)),
            (Nfs3Option::Some(fh), Nfs3Option::None) => {
                let fh = fh.data.to_vec();
                let a = self.getattr_fh(c, &fh)?;
                Ok((fh, a))
            }
            _ => self.lookup_fh(c, dir, name),
        }
    }

    fn new_handle(&self) -> u64 {
        self.next_handle.fetch_add(1, Ordering::Relaxed)
    }

    fn do_lookup(&self, req: &Request, parent: INodeNo, name: &OsStr) -> R<(FileAttr, Generation)> {
        let dir = self.node_fh(parent)?;
        let (fh, a) = self.lookup_fh(cred(req), &dir, name)?;
        Ok(self.entry(&fh, &a))
    }

    fn do_getattr(&self, req: &Request, ino: INodeNo, fh: Option<FileHandle>) -> R<FileAttr> {
        let nfs_fh = match fh.map(|h| self.file_fh(h)) {
            Some(Ok(f)) => f,
            _ => self.node_fh(ino)?,
        };
        let a = self.getattr_fh(cred(req), &nfs_fh)?;
        Ok(to_attr(ino.0, &a))
    }

    #[allow(clippy::too_many_arguments)]
    fn do_setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        fh: Option<FileHandle>,
    ) -> R<FileAttr> {
        let nfs_fh = match fh.map(|h| self.file_fh(h)) {
            Some(Ok(f)) => f,
            _ => self.node_fh(ino)?,
        };
        let opt = |v: Option<u32>| v.map_or(Nfs3Option::None, Nfs3Option::Some);
        let t = |v: Option<TimeOrNow>| -> Option<Result<nfstime3, ()>> {
            v.map(|t| match t {
                TimeOrNow::Now => Err(()),
                TimeOrNow::SpecificTime(st) => Ok(nfstime3::try_from(st).unwrap_or_default()),
            })
        };
        let attrs = sattr3 {
            mode: opt(mode.map(|m| m & 0o7777)),
            uid: opt(uid),
            gid: opt(gid),
            size: size.map_or(Nfs3Option::None, Nfs3Option::Some),
            atime: match t(atime) {
                None => set_atime::DONT_CHANGE,
                Some(Err(())) => set_atime::SET_TO_SERVER_TIME,
                Some(Ok(v)) => set_atime::SET_TO_CLIENT_TIME(v),
            },
            mtime: match t(mtime) {
                None => set_mtime::DONT_CHANGE,
                Some(Err(())) => set_mtime::SET_TO_SERVER_TIME,
                Some(Ok(v)) => set_mtime::SET_TO_CLIENT_TIME(v),
            },
        };
        let c = cred(req);
        let ok = self
            .rpc
            .nfs("SETATTR", c, true, |cl| {
                rpc_block(cl.setattr(&SETATTR3args {
                    object: nfh(&nfs_fh),
                    new_attributes: attrs.clone(),
                    guard: Nfs3Option::None,
                }))
            })
            .map_err(call_err)?
            .map_err(errno_of)?;
        let a = match ok.obj_wcc.after {
            Nfs3Option::Some(a) => a,
            Nfs3Option::None => self.getattr_fh(c, &nfs_fh)?,
        };
        Ok(to_attr(ino.0, &a))
    }

    fn do_mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
    ) -> R<(FileAttr, Generation)> {
        let dir = self.node_fh(parent)?;
        let c = cred(req);
        // MKDIR is not idempotent: sent once; its own status is the answer (EEXIST for the
        // loser of a race).
        let ok = self
            .rpc
            .nfs("MKDIR", c, false, |cl| {
                rpc_block(cl.mkdir(&MKDIR3args {
                    where_: dirop(&dir, name),
                    attributes: mode_only(mode),
                }))
            })
            .map_err(call_err)?
            .map_err(errno_of)?;
        let (fh, a) = self.created_obj(c, &dir, name, ok.obj, ok.obj_attributes)?;
        Ok(self.entry(&fh, &a))
    }

    /// GUARDED CREATE (the server answers EEXIST when the name exists); returns the new file's
    /// fh and attributes.
    fn create_file(
        &self,
        c: Cred,
        dir: &[u8],
        name: &OsStr,
        attrs: sattr3,
    ) -> R<(Vec<u8>, fattr3)> {
        let ok = self
            .rpc
            .nfs("CREATE", c, false, |cl| {
                rpc_block(cl.create(&CREATE3args {
                    where_: dirop(dir, name),
                    how: createhow3::GUARDED(attrs.clone()),
                }))
            })
            .map_err(call_err)?
            .map_err(errno_of)?;
        self.created_obj(c, dir, name, ok.obj, ok.obj_attributes)
    }

    fn open_handle(&self, fh: Vec<u8>) -> u64 {
        let h = self.new_handle();
        self.files.lock().unwrap().insert(h, OpenFile { fh });
        h
    }

    fn do_create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
    ) -> R<(FileAttr, Generation, u64)> {
        let dir = self.node_fh(parent)?;
        let c = cred(req);
        let attrs = mode_only(mode & !umask);
        // O_CREAT|O_EXCL: a GUARDED create, which the server refuses with EEXIST when the name
        // exists, so of two racing exclusive creates exactly one succeeds. Plain O_CREAT: try
        // GUARDED too and open the existing file when another node created it meanwhile (no
        // UNCHECKED create, which would re-apply the mode to someone else's file).
        let (fh, a) = match self.create_file(c, &dir, name, attrs) {
            Ok(v) => v,
            Err(libc::EEXIST) if flags & libc::O_EXCL == 0 => {
                let (fh, a) = self.lookup_fh(c, &dir, name)?;
                if a.type_ == ftype3::NF3DIR {
                    return Err(libc::EISDIR);
                }
                if flags & libc::O_TRUNC != 0 && a.size != 0 {
                    let ok = self
                        .rpc
                        .nfs("SETATTR", c, true, |cl| {
                            rpc_block(cl.setattr(&SETATTR3args {
                                object: nfh(&fh),
                                new_attributes: sattr3 {
                                    size: Nfs3Option::Some(0),
                                    ..Default::default()
                                },
                                guard: Nfs3Option::None,
                            }))
                        })
                        .map_err(call_err)?
                        .map_err(errno_of)?;
                    let a = match ok.obj_wcc.after {
                        Nfs3Option::Some(a) => a,
                        Nfs3Option::None => self.getattr_fh(c, &fh)?,
                    };
                    (fh, a)
                } else {
                    (fh, a)
                }
            }
            Err(e) => return Err(e),
        };
        let (attr, gen) = self.entry(&fh, &a);
        let h = self.open_handle(fh);
        Ok((attr, gen, h))
    }

    fn do_open(&self, req: &Request, ino: INodeNo, flags: OpenFlags) -> R<u64> {
        let fh = self.node_fh(ino)?;
        let want = match flags.acc_mode() {
            OpenAccMode::O_RDONLY => ACCESS3_READ,
            OpenAccMode::O_WRONLY => ACCESS3_MODIFY,
            OpenAccMode::O_RDWR => ACCESS3_READ | ACCESS3_MODIFY,
        };
        // Like the Linux client's open: ask the server (ACCESS revalidates the handle, so a
        // handle replaced since the path walk fails with ESTALE here, and the kernel's
        // retry_estale walks the path again with fresh LOOKUPs).
        let ok = self
            .rpc
            .nfs("ACCESS", cred(req), true, |cl| {
                rpc_block(cl.access(&ACCESS3args {
                    object: nfh(&fh),
                    access: want,
                }))
            })
            .map_err(call_err)?
            .map_err(errno_of)?;
        if ok.access & want != want {
            return Err(libc::EACCES);
        }
        Ok(self.open_handle(fh))
    }

    fn do_read(&self, req: &Request, fh: FileHandle, offset: u64, size: u32) -> R<Vec<u8>> {
        let nfs_fh = self.file_fh(fh)?;
        let c = cred(req);
        let mut out = Vec::with_capacity(size as usize);
        let mut off = offset;
        while out.len() < size as usize {
            let count = (size as usize - out.len()).min(self.rtmax as usize) as u32;
            let ok = self
                .rpc
                .nfs("READ", c, true, |cl| {
                    rpc_block(cl.read(&READ3args {
                        file: nfh(&nfs_fh),
                        offset: off,
                        count,
                    }))
                })
                .map_err(call_err)?
                .map_err(errno_of)?;
            let n = ok.data.len();
            out.extend_from_slice(&ok.data);
            off += n as u64;
            if ok.eof || n == 0 {
                break;
            }
        }
        Ok(out)
    }

    fn do_write(&self, req: &Request, fh: FileHandle, offset: u64, data: &[u8]) -> R<u32> {
        let nfs_fh = self.file_fh(fh)?;
        let c = cred(req);
        let mut done = 0usize;
        while done < data.len() {
            let chunk = &data[done..(done + self.wtmax as usize).min(data.len())];
            let off = offset + done as u64;
            let ok = self
                .rpc
                .nfs("WRITE", c, true, |cl| {
                    rpc_block(cl.write(&WRITE3args {
                        file: nfh(&nfs_fh),
                        offset: off,
                        count: chunk.len() as u32,
                        stable: stable_how::UNSTABLE,
                        data: Opaque::borrowed(chunk),
                    }))
                })
                .map_err(call_err)?
                .map_err(errno_of)?;
            if ok.count == 0 {
                return Err(libc::EIO);
            }
            done += (ok.count as usize).min(chunk.len());
        }
        Ok(done as u32)
    }

    fn do_commit(&self, req: &Request, nfs_fh: &[u8]) -> R<()> {
        self.rpc
            .nfs("COMMIT", cred(req), true, |cl| {
                rpc_block(cl.commit(&COMMIT3args {
                    file: nfh(nfs_fh),
                    offset: 0,
                    count: 0,
                }))
            })
            .map_err(call_err)?
            .map_err(errno_of)?;
        Ok(())
    }

    fn load_dir(&self, req: &Request, ino: INodeNo) -> R<Vec<(u64, FileType, OsString)>> {
        let dir = self.node_fh(ino)?;
        let c = cred(req);
        'restart: for _ in 0..5 {
            let mut entries = Vec::new();
            let mut cookie = 0u64;
            let mut verf = cookieverf3::default();
            loop {
                let res = self
                    .rpc
                    .nfs("READDIRPLUS", c, true, |cl| {
                        rpc_block(cl.readdirplus(&READDIRPLUS3args {
                            dir: nfh(&dir),
                            cookie,
                            cookieverf: verf,
                            dircount: self.dtpref,
                            maxcount: self.dtpref * 8,
                        }))
                    })
                    .map_err(call_err)?;
                let ok = match res {
                    Ok(ok) => ok,
                    Err(nfsstat3::NFS3ERR_BAD_COOKIE) | Err(nfsstat3::NFS3ERR_NOT_SYNC) => {
                        continue 'restart
                    }
                    Err(s) => return Err(errno_of(s)),
                };
                verf = ok.cookieverf;
                for e in ok.reply.entries.0 {
                    cookie = e.cookie;
                    let name = OsString::from_vec(e.name.0.to_vec());
                    let t = match (&e.name_attributes, &e.name_handle) {
                        (Nfs3Option::Some(a), _) => kind(a.type_),
                        (_, Nfs3Option::Some(fh)) => kind(self.getattr_fh(c, &fh.data)?.type_),
                        _ => match self.lookup_fh(c, &dir, &name) {
                            Ok((_, a)) => kind(a.type_),
                            Err(_) => continue, // removed meanwhile
                        },
                    };
                    let ino = match &e.name_handle {
                        Nfs3Option::Some(fh) => self.table.lock().unwrap().ino_of(&fh.data),
                        Nfs3Option::None => None,
                    };
                    let ino = ino.unwrap_or(if e.fileid == self.root_fileid {
                        1
                    } else {
                        e.fileid
                    });
                    entries.push((ino, t, name));
                }
                if ok.reply.eof {
                    break;
                }
            }
            if !entries.iter().any(|e| e.2 == ".") {
                entries.insert(0, (ino.0, FileType::Directory, OsString::from(".")));
            }
            if !entries.iter().any(|e| e.2 == "..") {
                entries.insert(1, (1, FileType::Directory, OsString::from("..")));
            }
            return Ok(entries);
        }
        Err(libc::EIO)
    }

    fn trace<T>(&self, what: &str, detail: impl FnOnce() -> String, r: &R<T>) {
        if self.debug {
            match r {
                Ok(_) => eprintln!("[{}] {what} {} -> ok", self.rpc.node, detail()),
                Err(e) => eprintln!("[{}] {what} {} -> errno {e}", self.rpc.node, detail()),
            }
        }
    }
}

/// Runs one nfs3_client call to completion (our transport is blocking).
fn rpc_block<F: std::future::Future>(f: F) -> F::Output {
    crate::rpc::block_on(f)
}

impl Filesystem for NfsFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // Lookups and readdirs in one directory may run in parallel (the server arbitrates).
        let _ = config.add_capabilities(InitFlags::FUSE_PARALLEL_DIROPS);
        let _ = config.set_max_readahead(128 * 1024);
        Ok(())
    }

    fn lookup(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let r = self.do_lookup(req, parent, name);
        self.trace("lookup", || format!("{} {:?}", parent.0, name), &r);
        match r {
            Ok((attr, gen)) => reply.entry(&TTL, &attr, gen),
            Err(e) => reply.error(err(e)),
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.table.lock().unwrap().forget(ino.0, nlookup);
    }

    fn getattr(&self, req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        let r = self.do_getattr(req, ino, fh);
        self.trace(
            "getattr",
            || format!("{} fh {:?}", ino.0, fh.map(|h| h.0)),
            &r,
        );
        match r {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(err(e)),
        }
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let r = self.do_setattr(req, ino, mode, uid, gid, size, atime, mtime, fh);
        self.trace(
            "setattr",
            || format!("{} size {size:?} mode {mode:?}", ino.0),
            &r,
        );
        match r {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(err(e)),
        }
    }

    fn readlink(&self, req: &Request, ino: INodeNo, reply: ReplyData) {
        let r = (|| {
            let fh = self.node_fh(ino)?;
            let ok = self
                .rpc
                .nfs("READLINK", cred(req), true, |cl| {
                    rpc_block(cl.readlink(&READLINK3args { symlink: nfh(&fh) }))
                })
                .map_err(call_err)?
                .map_err(errno_of)?;
            Ok(ok.data.0.to_vec())
        })();
        match r {
            Ok(d) => reply.data(&d),
            Err(e) => reply.error(err(e)),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        let r = (|| {
            let dir = self.node_fh(parent)?;
            let c = cred(req);
            let perm = mode_only(mode & !umask);
            let (fh, a) = match mode & libc::S_IFMT {
                libc::S_IFREG => self.create_file(c, &dir, name, perm)?,
                fmt => {
                    if !matches!(
                        fmt,
                        libc::S_IFIFO | libc::S_IFSOCK | libc::S_IFCHR | libc::S_IFBLK
                    ) {
                        return Err(libc::EINVAL);
                    }
                    let what = || {
                        let d = || devicedata3 {
                            dev_attributes: perm.clone(),
                            spec: specdata3 {
                                specdata1: libc::major(rdev as libc::dev_t),
                                specdata2: libc::minor(rdev as libc::dev_t),
                            },
                        };
                        match fmt {
                            libc::S_IFIFO => mknoddata3::NF3FIFO(perm.clone()),
                            libc::S_IFSOCK => mknoddata3::NF3SOCK(perm.clone()),
                            libc::S_IFCHR => mknoddata3::NF3CHR(d()),
                            _ => mknoddata3::NF3BLK(d()),
                        }
                    };
                    let ok = self
                        .rpc
                        .nfs("MKNOD", c, false, |cl| {
                            rpc_block(cl.mknod(&MKNOD3args {
                                where_: dirop(&dir, name),
                                what: what(),
                            }))
                        })
                        .map_err(call_err)?
                        .map_err(errno_of)?;
                    self.created_obj(c, &dir, name, ok.obj, ok.obj_attributes)?
                }
            };
            Ok(self.entry(&fh, &a))
        })();
        self.trace("mknod", || format!("{} {:?}", parent.0, name), &r);
        match r {
            Ok((attr, gen)) => reply.entry(&TTL, &attr, gen),
            Err(e) => reply.error(err(e)),
        }
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let r = self.do_mkdir(req, parent, name, mode & !umask);
        self.trace("mkdir", || format!("{} {:?}", parent.0, name), &r);
        match r {
            Ok((attr, gen)) => reply.entry(&TTL, &attr, gen),
            Err(e) => reply.error(err(e)),
        }
    }

    fn unlink(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let r = (|| {
            let dir = self.node_fh(parent)?;
            self.rpc
                .nfs("REMOVE", cred(req), false, |cl| {
                    rpc_block(cl.remove(&REMOVE3args {
                        object: dirop(&dir, name),
                    }))
                })
                .map_err(call_err)?
                .map_err(errno_of)
                .map(|_| ())
        })();
        self.trace("unlink", || format!("{} {:?}", parent.0, name), &r);
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(err(e)),
        }
    }

    fn rmdir(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let r = (|| {
            let dir = self.node_fh(parent)?;
            self.rpc
                .nfs("RMDIR", cred(req), false, |cl| {
                    rpc_block(cl.rmdir(&RMDIR3args {
                        object: dirop(&dir, name),
                    }))
                })
                .map_err(call_err)?
                .map_err(errno_of)
                .map(|_| ())
        })();
        self.trace("rmdir", || format!("{} {:?}", parent.0, name), &r);
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(err(e)),
        }
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let r = (|| {
            let dir = self.node_fh(parent)?;
            let c = cred(req);
            let ok = self
                .rpc
                .nfs("SYMLINK", c, false, |cl| {
                    rpc_block(cl.symlink(&SYMLINK3args {
                        where_: dirop(&dir, link_name),
                        symlink: symlinkdata3 {
                            symlink_attributes: mode_only(0o777),
                            symlink_data: nfspath3(Opaque::borrowed(target.as_os_str().as_bytes())),
                        },
                    }))
                })
                .map_err(call_err)?
                .map_err(errno_of)?;
            let (fh, a) = self.created_obj(c, &dir, link_name, ok.obj, ok.obj_attributes)?;
            Ok(self.entry(&fh, &a))
        })();
        self.trace("symlink", || format!("{} {:?}", parent.0, link_name), &r);
        match r {
            Ok((attr, gen)) => reply.entry(&TTL, &attr, gen),
            Err(e) => reply.error(err(e)),
        }
    }

    fn rename(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let r = (|| {
            // NFSv3 RENAME has no NOREPLACE/EXCHANGE: refuse like the Linux NFS client.
            if !flags.is_empty() {
                return Err(libc::EINVAL);
            }
            let from = self.node_fh(parent)?;
            let to = self.node_fh(newparent)?;
            self.rpc
                .nfs("RENAME", cred(req), false, |cl| {
                    rpc_block(cl.rename(&RENAME3args {
                        from: dirop(&from, name),
                        to: dirop(&to, newname),
                    }))
                })
                .map_err(call_err)?
                .map_err(errno_of)
                .map(|_| ())
        })();
        self.trace(
            "rename",
            || {
                format!(
                    "{} {:?} -> {} {:?} flags {}",
                    parent.0,
                    name,
                    newparent.0,
                    newname,
                    flags.bits()
                )
            },
            &r,
        );
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(err(e)),
        }
    }

    fn link(
        &self,
        req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let r = (|| {
            let fh = self.node_fh(ino)?;
            let dir = self.node_fh(newparent)?;
            let c = cred(req);
            let ok = self
                .rpc
                .nfs("LINK", c, false, |cl| {
                    rpc_block(cl.link(&LINK3args {
                        file: nfh(&fh),
                        link: dirop(&dir, newname),
                    }))
                })
                .map_err(call_err)?
                .map_err(errno_of)?;
            let a = match ok.file_attributes {
                Nfs3Option::Some(a) => a,
                Nfs3Option::None => self.getattr_fh(c, &fh)?,
            };
            Ok(self.entry(&fh, &a))
        })();
        self.trace(
            "link",
            || format!("{} -> {} {:?}", ino.0, newparent.0, newname),
            &r,
        );
        match r {
            Ok((attr, gen)) => reply.entry(&TTL, &attr, gen),
            Err(e) => reply.error(err(e)),
        }
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let r = self.do_open(req, ino, flags);
        self.trace("open", || format!("{} flags {:#x}", ino.0, flags.0), &r);
        match r {
            // No FOPEN_KEEP_CACHE: the kernel drops this file's page cache at every open.
            Ok(h) => reply.opened(FileHandle(h), FopenFlags::empty()),
            Err(e) => reply.error(err(e)),
        }
    }

    fn read(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let r = self.do_read(req, fh, offset, size);
        self.trace("read", || format!("{} off {offset} size {size}", ino.0), &r);
        match r {
            Ok(d) => reply.data(&d),
            Err(e) => reply.error(err(e)),
        }
    }

    fn write(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let r = self.do_write(req, fh, offset, data);
        self.trace(
            "write",
            || format!("{} off {offset} len {}", ino.0, data.len()),
            &r,
        );
        match r {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(err(e)),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // Writes already reached the server before write() returned.
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.files.lock().unwrap().remove(&fh.0);
        reply.ok();
    }

    fn fsync(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let r = (|| {
            let nfs_fh = match self.file_fh(fh) {
                Ok(f) => f,
                Err(_) => self.node_fh(ino)?,
            };
            self.do_commit(req, &nfs_fh)
        })();
        self.trace("fsync", || format!("{}", ino.0), &r);
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(err(e)),
        }
    }

    fn opendir(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let h = self.new_handle();
        self.dirs
            .lock()
            .unwrap()
            .insert(h, DirHandle { entries: None });
        reply.opened(FileHandle(h), FopenFlags::empty());
    }

    fn readdir(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let cached = if offset == 0 {
            None
        } else {
            self.dirs
                .lock()
                .unwrap()
                .get(&fh.0)
                .and_then(|d| d.entries.clone())
        };
        let entries = match cached {
            Some(e) => e,
            None => match self.load_dir(req, ino) {
                Ok(e) => {
                    if let Some(d) = self.dirs.lock().unwrap().get_mut(&fh.0) {
                        d.entries = Some(e.clone());
                    }
                    e
                }
                Err(e) => return reply.error(err(e)),
            },
        };
        for (i, (eino, t, name)) in entries.iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(*eino), (i + 1) as u64, *t, name) {
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.dirs.lock().unwrap().remove(&fh.0);
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        // Directory operations are synchronous on the server (NFSv3 requires it).
        reply.ok();
    }

    fn statfs(&self, req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let r = self
            .rpc
            .nfs("FSSTAT", cred(req), true, |cl| {
                rpc_block(cl.fsstat(&FSSTAT3args {
                    fsroot: nfh(&self.root_fh),
                }))
            })
            .map_err(call_err)
            .and_then(|r| r.map_err(errno_of));
        match r {
            Ok(s) => {
                let bs = 4096u64;
                reply.statfs(
                    s.tbytes / bs,
                    s.fbytes / bs,
                    s.abytes / bs,
                    s.tfiles,
                    s.ffiles,
                    bs as u32,
                    255,
                    bs as u32,
                )
            }
            Err(e) => reply.error(err(e)),
        }
    }

    fn access(&self, req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        let r = (|| {
            let fh = self.node_fh(ino)?;
            let c = cred(req);
            let bits = mask.bits();
            if bits == libc::F_OK {
                return self.getattr_fh(c, &fh).map(|_| ());
            }
            let all = ACCESS3_READ
                | ACCESS3_LOOKUP
                | ACCESS3_MODIFY
                | ACCESS3_EXTEND
                | ACCESS3_DELETE
                | ACCESS3_EXECUTE;
            let ok = self
                .rpc
                .nfs("ACCESS", c, true, |cl| {
                    rpc_block(cl.access(&ACCESS3args {
                        object: nfh(&fh),
                        access: all,
                    }))
                })
                .map_err(call_err)?
                .map_err(errno_of)?;
            let is_dir =
                matches!(&ok.obj_attributes, Nfs3Option::Some(a) if a.type_ == ftype3::NF3DIR);
            let mut need = 0;
            if bits & libc::R_OK != 0 {
                need |= ACCESS3_READ;
            }
            if bits & libc::W_OK != 0 {
                need |= if is_dir {
                    ACCESS3_MODIFY
                } else {
                    ACCESS3_MODIFY | ACCESS3_EXTEND
                };
            }
            if bits & libc::X_OK != 0 {
                need |= if is_dir {
                    ACCESS3_LOOKUP
                } else {
                    ACCESS3_EXECUTE
                };
            }
            if ok.access & need == need {
                Ok(())
            } else {
                Err(libc::EACCES)
            }
        })();
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(err(e)),
        }
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let r = self.do_create(req, parent, name, mode, umask, flags);
        self.trace(
            "create",
            || format!("{} {:?} flags {flags:#x}", parent.0, name),
            &r,
        );
        match r {
            Ok((attr, gen, h)) => {
                reply.created(&TTL, &attr, gen, FileHandle(h), FopenFlags::empty())
            }
            Err(e) => reply.error(err(e)),
        }
    }
}
