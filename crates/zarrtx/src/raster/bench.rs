//! Throughput and memory checks of the raster writer, run on demand:
//! `cargo test -p zarrtx --release --lib raster::bench -- --ignored --nocapture --test-threads 1`.
//!
//! Compares `write_element` on a 512 MiB uint16 image with 1024² chunks (zstd level 0) against the pure zstd
//! encoding of the same bytes in 2 MiB pieces on all cores (no copy, no I/O), and reports peak memory.

use super::*;
use crate::name::ElementName;
use crate::progress::NoProgress;
use crate::storage::{DataHandle, PosixStorage};
use ndarray::{ArrayD, IxDyn};
use rayon::prelude::*;
use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;
use zarrs::array::codec::ZstdCodec;
use zarrs::array::{BytesToBytesCodecTraits, CodecOptions};

/// Peak resident memory of this process in bytes (`VmHWM`), and resets the mark.
fn peak_rss_and_reset() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    kb * 1024
}

fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}

/// A smooth image with noise, compressible like microscopy data.
fn image(h: usize, w: usize) -> ArrayD<u16> {
    let mut x: u64 = 12345;
    let v: Vec<u16> = (0..h * w)
        .map(|i| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let (r, c) = (i / w, i % w);
            let base = ((r / 64 + c / 64) % 200) as u16 * 100;
            base + ((x >> 60) as u16)
        })
        .collect();
    ArrayD::from_shape_vec(IxDyn(&[1, h, w]), v).unwrap_or_default()
}

#[test]
#[ignore]
fn bench_512mib_u16_in_memory_and_streamed() {
    let (h, w) = (16384, 16384);
    let img = image(h, w);
    let bytes = (h * w * 2) as u64;
    let baseline_rss = rss();
    let _ = peak_rss_and_reset();

    // Pure zstd limit: encode 2 MiB pieces in parallel, discard the output.
    let codec = ZstdCodec::new(0, false);
    let data = zarrs::array::transmute_to_bytes(img.as_slice().unwrap_or(&[]));
    let t = Instant::now();
    let compressed: usize = data
        .par_chunks(1024 * 1024 * 2)
        .map(|c| codec.encode(Cow::Borrowed(c), &CodecOptions::default()).map(|e| e.len()).unwrap_or(0))
        .sum();
    let pure = t.elapsed().as_secs_f64();
    println!(
        "pure zstd: {:.2} s, {:.0} MiB/s, ratio {:.2}",
        pure,
        bytes as f64 / pure / 1048576.0,
        bytes as f64 / compressed as f64
    );

    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let name = ElementName::new("img").unwrap_or_else(|e| panic!("{e}"));
    let mut spec = RasterSpec::new(RasterKind::Image, &["c", "y", "x"]);
    spec.chunk_shape = Some(vec![1, 1024, 1024]);
    for (i, durable) in [true, false, true].into_iter().enumerate() {
        let src = RasterSource::InMemory(RasterArray::U16(img.clone()));
        let _ = peak_rss_and_reset();
        let t = Instant::now();
        // The store's durability matches the write's, as in a store opened with or without it.
        let dir = DataHandle::new(Arc::new(PosixStorage::new(tmp.path(), durable)), format!("a{i}"));
        write_element_with(&dir, &name, &spec, src, &NoProgress, &WriteOptions { durable, ..WriteOptions::default() })
            .unwrap_or_else(|e| panic!("{e}"));
        let ours = t.elapsed().as_secs_f64();
        let peak = peak_rss_and_reset();
        println!(
            "write_element in memory (durable {durable}): {:.2} s, {:.0} MiB/s = {:.3} x pure zstd; peak RSS {} MiB \
             (baseline with image {} MiB, image {} MiB) -> {:.2} x image",
            ours,
            bytes as f64 / ours / 1048576.0,
            pure / ours,
            peak >> 20,
            baseline_rss >> 20,
            bytes >> 20,
            peak.saturating_sub(baseline_rss) as f64 / bytes as f64
        );
    }
    let t = Instant::now();
    let _: usize = data
        .par_chunks(1024 * 1024 * 2)
        .map(|c| codec.encode(Cow::Borrowed(c), &CodecOptions::default()).map(|e| e.len()).unwrap_or(0))
        .sum();
    println!("pure zstd again: {:.2} s", t.elapsed().as_secs_f64());

    // Streamed, unaligned 1000-row strips, with a pyramid computed from disk.
    let strips: Vec<RasterBlock> = (0..h)
        .step_by(1000)
        .map(|r0| {
            let r1 = (r0 + 1000).min(h);
            let a = img.slice(ndarray::s![.., r0..r1, ..]).to_owned().into_dyn();
            RasterBlock { offset: vec![0, r0 as u64, 0], data: RasterArray::U16(a) }
        })
        .collect();
    drop(img);
    let base2 = rss();
    let _ = peak_rss_and_reset();
    spec.pyramid = Pyramid::Computed(vec![2, 2]);
    let t = Instant::now();
    let src = RasterSource::Blocks {
        shape: vec![1, h as u64, w as u64],
        data_type: DataType::U16,
        blocks: Box::new(strips.into_iter().map(Ok)),
    };
    let dir = DataHandle::new(Arc::new(PosixStorage::new(tmp.path(), true)), "b");
    write_element(&dir, &name, &spec, src, &NoProgress).unwrap_or_else(|e| panic!("{e}"));
    let streamed = t.elapsed().as_secs_f64();
    let peak = peak_rss_and_reset();
    println!(
        "write_element streamed (unaligned strips, + 2 levels): {:.2} s; peak RSS above the held blocks: {} MiB",
        streamed,
        peak.saturating_sub(base2) >> 20
    );
}
