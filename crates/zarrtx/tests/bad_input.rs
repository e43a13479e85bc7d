//! G9: bad input gets a typed error naming the element and the fix, and the store stays exactly as it was.

mod common;

use common::*;
use ndarray::ArrayD;
use std::process::Command;
use zarrtx::{
    AddOptions, Error, OpenOptions, RasterArray, RasterKind, RasterSource, RasterSpec, Store, Transformation,
};


fn image(shape: &[usize]) -> RasterSource<'static> {
    RasterSource::InMemory(RasterArray::U8(ArrayD::zeros(shape.to_vec())))
}

fn expect_refused(store: &Store, name: &str, spec: &RasterSpec, source: RasterSource<'_>, what: &str) -> Error {
    let before = fingerprint(store.root());
    let err = store.add_raster(name, spec, source, &AddOptions::default()).expect_err(what);
    assert_eq!(before, fingerprint(store.root()), "{what}: the store changed");
    err
}

#[test]
fn invalid_names_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("s.zarr"));
    let spec = RasterSpec::new(RasterKind::Image, &["c", "y", "x"]);
    for bad in ["", "a b", "__x", ".hidden", "a/b", ".."] {
        let e = expect_refused(&store, bad, &spec, image(&[1, 8, 8]), bad);
        assert!(matches!(&e, Error::InvalidName { name, .. } if name == bad), "{bad:?}: {e}");
    }
}

#[test]
fn duplicate_and_case_colliding_names_are_refused_across_types() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("s.zarr"));
    add_labels(&store, "Nuclei", 16, false).unwrap();
    let spec = RasterSpec::new(RasterKind::Image, &["c", "y", "x"]);
    for dup in ["Nuclei", "nuclei", "NUCLEI"] {
        let e = expect_refused(&store, dup, &spec, image(&[1, 8, 8]), dup);
        match e {
            Error::ElementExists { existing_type, existing_name, .. } => {
                assert_eq!((existing_type.as_str(), existing_name.as_str()), ("labels", "Nuclei"));
            }
            other => panic!("{dup}: {other}"),
        }
        assert!(e_message_names(dup, &store));
    }
}

fn e_message_names(name: &str, store: &Store) -> bool {
    let spec = RasterSpec::new(RasterKind::Image, &["c", "y", "x"]);
    let msg = store.add_raster(name, &spec, image(&[1, 8, 8]), &AddOptions::default()).unwrap_err().to_string();
    msg.contains(name) && msg.contains("overwrite")
}

#[test]
fn wrong_element_content_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("s.zarr"));
    let labels = RasterSpec::new(RasterKind::Labels, &["y", "x"]);
    let float_labels = RasterSource::InMemory(RasterArray::F32(ArrayD::zeros(vec![8, 8])));
    let e = expect_refused(&store, "seg", &labels, float_labels, "float labels");
    assert!(matches!(&e, Error::InvalidElement { name, reason } if name == "seg" && reason.contains("integer")), "{e}");

    let wrong_axes = RasterSpec::new(RasterKind::Image, &["y", "x", "c"]);
    let e = expect_refused(&store, "img", &wrong_axes, image(&[8, 8, 1]), "axes out of order");
    assert!(matches!(e, Error::InvalidElement { .. }), "{e}");

    let labels_with_c = RasterSpec::new(RasterKind::Labels, &["c", "y", "x"]);
    let e = expect_refused(&store, "seg", &labels_with_c, image(&[1, 8, 8]), "labels with channels");
    assert!(matches!(e, Error::InvalidElement { .. }), "{e}");

    let mut channels = RasterSpec::new(RasterKind::Image, &["c", "y", "x"]);
    channels.channel_names = Some(vec!["dapi".into(), "cd45".into()]);
    let e = expect_refused(&store, "img", &channels, image(&[3, 8, 8]), "2 channel names for 3 channels");
    assert!(matches!(&e, Error::InvalidElement { name, .. } if name == "img"), "{e}");

    let dims_vs_data = RasterSpec::new(RasterKind::Image, &["c", "y", "x"]);
    let e = expect_refused(&store, "img", &dims_vs_data, image(&[8, 8]), "2-D data for c,y,x");
    assert!(matches!(e, Error::InvalidElement { .. }), "{e}");

    let mut bad_transform = RasterSpec::new(RasterKind::Image, &["c", "y", "x"]);
    bad_transform.transformations.insert("global".into(), Transformation::Scale(vec![2.0, 2.0]));
    let e = expect_refused(&store, "img", &bad_transform, image(&[1, 8, 8]), "scale of the wrong length");
    assert!(matches!(e, Error::InvalidElement { .. }), "{e}");
    assert_eq!(store.version().unwrap(), 0);
}

#[test]
fn corrupt_metadata_is_reported_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.zarr");
    let store = open(&path);
    add_labels(&store, "a", 16, false).unwrap();
    drop(store);
    // A corrupt commit entry.
    let entry = path.join(".zarrtx/log/00000000000000000001.json");
    let good = std::fs::read(&entry).unwrap();
    std::fs::write(&entry, b"{not json").unwrap();
    match Store::open(&path, &OpenOptions::default()) {
        Err(Error::CorruptMetadata { path: p, .. }) => assert!(p.ends_with("00000000000000000001.json"), "{p:?}"),
        other => panic!("{other:?}"),
    }
    std::fs::write(&entry, good).unwrap();
    // A corrupt root zarr.json of a store spatialdata wrote (not yet adopted).
    let foreign = dir.path().join("foreign.zarr");
    std::fs::create_dir_all(&foreign).unwrap();
    std::fs::write(foreign.join("zarr.json"), b"{\"zarr_format\": 3, ").unwrap();
    let before = fingerprint(&foreign);
    match Store::open(&foreign, &OpenOptions::default()) {
        Err(Error::CorruptMetadata { path: p, .. }) => assert!(p.ends_with("zarr.json")),
        other => panic!("{other:?}"),
    }
    assert_eq!(before, fingerprint(&foreign).into_iter().filter(|(p, _)| !p.starts_with(".zarrtx")).collect::<Vec<_>>());
    // A zarrtx store whose view was overwritten by another tool: verify says so.
    std::fs::write(path.join("zarr.json"), b"{\"zarr_format\":3,\"node_type\":\"group\",\"attributes\":{}}").unwrap();
    let report = Store::open(&path, &OpenOptions { read_only: true, ..Default::default() }).unwrap().verify().unwrap();
    assert!(!report.problems.is_empty() || report.published_version.is_none());
}

/// Runs `mount` with the arguments; in CI (root) it must work, elsewhere a failure skips the test.
fn mount(args: &[&str]) -> bool {
    let ok = Command::new("mount").args(args).status().map(|s| s.success()).unwrap_or(false);
    if !ok && std::env::var_os("CI").is_some() {
        panic!("mount {args:?} failed in CI (the tests run as root there)");
    }
    ok
}

/// A tmpfs of `size` mounted in a new temporary directory; unmounted when dropped. `None` when mounting is not
/// possible here (not root, outside CI).
struct Tmpfs {
    mnt: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let mnt = dir.path().join("mnt");
        std::fs::create_dir_all(&mnt).unwrap();
        if !mount(&["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs", mnt.to_str().unwrap()]) {
            eprintln!("skipped: cannot mount a tmpfs here (not root)");
            return None;
        }
        Some(Tmpfs { mnt, _dir: dir })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.mnt).status();
    }
}

#[test]
fn a_full_disk_fails_cleanly_and_leaves_the_store_unchanged() {
    let Some(fs) = Tmpfs::mount("1m") else { return };
    let path = fs.mnt.join("s.zarr");
    let store = open(&path);
    add_labels(&store, "small", 16, false).unwrap();
    let before = fingerprint(&path);
    let mut spec = RasterSpec::new(RasterKind::Image, &["c", "y", "x"]);
    spec.compression = zarrtx::Compression::None;
    let big = RasterSource::InMemory(RasterArray::U16(ArrayD::from_elem(vec![1, 1024, 1024], 7u16)));
    let err = store.add_raster("big", &spec, big, &AddOptions::default()).unwrap_err();
    assert!(matches!(err, Error::StorageFull { .. }), "{err}");
    assert!(err.to_string().contains("free space"), "{err}");
    assert_eq!(before, fingerprint(&path), "the store is unchanged");
    assert_eq!(store.version().unwrap(), 1);
    assert!(store.verify().unwrap().is_clean());
    assert_eq!(read_labels(&store, None, "small"), labels_data("small", 16));
}

#[test]
fn a_read_only_store_reads_and_refuses_writes() {
    let Some(fs) = Tmpfs::mount("8m") else { return };
    let path = fs.mnt.join("s.zarr");
    add_labels(&open(&path), "a", 16, false).unwrap();
    assert!(mount(&["-o", "remount,ro", fs.mnt.to_str().unwrap()]));
    let store = Store::open(&path, &OpenOptions::default()).unwrap();
    assert_eq!(read_labels(&store, None, "a"), labels_data("a", 16));
    let err = add_labels(&store, "b", 16, false).unwrap_err();
    assert!(matches!(err, Error::ReadOnly { .. }), "{err}");
    let err = store.delete("a").unwrap_err();
    assert!(matches!(err, Error::ReadOnly { .. }), "{err}");
    // Explicitly read-only handles refuse too, on any medium.
    let other = tempfile::tempdir().unwrap();
    let p2 = other.path().join("s.zarr");
    open(&p2);
    let ro = Store::open(&p2, &OpenOptions { read_only: true, ..Default::default() }).unwrap();
    assert!(matches!(add_labels(&ro, "x", 8, false), Err(Error::ReadOnly { .. })));
}
