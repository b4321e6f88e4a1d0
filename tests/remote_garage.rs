//! Remotes (issue 12, item 7) against a real Garage server: push, pull,
//! clone and `fsck --remote` through `s3://BUCKET/PREFIX`, two stores pushing
//! at once (Garage ignores conditional PUTs: cplane's lock object arbitrates),
//! objects damaged on the server, pushes killed mid-way, and a three-node
//! cluster losing a node during a push. Drives the real binary; the server
//! is touched directly (through `object_store`) only to damage or inspect it.
//!
//! Needs `garage` installed (`.ci/run` does it); without it the tests fail.

mod common;

use common::garage::{Access, Garage, GarageCluster};
use common::{tree, wait_for, write};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as OsPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

type Env = Vec<(&'static str, String)>;

/// Only the credentials of a server's environment: the endpoint and region
/// come from what `remote add` / `clone` stored.
fn creds(env: &Env) -> Env {
    env.iter()
        .filter(|(k, _)| *k == "AWS_ACCESS_KEY_ID" || *k == "AWS_SECRET_ACCESS_KEY")
        .cloned()
        .collect()
}

/// `cplane ARGS` in `dir` with `env` (and no other `AWS_*` the test runner may have).
fn cp(dir: &Path, env: &Env, args: &[&str]) -> assert_cmd::Command {
    let mut c = common::cplane(dir);
    for k in [
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_PROFILE",
    ] {
        c.env_remove(k);
    }
    c.envs(env.clone()).args(args);
    c
}

/// The stdout of `cplane ARGS`, which must succeed.
fn ok(dir: &Path, env: &Env, args: &[&str]) -> String {
    code(dir, env, args, 0).0
}

/// (stdout, stderr) of `cplane ARGS`, which must exit `want`.
fn code(dir: &Path, env: &Env, args: &[&str], want: i32) -> (String, String) {
    let out = cp(dir, env, args).assert().code(want).get_output().clone();
    (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// `remote add origin URL --endpoint EP --region garage` in `dir`.
fn add_origin(dir: &Path, env: &Env, url: &str, endpoint: &str) {
    ok(
        dir,
        env,
        &[
            "remote",
            "add",
            "origin",
            url,
            "--endpoint",
            endpoint,
            "--region",
            "garage",
        ],
    );
}

/// `clone URL PARENT/NAME --endpoint EP --region garage`: the clone's path.
fn clone(parent: &Path, env: &Env, url: &str, endpoint: &str, name: &str) -> std::path::PathBuf {
    let c = parent.join(name);
    ok(
        parent,
        env,
        &[
            "clone",
            url,
            c.to_str().unwrap(),
            "--endpoint",
            endpoint,
            "--region",
            "garage",
        ],
    );
    c
}

/// A fresh store (init of an empty directory) with `url` at `endpoint` as origin.
fn empty_store(env: &Env, url: &str, endpoint: &str) -> tempfile::TempDir {
    let b = tempfile::tempdir().unwrap();
    ok(b.path(), env, &["init", "-q"]);
    add_origin(b.path(), env, url, endpoint);
    b
}

/// `len` bytes that do not compress.
fn noise(len: usize, mut x: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

/// A plane of 4 directories of 8 files, an executable, a symlink, an empty
/// directory and 64 KiB of noise, sealed by `init`.
fn small_plane() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for i in 0..4 {
        for j in 0..8 {
            write(d.path(), &format!("d{i}/f{j}.txt"), &format!("dir {i} file {j}\n"));
        }
    }
    write(d.path(), "bin/run.sh", "#!/bin/sh\necho hi\n");
    fs::set_permissions(d.path().join("bin/run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink("d0/f0.txt", d.path().join("link")).unwrap();
    fs::create_dir(d.path().join("empty")).unwrap();
    fs::write(d.path().join("noise.bin"), noise(64 << 10, 7)).unwrap();
    ok(d.path(), &Vec::new(), &["init", "-q"]);
    d
}

// ---- The server, directly (to inspect or damage what cplane wrote). ----

fn s3(endpoint: &str, access: &Access) -> AmazonS3 {
    AmazonS3Builder::new()
        .with_endpoint(endpoint)
        .with_allow_http(true)
        .with_region(&access.region)
        .with_bucket_name(&access.bucket)
        .with_access_key_id(&access.access_key)
        .with_secret_access_key(&access.secret)
        .build()
        .unwrap()
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// Keys under `prefix`, sorted.
fn keys(s: &AmazonS3, prefix: &str) -> Vec<String> {
    use futures::TryStreamExt;
    let mut v: Vec<String> = block_on(s.list(Some(&OsPath::from(prefix))).try_collect::<Vec<_>>())
        .unwrap()
        .into_iter()
        .map(|m| m.location.to_string())
        .collect();
    v.sort();
    v
}

/// The bytes of `key`, `None` when absent.
fn get(s: &AmazonS3, key: &str) -> Option<Vec<u8>> {
    block_on(async {
        match s.get(&OsPath::from(key)).await {
            Ok(r) => Some(r.bytes().await.unwrap().to_vec()),
            Err(object_store::Error::NotFound { .. }) => None,
            Err(e) => panic!("GET {key}: {e}"),
        }
    })
}

fn put(s: &AmazonS3, key: &str, bytes: Vec<u8>) {
    block_on(s.put(&OsPath::from(key), PutPayload::from(bytes))).unwrap();
}

/// The one `.pack` object under `prefix/packs/`.
fn only_pack(s: &AmazonS3, prefix: &str) -> String {
    let packs: Vec<String> = keys(s, &format!("{prefix}/packs"))
        .into_iter()
        .filter(|k| k.ends_with(".pack"))
        .collect();
    assert_eq!(packs.len(), 1, "{packs:?}");
    packs[0].clone()
}

/// The checkpoint names on the remote under `prefix` (plane main).
fn remote_checkpoints(s: &AmazonS3, prefix: &str) -> Vec<String> {
    let dir = format!("{prefix}/planes/main/checkpoints/");
    keys(s, &dir)
        .into_iter()
        .map(|k| k.strip_prefix(&dir).unwrap().to_string())
        .collect()
}

/// The snapshot a ref's bytes name (its first line; a HEAD also names its ledger copy).
fn named(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).lines().next().unwrap_or("").to_string()
}

/// The snapshot the local HEAD of plane main in `dir` names.
fn local_head(dir: &Path) -> String {
    named(&fs::read(dir.join(".cp/planes/main/HEAD")).unwrap())
}

/// The snapshot the remote HEAD of plane main under `prefix` names.
fn remote_head(s: &AmazonS3, prefix: &str) -> String {
    named(&get(s, &format!("{prefix}/planes/main/HEAD")).expect("the remote has a HEAD"))
}

/// Byte offset of `needle` in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len())
        .position(|w| w == needle)
        .expect("bytes are in the pack")
}

// ---- Processes in the background. ----

/// Starts `cplane ARGS` in `dir` with `env` (no other `AWS_*`), pipes captured.
fn spawn(dir: &Path, env: &Env, args: &[&str]) -> Child {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cplane"));
    for k in [
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_PROFILE",
    ] {
        c.env_remove(k);
    }
    c.args(args)
        .current_dir(dir)
        .envs(env.clone())
        .env("CPLANE_LOCK_TIMEOUT_MS", "300")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for `child` at most `limit` (killing it and failing the test past
/// that: a hang); its exit code, stdout and stderr.
fn finish(child: Child, limit: Duration, what: &str) -> (i32, String, String) {
    let t0 = Instant::now();
    let mut child = child;
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{what} still running after {limit:?} (a hang); stderr so far:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let Output { status, stdout, stderr } = child.wait_with_output().unwrap();
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

// ---- The tests. ----

/// Item 7: push, clone, pull, diff and rollback against the remote-tracking
/// refs, and `fsck --remote --read-data`, through `s3://` on Garage. The
/// endpoint and region come from what `remote add` / `clone` stored; only
/// the credentials are in the environment.
#[test]
fn push_clone_pull_round_trip_through_s3() {
    let g = Garage::start();
    let env = creds(&g.env());
    let ep = g.endpoint();
    let url = g.url("team/rt");
    let s = s3(&ep, g.access());
    let a = small_plane();
    add_origin(a.path(), &env, &url, &ep);
    let out = ok(a.path(), &env, &["push", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v["objects"].as_u64().unwrap() > 30, "{out}");
    // What landed, under the prefix only: FORMAT, one pack and its index, HEAD.
    let all = keys(&s, "");
    assert!(all.iter().all(|k| k.starts_with("team/rt/")), "{all:?}");
    assert_eq!(get(&s, "team/rt/FORMAT").unwrap(), b"cplane-remote 1\n");
    assert_eq!(keys(&s, "team/rt/packs").len(), 2, "{all:?}");
    assert_eq!(
        remote_head(&s, "team/rt"),
        local_head(a.path()),
        "the remote HEAD names the local HEAD"
    );
    assert!(keys(&s, "team/rt/locks").is_empty(), "no lock or probe left: {all:?}");

    // A clone is the tree: paths, modes, bytes, the symlink, the empty directory.
    let r = tempfile::tempdir().unwrap();
    let c = clone(r.path(), &env, &url, &ep, "clone");
    assert_eq!(tree(a.path()), tree(&c));
    let head = |d: &Path| fs::read_to_string(d.join(".cp/planes/main/HEAD")).unwrap();
    assert_eq!(head(a.path()), head(&c));
    ok(&c, &env, &["status"]);
    ok(&c, &env, &["fsck"]);
    let fsck = ok(&c, &env, &["fsck", "--remote", "origin", "--read-data"]);
    assert!(!fsck.trim().is_empty());
    assert!(ok(&c, &env, &["push"]).contains("up to date"));

    // A change, pushed; a second store pulls it and works against the refs.
    write(a.path(), "d2/f3.txt", "changed\n");
    write(a.path(), "new/file.txt", "new\n");
    fs::remove_file(a.path().join("d1/f0.txt")).unwrap();
    ok(a.path(), &env, &["snapshot", "-q", "--name", "SECOND"]);
    ok(a.path(), &env, &["push"]);
    let b = empty_store(&env, &url, &ep);
    let out = ok(b.path(), &env, &["pull", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["packs"], 2, "{out}");
    let d = code(b.path(), &env, &["diff", "origin/main/HEAD", "HEAD"], 1).0;
    assert!(d.contains("new/file.txt") && d.contains("d2/f3.txt"), "{d}");
    ok(b.path(), &env, &["show", "origin/main/SECOND"]);
    ok(b.path(), &env, &["rollback", "origin/main/HEAD"]);
    assert_eq!(tree(a.path()), tree(b.path()));
    code(b.path(), &env, &["diff", "origin/main/HEAD", "HEAD"], 0);
    ok(b.path(), &env, &["fsck"]);
    ok(b.path(), &env, &["fsck", "--remote", "origin", "--read-data"]);
    // The first clone pulls the change and rolls forward to it.
    ok(&c, &env, &["pull"]);
    ok(&c, &env, &["rollback", "origin/main/HEAD"]);
    assert_eq!(tree(a.path()), tree(&c));

    // Wrong credentials: a clear error, not a hang nor an empty remote.
    let bad: Env = vec![
        ("AWS_ACCESS_KEY_ID", g.access_key().to_string()),
        ("AWS_SECRET_ACCESS_KEY", "0".repeat(64)),
    ];
    let t0 = Instant::now();
    let (_, err) = code(b.path(), &bad, &["pull"], 2);
    assert!(err.contains("remote `origin`"), "{err}");
    assert!(t0.elapsed() < Duration::from_secs(30), "{:?}", t0.elapsed());
}

/// Item 7: two stores cloned from one remote change and push at the same
/// moment, several rounds. Garage ignores `If-Match`, so cplane's lock
/// object decides: exactly one wins, the other exits 2 with "pull first";
/// after it pulls and pushes, both checkpoints are on the remote and a fresh
/// clone is the last pusher's tree.
#[test]
fn concurrent_pushers_exactly_one_wins_each_round() {
    let g = Garage::start();
    let env = creds(&g.env());
    let ep = g.endpoint();
    let url = g.url("race");
    let s = s3(&ep, g.access());
    let a = small_plane();
    add_origin(a.path(), &env, &url, &ep);
    ok(a.path(), &env, &["push"]);
    let r = tempfile::tempdir().unwrap();
    let stores = [
        clone(r.path(), &env, &url, &ep, "b"),
        clone(r.path(), &env, &url, &ep, "c"),
    ];
    let mut expected_checkpoints = Vec::new();
    let mut winners = [0, 0];
    for round in 1..=3 {
        let mut names = Vec::new();
        for (i, d) in stores.iter().enumerate() {
            let who = ["B", "C"][i];
            write(d, &format!("{who}.txt"), &format!("{who} round {round}\n"));
            let name = format!("{who}{round}");
            ok(d, &env, &["snapshot", "-q", "--name", &name]);
            names.push(name);
        }
        let packs_before = keys(&s, "race/packs").len();
        let children: Vec<Child> = stores.iter().map(|d| spawn(d, &env, &["push"])).collect();
        let results: Vec<(i32, String, String)> = children
            .into_iter()
            .map(|c| finish(c, Duration::from_secs(60), "a concurrent push"))
            .collect();
        let codes: Vec<i32> = results.iter().map(|r| r.0).collect();
        let won: Vec<usize> = (0..2).filter(|&i| codes[i] == 0).collect();
        assert_eq!(won.len(), 1, "round {round}: exactly one push wins: {results:?}");
        let (w, l) = (won[0], 1 - won[0]);
        winners[w] += 1;
        // Two packs more (four objects): the loser too uploaded and was
        // refused at the ref move, under the lock; one: it stopped at its
        // first read of HEAD. Both are "the remote moved".
        let both_uploaded = keys(&s, "race/packs").len() - packs_before == 4;
        eprintln!("round {round}: both uploaded before the ref move: {both_uploaded}");
        assert_eq!(codes[l], 2, "round {round}: the loser exits 2: {results:?}");
        assert!(
            results[l].2.contains("pull first") && results[l].2.contains("cplane pull origin"),
            "round {round}: {}",
            results[l].2
        );
        // The remote is the winner's; the loser's checkpoint is not there.
        assert_eq!(remote_head(&s, "race"), local_head(&stores[w]));
        let there = remote_checkpoints(&s, "race");
        assert!(there.contains(&names[w]) && !there.contains(&names[l]), "{there:?}");
        // The loser pulls, sees the winner's state, pushes.
        ok(&stores[l], &env, &["pull"]);
        let d = code(&stores[l], &env, &["diff", "origin/main/HEAD", "HEAD"], 1).0;
        assert!(d.contains(&format!("{}.txt", ["B", "C"][w])), "{d}");
        ok(&stores[l], &env, &["push"]);
        assert_eq!(remote_head(&s, "race"), local_head(&stores[l]));
        expected_checkpoints.extend(names.iter().cloned());
        let there = remote_checkpoints(&s, "race");
        for n in &expected_checkpoints {
            assert!(there.contains(n), "round {round}: {n} missing from {there:?}");
        }
        let fresh = clone(r.path(), &env, &url, &ep, &format!("fresh{round}"));
        assert_eq!(tree(&fresh), tree(&stores[l]), "round {round}");
        fs::remove_dir_all(&fresh).unwrap();
        // The winner catches up for the next round.
        ok(&stores[w], &env, &["pull"]);
        assert!(keys(&s, "race/locks").is_empty(), "no lock left behind");
    }
    ok(&stores[0], &env, &["fsck", "--remote", "origin", "--read-data"]);
    eprintln!("winners over the rounds (B, C): {winners:?}");
}

/// Item 7: a byte flipped inside a pack object on Garage, and separately an
/// object's record swapped for another's: `pull` and `clone` exit 3 naming
/// the object, keep nothing, and the local store stays `fsck`-clean; once
/// the pack is whole again the same store pulls it.
#[test]
fn a_damaged_pack_on_the_server_is_refused_on_pull_and_clone() {
    let g = Garage::start();
    let env = creds(&g.env());
    let ep = g.endpoint();
    let url = g.url("damage");
    let s = s3(&ep, g.access());
    let a = tempfile::tempdir().unwrap();
    write(a.path(), "plain.txt", "0123456789abcdef\n");
    write(a.path(), "one.txt", "aaaaaaaa");
    write(a.path(), "two.txt", "bbbbbbbb");
    ok(a.path(), &Vec::new(), &["init", "-q"]);
    add_origin(a.path(), &env, &url, &ep);
    ok(a.path(), &env, &["push"]);
    let pack = only_pack(&s, "damage");
    let original = get(&s, &pack).unwrap();
    let r = tempfile::tempdir().unwrap();

    // A flipped byte.
    let mut flipped = original.clone();
    flipped[find(&original, b"0123456789abcdef\n") + 3] ^= 0x01;
    put(&s, &pack, flipped);
    let id = blake3::hash(b"0123456789abcdef\n").to_hex().to_string();
    let b = empty_store(&env, &url, &ep);
    let before = common::listing(b.path());
    let (_, err) = code(b.path(), &env, &["pull"], 3);
    assert!(err.contains(&id), "names the object: {err}");
    assert!(err.contains("remote origin"), "names the remote: {err}");
    ok(b.path(), &env, &["fsck"]);
    assert_eq!(before, common::listing(b.path()), "nothing of it was kept");
    let (out, _) = code(b.path(), &env, &["fsck", "--remote", "origin", "--read-data"], 3);
    assert!(out.contains(&id), "{out}");
    let cdir = r.path().join("c1");
    // A clone of the damaged remote: exit 3; its stderr.
    let failed_clone = || {
        let args = [
            "clone",
            &url,
            cdir.to_str().unwrap(),
            "--endpoint",
            &ep,
            "--region",
            "garage",
        ];
        code(r.path(), &env, &args, 3).1
    };
    let err = failed_clone();
    assert!(err.contains(&id), "clone names the object: {err}");
    assert!(!cdir.exists(), "a failed clone leaves nothing");
    assert_eq!(fs::read_dir(r.path()).unwrap().count(), 0, "not even a temporary store");

    // One object's record holding another's bytes (both stored raw: too
    // short to compress).
    let mut swapped = original.clone();
    let at = find(&original, b"aaaaaaaa");
    swapped[at..at + 8].copy_from_slice(b"bbbbbbbb");
    put(&s, &pack, swapped);
    let aid = blake3::hash(b"aaaaaaaa").to_hex().to_string();
    let bid = blake3::hash(b"bbbbbbbb").to_hex().to_string();
    let (_, err) = code(b.path(), &env, &["pull"], 3);
    assert!(err.contains(&aid) && err.contains(&bid), "names both: {err}");
    ok(b.path(), &env, &["fsck"]);
    assert_eq!(before, common::listing(b.path()), "nothing of it was kept");
    let err = failed_clone();
    assert!(err.contains(&aid), "clone names the object: {err}");
    assert!(!cdir.exists());

    // Whole again: the refused pack was not marked imported; it comes now.
    put(&s, &pack, original);
    let out = ok(b.path(), &env, &["pull", "--json"]);
    assert!(out.contains("\"packs\":1"), "{out}");
    ok(b.path(), &env, &["rollback", "origin/main/HEAD"]);
    assert_eq!(tree(a.path()), tree(b.path()));
    ok(b.path(), &env, &["fsck"]);
}

/// Item 7: a push killed after the pack upload, after the index upload and
/// after HEAD moved (the debug build's `CPLANE_TEST_REMOTE_PAUSE`): the
/// remote HEAD is the old or the new one, never naming what the remote
/// lacks (`fsck --remote --read-data` passes each time), and the push,
/// retried, finishes the job.
#[test]
fn a_push_killed_mid_way_leaves_garage_consistent_and_a_retry_succeeds() {
    let g = Garage::start();
    let env = creds(&g.env());
    let ep = g.endpoint();
    let url = g.url("killed");
    let s = s3(&ep, g.access());
    let a = small_plane();
    add_origin(a.path(), &env, &url, &ep);
    ok(a.path(), &env, &["push"]);
    let head = || remote_head(&s, "killed");
    let old = head();
    let first_checkpoints = remote_checkpoints(&s, "killed");
    let kill_at = |step: &str| {
        let marker = a.path().join(".cp/remote-paused");
        let mut env = env.clone();
        env.push(("CPLANE_TEST_REMOTE_PAUSE", step.to_string()));
        let mut child = spawn(a.path(), &env, &["push"]);
        wait_for(&marker, &mut child);
        child.kill().unwrap();
        child.wait().unwrap();
        fs::remove_file(&marker).unwrap();
    };
    for (round, step) in ["pack-uploaded", "index-uploaded"].into_iter().enumerate() {
        write(a.path(), &format!("d1/k{round}.txt"), &format!("killed {round}\n"));
        fs::write(a.path().join("noise.bin"), noise(64 << 10, 100 + round as u64)).unwrap();
        ok(a.path(), &env, &["snapshot", "-q", "--name", &format!("K{round}")]);
        kill_at(step);
        assert_eq!(head(), old, "killed at {step}: HEAD is the old one");
        assert_eq!(remote_checkpoints(&s, "killed"), first_checkpoints, "killed at {step}");
        ok(a.path(), &env, &["fsck", "--remote", "origin", "--read-data"]);
        let c = empty_store(&env, &url, &ep);
        ok(c.path(), &env, &["pull"]);
        ok(c.path(), &env, &["fsck"]);
        code(c.path(), &env, &["diff", "origin/main/HEAD", "HEAD"], 1);
    }
    // The packs of the killed pushes are there, unreferenced (harmless).
    assert!(keys(&s, "killed/packs").len() >= 4);
    write(a.path(), "d1/last.txt", "last\n");
    ok(a.path(), &env, &["snapshot", "-q", "--name", "K2"]);
    kill_at("head-moved");
    let new = head();
    assert_ne!(new, old, "killed after HEAD moved: HEAD is the new one");
    assert_eq!(new, local_head(a.path()));
    ok(a.path(), &env, &["fsck", "--remote", "origin", "--read-data"]);
    assert!(keys(&s, "killed/locks").is_empty(), "the lock went before the kill");
    // The retry: the store's tracking ref is behind its own push, so it
    // pulls first, then pushes the checkpoints the killed pushes did not.
    ok(a.path(), &env, &["pull"]);
    ok(a.path(), &env, &["push"]);
    let mut want = first_checkpoints.clone();
    want.extend(["K0", "K1", "K2"].map(String::from));
    want.sort();
    assert_eq!(remote_checkpoints(&s, "killed"), want);
    ok(a.path(), &env, &["fsck", "--remote", "origin", "--read-data"]);
    let r = tempfile::tempdir().unwrap();
    let c = clone(r.path(), &env, &url, &ep, "c");
    assert_eq!(tree(a.path()), tree(&c));
    for cp in ["K0", "K1"] {
        ok(&c, &env, &["show", cp]);
    }
}

/// A push killed while it held the remote's lock (Garage has no
/// conditional writes, so refs move under a lock object) leaves that lock
/// behind: the next push fails clearly and in bounded time, naming it,
/// moving nothing, however old the time in the lock's name (staleness is
/// the server's last-modified time); once the lock is deleted a push goes
/// through.
#[test]
fn a_lock_left_by_a_killed_push_stops_pushes_clearly_until_it_goes() {
    let g = Garage::start();
    let env = creds(&g.env());
    let ep = g.endpoint();
    let url = g.url("locked");
    let s = s3(&ep, g.access());
    let a = small_plane();
    add_origin(a.path(), &env, &url, &ep);
    ok(a.path(), &env, &["push"]);
    let old = remote_head(&s, "locked");
    write(a.path(), "after-lock.txt", "x\n");
    ok(a.path(), &env, &["snapshot", "-q", "--name", "L1"]);
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    // As a push killed inside its lock leaves it: `locks/<ns>-<unique>`.
    let fresh = format!("locked/locks/{now_ns:020}-0123456789abcdef");
    put(&s, &fresh, b"cplane push, pid 1\n".to_vec());
    let t0 = Instant::now();
    let (rc, _, err) = finish(spawn(a.path(), &env, &["push"]), Duration::from_secs(60), "a push");
    assert_eq!(rc, 2, "{err}");
    assert!(err.contains("another push holds the remote's lock"), "{err}");
    assert!(err.contains("0123456789abcdef"), "names the lock: {err}");
    assert!(t0.elapsed() < Duration::from_secs(30), "{:?}", t0.elapsed());
    assert_eq!(remote_head(&s, "locked"), old, "nothing moved");
    assert!(!remote_checkpoints(&s, "locked").contains(&"L1".to_string()));
    assert_eq!(
        keys(&s, "locked/locks"),
        std::slice::from_ref(&fresh),
        "its own lock is gone"
    );
    // Staleness is the server's last-modified time, not the time in a
    // lock's name (a pusher's clock): a lock just written whose name says
    // 11 minutes ago is live, and blocks too.
    block_on(s.delete(&OsPath::from(fresh.as_str()))).unwrap();
    let old_name = format!("locked/locks/{:020}-fedcba9876543210", now_ns - 11 * 60 * 1_000_000_000);
    put(&s, &old_name, b"cplane push, pid 2\n".to_vec());
    let (rc, _, err) = finish(spawn(a.path(), &env, &["push"]), Duration::from_secs(60), "a push");
    assert_eq!(rc, 2, "{err}");
    assert!(err.contains("fedcba9876543210"), "names the lock: {err}");
    assert_eq!(remote_head(&s, "locked"), old, "nothing moved");
    // Deleted (what the message says to do when no push runs): pushes go on.
    block_on(s.delete(&OsPath::from(old_name.as_str()))).unwrap();
    ok(a.path(), &env, &["push"]);
    assert_eq!(remote_head(&s, "locked"), local_head(a.path()));
    assert!(remote_checkpoints(&s, "locked").contains(&"L1".to_string()));
    ok(a.path(), &env, &["fsck", "--remote", "origin", "--read-data"]);
}

/// Item 7: a three-node cluster (replication factor 3) loses a node while
/// a push of 20 MiB of noise (a multipart upload) goes through another
/// node. The node is SIGKILLed as soon as the push's work directory
/// appears (packing or uploading: mid-push). The push completes or fails
/// clearly within a bound (Garage may stall ~8.5 s on the dead peer); a
/// failed one succeeds when retried; a clone through a surviving node is
/// exact; the node restarts and a clone through it is exact too.
#[test]
fn a_cluster_losing_a_node_mid_push_keeps_the_remote_exact() {
    let mut cl = GarageCluster::start3();
    let env = creds(&cl.env(0));
    // The endpoint from AWS_ENDPOINT_URL (not stored): a push can go
    // through any node. `through[i]`: the credentials and node i.
    let through: Vec<Env> = (0..3)
        .map(|i| {
            let mut e = env.clone();
            e.push(("AWS_ENDPOINT_URL", cl.endpoint(i)));
            e
        })
        .collect();
    let (ep1, ep2) = (cl.endpoint(1), cl.endpoint(2));
    let url = format!("s3://{}/cluster", cl.access().bucket);
    let a = small_plane();
    ok(a.path(), &env, &["remote", "add", "origin", &url, "--region", "garage"]);
    let env = through[0].clone();
    ok(a.path(), &env, &["push"]);
    fs::create_dir(a.path().join("big")).unwrap();
    for i in 0..20u64 {
        fs::write(a.path().join(format!("big/n{i:02}.bin")), noise(1 << 20, 1000 + i)).unwrap();
    }
    ok(a.path(), &env, &["snapshot", "-q", "--name", "BIG"]);

    let mut child = spawn(a.path(), &env, &["push"]);
    let tmp = a.path().join(".cp/tmp");
    let work = tmp.join(format!("push-{}", child.id()));
    let t0 = Instant::now();
    let mut mid = false;
    while child.try_wait().unwrap().is_none() && t0.elapsed() < Duration::from_secs(60) {
        if work.exists() {
            mid = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    cl.stop(2);
    let stopped_at = t0.elapsed();
    let (rc, out, err) = finish(child, Duration::from_secs(90), "the push while a node died");
    eprintln!(
        "node 2 stopped {stopped_at:?} into the push (mid-push: {mid}); push exit {rc} after {:?}",
        t0.elapsed()
    );
    assert!(mid, "the node was stopped during the push, not after it");
    if rc != 0 {
        assert_eq!(rc, 2, "a failed push says so clearly: {err}");
        assert!(err.contains("remote `origin`"), "{err}");
        ok(a.path(), &env, &["push"]);
    } else {
        assert!(out.trim().is_empty() || !out.contains("error"), "{out}");
    }
    let s1 = s3(&ep1, cl.access());
    assert_eq!(remote_head(&s1, "cluster"), local_head(a.path()));

    // A clone through a surviving node is exact.
    let r = tempfile::tempdir().unwrap();
    let c = clone(r.path(), &env, &url, &ep1, "c1");
    assert_eq!(tree(a.path()), tree(&c));
    ok(&c, &env, &["fsck", "--remote", "origin", "--read-data"]);
    fs::remove_dir_all(&c).unwrap();

    // The node comes back and serves the same remote.
    cl.restart(2);
    let c = clone(r.path(), &env, &url, &ep2, "c2");
    assert_eq!(tree(a.path()), tree(&c));
    fs::remove_dir_all(&c).unwrap();

    // Now the node the push talks to dies mid-push: the push fails clearly
    // (its retries are bounded), the store goes on through another node.
    for i in 0..8u64 {
        fs::write(a.path().join(format!("big/m{i}.bin")), noise(1 << 20, 2000 + i)).unwrap();
    }
    ok(a.path(), &env, &["snapshot", "-q", "--name", "MORE"]);
    let mut child = spawn(a.path(), &env, &["push"]);
    let work = tmp.join(format!("push-{}", child.id()));
    let t0 = Instant::now();
    while !work.exists() && child.try_wait().unwrap().is_none() && t0.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(2));
    }
    cl.stop(0);
    let (rc, _, err) = finish(child, Duration::from_secs(90), "the push whose endpoint died");
    eprintln!(
        "endpoint node stopped mid-push: push exit {rc} after {:?}: {}",
        t0.elapsed(),
        err.trim()
    );
    if rc != 0 {
        assert_eq!(rc, 2, "{err}");
        assert!(
            err.contains("remote `origin`") && err.contains("AWS_ENDPOINT_URL"),
            "{err}"
        );
    }
    // Through node 1: pull (in case the ref moved before the answer was
    // lost), push, and the remote is exact through node 2.
    ok(a.path(), &through[1], &["pull"]);
    ok(a.path(), &through[1], &["push"]);
    assert_eq!(remote_head(&s1, "cluster"), local_head(a.path()));
    let c = clone(r.path(), &env, &url, &ep2, "c3");
    assert_eq!(tree(a.path()), tree(&c));
    ok(&c, &through[2], &["fsck", "--remote", "origin", "--read-data"]);
    cl.restart(0);
}
