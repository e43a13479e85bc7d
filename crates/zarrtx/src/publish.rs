//! Installing committed operations and publishing the view that plain readers see — without relying on any lock.
//!
//! After a commit, element data still sits in its staging area. [`publish`] installs every committed entry that
//! is not installed yet, in log order — a staged element moves to `<type>/<name>` with one rename, a generation it
//! displaces moves to `.zarrtx/trash/<v>-<key>`, an append's staged chunk files replace the table's — and then
//! replaces the root `zarr.json` with the view of the newest state (root attributes, inline consolidated metadata
//! of every committed element, `"zarrtx": {"version": V}`). Any number of processes on any number of nodes may
//! publish at once: every step is idempotent and decided by the medium (a rename has one winner; an installed
//! element's staging area is gone), so whoever publishes next finishes the work of a publisher that died.
//!
//! **The view never lists an element whose files are gone.** Data that a published view may list moves only in
//! two cases — a commit displaced it (an overwrite; or a delete, whose data stays in place until gc or a later add
//! of the name evicts it) — and only after:
//!
//! 1. a view that no longer lists it was published (views of a prefix of the log hide what later entries
//!    displace), and
//! 2. no publisher can still write an older view that lists it:
//!    - where the medium offers compare-and-swap, the root is replaced only if it is still the version the
//!      publisher read *before* it read the head of the log, so once the hiding view is in place every older
//!      view loses its swap;
//!    - on POSIX filesystems there is no compare-and-swap, and strict monotonicity of one file that must exist at
//!      every instant cannot be had without a shared lock: every conditional primitive (`link`, `O_EXCL`,
//!      `mkdir`, rename onto a non-empty directory) succeeds only where the target is absent. So publishers fence
//!      themselves in time: a publisher writes a view only if less than the store's *publish fence* (default 2 s)
//!      has passed since it read the head; and displaced data moves only a fence after its displacing commit was
//!      first seen. A publisher that read the head before that commit therefore finished (or gave up) before the
//!      data moves. The assumption is that a rename is not delayed by more than the fence after the publisher's
//!      last check of its clock (and, on NFS, that new log entries are seen promptly: `lookupcache=positive`).
//!
//! **The newest view wins in the end.** After writing, a publisher reads the head and the root again and
//! publishes again while either is behind, so a stale view written by a slow publisher is replaced at once, by
//! that same publisher. Where locks are available, publishers of one node also queue on the publish lock — purely
//! so they do not redo each other's work.

use crate::commit::Committer;
use crate::error::{Error, Result};
use crate::layout;
use crate::log::reader::{discover_head, read_entry};
use crate::log::{LogEntry, Op, StoreState};
use crate::name::ElementType;
use crate::storage::{CasOutcome, Storage, Tag};
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

/// How many times one call re-publishes while other writers keep moving the head or the root.
const MAX_ROUNDS: usize = 24;

/// The version whose operations are installed, `None` before the first publication. A hint: it never claims more
/// than is installed, and may lag behind (a slow publisher writing an older value costs a re-check, nothing more).
pub fn applied_version(storage: &dyn Storage) -> Result<Option<u64>> {
    Ok(storage.get(layout::APPLIED)?.and_then(|b| String::from_utf8(b).ok()).and_then(|s| s.trim().parse().ok()))
}

/// The `zarr.json` of a plain group with `attributes`.
pub fn group_doc(attributes: Value) -> Value {
    json!({"zarr_format": 3, "node_type": "group", "attributes": attributes})
}

/// The attributes of the `labels` type group (ome-zarr's list of label names), without the `hidden` elements.
fn labels_group_attributes(state: &StoreState, hidden: &BTreeSet<String>) -> Value {
    let names: Vec<&str> = state
        .elements
        .iter()
        .filter(|(key, e)| e.element_type == ElementType::Labels && !hidden.contains(*key))
        .map(|(_, e)| e.name.as_str())
        .collect();
    if names.is_empty() {
        json!({})
    } else {
        json!({"ome": {"labels": names}})
    }
}

/// The root `zarr.json` for `state`: the version first (so a short read finds it), root attributes, and the
/// consolidated metadata of every committed element.
pub fn root_view(state: &StoreState) -> Value {
    view_of(state, &BTreeSet::new())
}

/// [`root_view`] without the elements whose collision keys are in `hidden`.
fn view_of(state: &StoreState, hidden: &BTreeSet<String>) -> Value {
    let mut metadata = Map::new();
    for t in ElementType::ALL {
        let attrs = if t == ElementType::Labels { labels_group_attributes(state, hidden) } else { json!({}) };
        metadata.insert(t.group().to_string(), group_doc(attrs));
    }
    for (key, record) in &state.elements {
        if hidden.contains(key) {
            continue;
        }
        let base = record.installed_key();
        for (rel, doc) in &record.tree {
            let k = if rel.is_empty() { base.clone() } else { format!("{base}/{rel}") };
            metadata.insert(k, doc.clone());
        }
    }
    json!({
        "zarrtx": {"must_understand": false, "version": state.version, "format": layout::FORMAT_VERSION},
        "zarr_format": 3,
        "node_type": "group",
        "attributes": Value::Object(state.root_attributes.clone()),
        "consolidated_metadata": {"kind": "inline", "must_understand": false, "metadata": metadata},
    })
}

/// The version a root `zarr.json` says it reflects, if it is a zarrtx view.
pub fn view_version(root_doc: &Value) -> Option<u64> {
    root_doc.get("zarrtx")?.get("version")?.as_u64()
}

/// The version of the published root view (`None` when there is none or it is not a zarrtx view). Reads only the
/// beginning of the file when the version is written first, as [`root_view`] does.
pub fn published_version(storage: &dyn Storage) -> Result<Option<u64>> {
    if let Some(head) = storage.get_range(layout::ROOT_ZARR_JSON, 0..256)? {
        if let Some(v) = leading_version(&head) {
            return Ok(Some(v));
        }
    }
    Ok(storage
        .get(layout::ROOT_ZARR_JSON)?
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|d| view_version(&d)))
}

/// The version in `{"zarrtx":{"must_understand":false,"version":N,...` at the start of a root document.
fn leading_version(head: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(head).ok().or_else(|| {
        // A cut inside a multi-byte character: the version comes long before it.
        std::str::from_utf8(&head[..head.iter().rposition(|&b| b < 0x80)?]).ok()
    })?;
    let rest = text.strip_prefix("{\"zarrtx\":{")?;
    let end = rest.find('}')?;
    let obj: Value = serde_json::from_str(&format!("{{{}}}", &rest[..end])).ok()?;
    obj.get("version")?.as_u64()
}

/// The published root as a publisher read it before reading the head: its version, and its tag where the
/// medium offers compare-and-swap.
struct Root {
    version: Option<u64>,
    tag: Option<Tag>,
}

impl Root {
    fn read(storage: &dyn Storage, cas: bool) -> Result<Root> {
        if cas {
            match storage.get_tagged(layout::ROOT_ZARR_JSON)? {
                Some((bytes, tag)) => {
                    let version = serde_json::from_slice::<Value>(&bytes).ok().and_then(|d| view_version(&d));
                    Ok(Root { version, tag: Some(tag) })
                }
                None => Ok(Root { version: None, tag: None }),
            }
        } else {
            Ok(Root { version: published_version(storage)?, tag: None })
        }
    }
}

/// What writing a view did.
enum ViewWrite {
    /// The view is published.
    Written,
    /// A view of a newer version is published already; nothing was written.
    NewerPresent,
    /// Nothing was written: the publisher's knowledge is too old (the fence passed, or the root changed since it
    /// was read); start again from a fresh head.
    Stale,
}

/// Writes the view of `state` without the `hidden` elements as the root, if it is still safe (see the module
/// documentation): by compare-and-swap against `root`, or within the fence since `t0`.
fn write_view(c: &Committer, state: &StoreState, hidden: &BTreeSet<String>, t0: Instant, root: &mut Root) -> Result<ViewWrite> {
    let storage = c.storage.as_ref();
    let bytes = serde_json::to_vec(&view_of(state, hidden)).map_err(|e| encode_error(layout::ROOT_ZARR_JSON, e))?;
    if storage.capabilities().conditional_replace {
        if root.version.is_some_and(|v| v > state.version) {
            return Ok(ViewWrite::NewerPresent);
        }
        return match storage.put_if_match(layout::ROOT_ZARR_JSON, &bytes, root.tag.as_ref())? {
            CasOutcome::Replaced(tag) => {
                *root = Root { version: Some(state.version), tag: Some(tag) };
                Ok(ViewWrite::Written)
            }
            CasOutcome::Changed => {
                *root = Root::read(storage, true)?;
                Ok(if root.version.is_some_and(|v| v > state.version) { ViewWrite::NewerPresent } else { ViewWrite::Stale })
            }
        };
    }
    if published_version(storage)?.is_some_and(|v| v > state.version) {
        return Ok(ViewWrite::NewerPresent);
    }
    // The self-fence: never replace the root with a view built from a head read longer ago than the fence.
    if t0.elapsed() >= c.settings.publish_fence() {
        return Ok(ViewWrite::Stale);
    }
    crate::retire::replace(storage, layout::ROOT_ZARR_JSON, &bytes)?;
    storage.sync(&[layout::ROOT_ZARR_JSON.to_string()])?;
    root.version = Some(state.version);
    Ok(ViewWrite::Written)
}

fn encode_error(key: &str, e: serde_json::Error) -> Error {
    Error::Io { path: key.into(), source: std::io::Error::other(e) }
}

/// A move of installed data that a commit displaced.
#[derive(Debug)]
struct Move {
    from: String,
    to: String,
    /// The commit that displaced the data (`None` for something another tool wrote where an element goes, which no
    /// view lists).
    displaced_at: Option<u64>,
}

/// True when every operation of `entry` is installed (its staged data is gone).
fn entry_installed(storage: &dyn Storage, entry: &LogEntry) -> Result<bool> {
    for op in &entry.ops {
        let staged = match op {
            Op::Add { staged, .. } => Some(staged),
            Op::Append { staged: Some(staged), .. } => Some(staged),
            _ => None,
        };
        if let Some(staged) = staged {
            if storage.exists(staged)? {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// The moves of installed data that installing `entry` (committed after `before`) needs.
///
/// Publishers race here without a lock, so a move must never carry away the element another publisher has just
/// installed. Two rules make sure of it. The target is looked at *before* the staged data: staged data only ever
/// leaves by becoming the target (one rename), so when it is still there after the target was seen occupied, that
/// occupant was something else. And every publisher of `entry` sends an occupant to the same trash key, chosen from
/// the log alone: a publisher that looked before another one moved the occupant and installed the element finds
/// that key taken, and its late rename moves nothing.
fn entry_moves(storage: &dyn Storage, before: &StoreState, entry: &LogEntry) -> Result<Vec<Move>> {
    let mut moves = Vec::new();
    for op in &entry.ops {
        let Op::Add { element, staged, displaces, .. } = op else { continue };
        let key = element.name.collision_key();
        let target = layout::element_key(element.element_type, &element.name);
        let target_seen = storage.exists(&target)?;
        if !storage.exists(staged)? {
            continue;
        }
        let mut target_freed = false;
        if let Some((t, n)) = displaces {
            let from = layout::element_key(*t, n);
            let to = layout::trash_key(entry.version, &key);
            if storage.exists(&from)? && !storage.exists(&to)? {
                moves.push(Move { from: from.clone(), to, displaced_at: Some(entry.version) });
            }
            target_freed = from == target;
        }
        if !target_freed && target_seen {
            // The name is free in `before`, so the newest displacement of it was a delete, whose generation stays
            // at its location until evicted (by this add, or by gc to the very same key).
            let evict = before
                .displaced
                .iter()
                .filter(|(generation, _)| generation.split_once(':').map(|(_, k)| k) == Some(key.as_str()))
                .map(|(_, d)| d.version)
                .max();
            moves.push(match evict {
                Some(d) => Move { from: target, to: layout::trash_key(d, &key), displaced_at: Some(d) },
                // Something another tool wrote, which no view lists.
                None => Move { from: target, to: format!("{}-unexpected", layout::trash_key(entry.version, &key)), displaced_at: None },
            });
        }
    }
    Ok(moves)
}

/// Performs `moves`, then installs every operation of `entry`. Idempotent: whatever a dead publisher did already
/// is skipped.
fn install(storage: &dyn Storage, entry: &LogEntry, moves: &[Move]) -> Result<()> {
    for m in moves {
        storage.rename(&m.from, &m.to)?;
    }
    for op in &entry.ops {
        match op {
            Op::Add { element, staged, .. } => {
                let target = layout::element_key(element.element_type, &element.name);
                if storage.rename(staged, &target)? == crate::storage::MoveOutcome::TargetExists && storage.exists(staged)? {
                    return Err(Error::CorruptMetadata {
                        path: storage.location().join(&target),
                        reason: "cannot install the committed element: the location stays occupied; move what is \
                                 there away (it is not a committed element) and open the store again"
                            .into(),
                    });
                }
            }
            Op::Append { table, staged: Some(staged), staged_files, .. } => {
                let live = layout::element_key(ElementType::Tables, table);
                let installed = crate::table::install_staged_files(storage, staged, &live, staged_files)?;
                // The new directory entries of the rows' files are made durable before anything publishes them.
                storage.sync(&installed)?;
                storage.delete_tree(staged)?;
            }
            // An append of an earlier version wrote its rows in place; only its small files remain to be written.
            Op::Append { table, staged: None, replaced_files, .. } => {
                let live = layout::element_key(ElementType::Tables, table);
                for (rel, bytes) in replaced_files {
                    storage.put_relaxed(&format!("{live}/{rel}"), bytes)?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Collision keys of the elements whose current generation `entry` displaces (deletes, overwrites, and adds that
/// evict a deleted generation).
fn displaced_keys(entry: &LogEntry) -> impl Iterator<Item = String> + '_ {
    entry.ops.iter().filter_map(|op| match op {
        Op::Add { element, .. } => Some(element.name.collision_key()),
        Op::Delete { name, .. } => Some(name.collision_key()),
        _ => None,
    })
}

/// Writes the grown `zarr.json` documents of the tables that `appended` names, as `state` commits them, in an order
/// that makes any mix fail loudly for a plain reader (categories first, the region list last), and the type groups'
/// documents; returns the keys written.
fn write_documents(storage: &dyn Storage, state: &StoreState, appended: &BTreeSet<String>) -> Result<Vec<String>> {
    let mut written = Vec::new();
    for key in appended {
        let Some(record) = state.elements.get(key) else { continue };
        let base = record.installed_key();
        let mut docs: Vec<(&String, &Value)> = record.tree.iter().collect();
        docs.sort_by_key(|(rel, _)| (!rel.ends_with("categories"), rel.contains("spatialdata_attrs"), rel.is_empty()));
        for (rel, doc) in docs {
            let k = if rel.is_empty() { format!("{base}/zarr.json") } else { format!("{base}/{rel}/zarr.json") };
            let unchanged = storage
                .get(&k)?
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                .is_some_and(|on_disk| &on_disk == doc);
            if !unchanged {
                crate::retire::replace(storage, &k, &serde_json::to_vec(doc).map_err(|e| encode_error(&k, e))?)?;
                written.push(k);
            }
        }
    }
    for t in ElementType::ALL {
        let attrs = if t == ElementType::Labels { labels_group_attributes(state, &BTreeSet::new()) } else { json!({}) };
        let key = layout::type_group_key(t);
        let doc = serde_json::to_vec(&group_doc(attrs)).map_err(|e| encode_error(&key, e))?;
        if storage.get(&key)?.as_deref() != Some(doc.as_slice()) {
            crate::retire::replace(storage, &key, &doc)?;
            written.push(key);
        }
    }
    Ok(written)
}

/// Installs every committed entry not installed yet and publishes the newest view. Returns the version the
/// published view reflects.
pub(crate) fn publish(c: &Committer) -> Result<u64> {
    let storage = c.storage.as_ref();
    let cas = storage.capabilities().conditional_replace;
    let fence = c.settings.publish_fence();
    // Publishers of one node queue here (an optimization: correctness does not depend on it).
    let _queue = storage.locks().lock_exclusive(layout::PUBLISH_LOCK).ok();
    let mut published = None;
    for _ in 0..MAX_ROUNDS {
        let t0 = Instant::now();
        // The root before the head: a view built from this head may replace only this root.
        let mut root = Root::read(storage, cas)?;
        let latest = c.latest_state()?;
        let applied = applied_version(storage)?;
        let base = applied.unwrap_or(0).max(root.version.unwrap_or(0)).min(latest.version);
        let mut state = (*c.installed_state(base)?).clone();
        let entries = (state.version + 1..=latest.version)
            .map(|v| {
                read_entry(storage, v)?.ok_or_else(|| Error::CorruptMetadata {
                    path: storage.location().join(layout::log_key(v)),
                    reason: "a committed entry disappeared".to_string(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        // hidden[i]: what entries i.. displace, hidden from every view of the state before entry i.
        let mut hidden = vec![BTreeSet::new(); entries.len() + 1];
        for i in (0..entries.len()).rev() {
            let mut h = hidden[i + 1].clone();
            h.extend(displaced_keys(&entries[i]));
            hidden[i] = h;
        }
        let mut appended = BTreeSet::new();
        let mut restart = false;
        for (i, entry) in entries.iter().enumerate() {
            if !entry_installed(storage, entry)? {
                let moves = entry_moves(storage, &state, entry)?;
                if moves.iter().any(|m| m.displaced_at.is_some()) {
                    if !cas {
                        let ready = moves.iter().filter_map(|m| m.displaced_at).map(|d| c.seen_at(d) + fence).max();
                        if let Some(wait) = ready.and_then(|r| r.checked_duration_since(Instant::now())) {
                            // Hide what moves now, wait out the fence, then start again from a fresh head.
                            let _ = write_view(c, &state, &hidden[i], t0, &mut root)?;
                            std::thread::sleep(wait);
                            restart = true;
                            break;
                        }
                    }
                    if !matches!(write_view(c, &state, &hidden[i], t0, &mut root)?, ViewWrite::Written) {
                        restart = true;
                        break;
                    }
                }
                install(storage, entry, &moves)?;
            }
            for op in &entry.ops {
                if let Op::Append { table, .. } = op {
                    appended.insert(table.collision_key());
                }
            }
            state.apply(entry)?;
        }
        let state = Arc::new(state);
        c.set_installed(state.clone());
        if restart {
            continue;
        }
        let docs = write_documents(storage, &state, &appended)?;
        storage.sync(&docs)?;
        if applied.is_none_or(|a| a < state.version) {
            storage.put(layout::APPLIED, state.version.to_string().as_bytes())?;
        }
        match write_view(c, &state, &BTreeSet::new(), t0, &mut root)? {
            ViewWrite::Stale => continue,
            ViewWrite::Written | ViewWrite::NewerPresent => {}
        }
        published = published.max(root.version.or(Some(state.version)));
        // Converged when nothing newer was committed and no slower publisher replaced the view meanwhile.
        let head = discover_head(storage, state.version)?;
        let now = published_version(storage)?;
        if head == state.version && now.is_some_and(|v| v >= state.version) {
            crate::retire::sweep(storage, crate::retire::RETAIN);
            return Ok(now.unwrap_or(state.version));
        }
    }
    published.ok_or_else(|| Error::Contention { name: "the published view".into(), attempts: MAX_ROUNDS as u32 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_is_found_in_the_first_bytes_of_a_view() {
        let state = StoreState {
            version: 42,
            root_attributes: Map::new(),
            elements: Default::default(),
            displaced: Default::default(),
        };
        let bytes = serde_json::to_vec(&root_view(&state)).unwrap();
        assert_eq!(leading_version(&bytes[..bytes.len().min(256)]), Some(42));
        assert_eq!(leading_version(b"{\"zarr_format\":3}"), None, "a foreign root has no leading version");
    }
}
