//! What a real Garage server does with the S3 requests cplane's remotes make,
//! through the same client crate (`object_store`): round trips, conditional
//! writes and reads, multipart uploads, a three-node cluster (replication
//! factor 3) that loses a node, and the lock that stands in for the
//! conditional PUTs Garage ignores. These pin down the server's behaviour:
//! when a Garage upgrade changes it, a test here fails and says what changed.
//!
//! Needs `garage` installed (`.ci/run` does it); without it the tests fail.

mod common;

use common::garage::{Access, Garage, GarageCluster};
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey, S3ConditionalPut};
use object_store::path::Path;
use object_store::{
    Error, GetOptions, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, RetryConfig, UpdateVersion,
};
use std::time::Instant;

/// The store for `access` at `endpoint`, configured from exactly the
/// environment the harness hands the cplane binary (`AWS_ENDPOINT_URL`, …), as
/// `AmazonS3Builder::from_env` would read it, plus ETag conditional puts
/// (object_store's default, spelt out).
fn store(env: &[(&'static str, String)], access: &Access) -> AmazonS3 {
    let mut b = AmazonS3Builder::new().with_bucket_name(&access.bucket);
    for (k, v) in env {
        let key: AmazonS3ConfigKey = k.to_ascii_lowercase().parse().unwrap();
        b = b.with_config(key, v);
    }
    b.with_conditional_put(S3ConditionalPut::ETagMatch).build().unwrap()
}

fn single(g: &Garage) -> AmazonS3 {
    store(&g.env(), g.access())
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

async fn get(s: &AmazonS3, p: &Path) -> Vec<u8> {
    s.get(p).await.unwrap().bytes().await.unwrap().to_vec()
}

/// `len` bytes that do not compress (Garage zstd-compresses blocks).
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

fn put_mode(mode: PutMode) -> PutOptions {
    PutOptions {
        mode,
        ..Default::default()
    }
}

#[test]
fn put_get_list_delete_round_trip() {
    let g = Garage::start();
    let s = single(&g);
    block_on(async {
        let p = Path::from("planes/main/refs/HEAD");
        let r = s.put(&p, PutPayload::from_static(b"v1")).await.unwrap();
        // A single-part object's ETag is the quoted MD5 of its bytes.
        assert_eq!(r.e_tag.as_deref(), Some("\"6654c734ccab8f440ff0825eb443dc7f\""));
        assert_eq!(get(&s, &p).await, b"v1");
        let meta = s.head(&p).await.unwrap();
        assert_eq!((meta.size, meta.e_tag), (2, r.e_tag));

        // A listing right after the write sees it (read-after-write).
        let listed = s
            .list_with_delimiter(Some(&Path::from("planes/main/refs")))
            .await
            .unwrap();
        let names: Vec<_> = listed.objects.iter().map(|m| m.location.to_string()).collect();
        assert_eq!(names, ["planes/main/refs/HEAD"]);

        s.delete(&p).await.unwrap();
        assert!(matches!(s.get(&p).await, Err(Error::NotFound { .. })));
    });
}

/// Garage 2.5 ignores `If-None-Match: *` on PutObject: `PutMode::Create` on an
/// existing object succeeds and overwrites it (200, no 412). cplane must not
/// rely on it for refs on Garage. If this test fails because the second create
/// is refused, Garage has gained conditional writes: update the findings.
#[test]
fn garage_ignores_if_none_match_on_put() {
    let g = Garage::start();
    let s = single(&g);
    block_on(async {
        let p = Path::from("refs/new");
        s.put_opts(&p, PutPayload::from_static(b"first"), put_mode(PutMode::Create))
            .await
            .unwrap();
        let second = s
            .put_opts(&p, PutPayload::from_static(b"second"), put_mode(PutMode::Create))
            .await;
        assert!(
            second.is_ok(),
            "Garage now refuses a second If-None-Match: * create ({second:?}): it honours conditional creates"
        );
        assert_eq!(get(&s, &p).await, b"second", "the second create overwrote the first");
    });
}

/// Garage 2.5 ignores `If-Match` on PutObject too: `PutMode::Update` with a
/// stale ETag succeeds and overwrites, and one on a missing object creates it.
#[test]
fn garage_ignores_if_match_on_put() {
    let g = Garage::start();
    let s = single(&g);
    block_on(async {
        let p = Path::from("refs/main");
        let v1 = s.put(&p, PutPayload::from_static(b"v1")).await.unwrap();
        let v2 = s
            .put_opts(
                &p,
                PutPayload::from_static(b"v2"),
                put_mode(PutMode::Update(v1.clone().into())),
            )
            .await
            .unwrap();
        assert_ne!(v1.e_tag, v2.e_tag);
        // v1's ETag is stale now: S3 (and MinIO, R2) answer 412; Garage writes.
        let stale = s
            .put_opts(&p, PutPayload::from_static(b"v3"), put_mode(PutMode::Update(v1.into())))
            .await;
        assert!(
            stale.is_ok(),
            "Garage now refuses a stale If-Match ({stale:?}): it honours conditional updates"
        );
        assert_eq!(get(&s, &p).await, b"v3", "the stale update overwrote v2");
        let missing = UpdateVersion {
            e_tag: Some("\"00000000000000000000000000000000\"".into()),
            version: None,
        };
        let q = Path::from("refs/missing");
        s.put_opts(&q, PutPayload::from_static(b"x"), put_mode(PutMode::Update(missing)))
            .await
            .unwrap();
        assert_eq!(
            get(&s, &q).await,
            b"x",
            "an If-Match update of a missing object created it"
        );
    });
}

/// Conditional reads are honoured: `If-Match` with a stale ETag → 412, and
/// `If-None-Match` with the current one → 304 (cheap polling of a ref).
#[test]
fn conditional_gets_are_honoured() {
    let g = Garage::start();
    let s = single(&g);
    block_on(async {
        let p = Path::from("refs/main");
        let old = s.put(&p, PutPayload::from_static(b"old")).await.unwrap();
        let cur = s.put(&p, PutPayload::from_static(b"new")).await.unwrap();
        let stale = s
            .get_opts(
                &p,
                GetOptions {
                    if_match: old.e_tag.clone(),
                    ..Default::default()
                },
            )
            .await;
        assert!(matches!(stale, Err(Error::Precondition { .. })), "{stale:?}");
        let unchanged = s
            .get_opts(
                &p,
                GetOptions {
                    if_none_match: cur.e_tag.clone(),
                    ..Default::default()
                },
            )
            .await;
        assert!(matches!(unchanged, Err(Error::NotModified { .. })), "{unchanged:?}");
        let fresh = s
            .get_opts(
                &p,
                GetOptions {
                    if_match: cur.e_tag.clone(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(fresh.bytes().await.unwrap().as_ref(), b"new");
    });
}

/// A 20 MB object in 5 MiB parts (the last one shorter) round-trips, with an
/// S3-style multipart ETag (`"…-4"`); an aborted upload leaves nothing.
#[test]
fn multipart_upload_20mb_round_trips() {
    let g = Garage::start();
    let s = single(&g);
    block_on(async {
        let data = noise(20_000_000, 0x9e37_79b9_7f4a_7c15);
        let p = Path::from("packs/big.pack");
        let mut up = s.put_multipart(&p).await.unwrap();
        for part in data.chunks(5 << 20) {
            up.put_part(PutPayload::from(part.to_vec())).await.unwrap();
        }
        let done = up.complete().await.unwrap();
        let etag = done.e_tag.unwrap();
        assert!(etag.ends_with("-4\""), "multipart ETag {etag}");
        assert_eq!(s.head(&p).await.unwrap().size, data.len() as u64);
        assert!(get(&s, &p).await == data, "the 20 MB object differs after a round trip");
        let r = s.get_range(&p, 5_000_000..5_000_010).await.unwrap();
        assert_eq!(r.as_ref(), &data[5_000_000..5_000_010]);

        let q = Path::from("packs/aborted.pack");
        let mut up = s.put_multipart(&q).await.unwrap();
        up.put_part(PutPayload::from(vec![7u8; 5 << 20])).await.unwrap();
        up.abort().await.unwrap();
        assert!(matches!(s.head(&q).await, Err(Error::NotFound { .. })));
    });
}

/// Three nodes, replication factor 3: writes and reads need 2 of them. With
/// one node killed, writes and reads through the others go on and a listing
/// through another node sees a write at once; the node rejoins when restarted
/// and serves what was written while it was down.
#[test]
fn cluster_of_three_survives_one_node_down() {
    let t0 = Instant::now();
    let mut c = GarageCluster::start3();
    let started = t0.elapsed();
    let stores: Vec<AmazonS3> = (0..3).map(|i| store(&c.env(i), c.access())).collect();
    let a = noise(300_000, 1);
    let b = noise(300_000, 2);
    let mut stalled = std::time::Duration::ZERO;
    block_on(async {
        stores[0].put(&Path::from("a"), a.clone().into()).await.unwrap();
        for s in &stores {
            assert!(get(s, &Path::from("a")).await == a);
        }
    });

    // No waiting for the others to notice (that takes them ~10 s of pings):
    // requests go on at once and need only the two live replicas.
    c.stop(2);
    block_on(async {
        // The first write after the crash may stall until node 0 finds its
        // connection to node 2 dead (it notices only when it next sends on
        // it, within ~10 s); then it needs only nodes 0 and 1.
        let t = Instant::now();
        stores[0].put(&Path::from("b"), b.clone().into()).await.unwrap();
        stalled = t.elapsed();
        assert!(get(&stores[1], &Path::from("b")).await == b);
        assert!(get(&stores[1], &Path::from("a")).await == a);
        let listed = stores[1].list_with_delimiter(None).await.unwrap();
        let names: Vec<_> = listed.objects.iter().map(|m| m.location.to_string()).collect();
        assert_eq!(names, ["a", "b"]);
        // (object_store retries a refused connection for minutes by default.)
        let no_retry = AmazonS3Builder::new()
            .with_bucket_name(&c.access().bucket)
            .with_endpoint(c.endpoint(2))
            .with_allow_http(true)
            .with_region(&c.access().region)
            .with_access_key_id(&c.access().access_key)
            .with_secret_access_key(&c.access().secret)
            .with_retry(RetryConfig {
                max_retries: 0,
                ..Default::default()
            })
            .build()
            .unwrap();
        let down = no_retry.get(&Path::from("a")).await;
        assert!(down.is_err(), "the stopped node still answered");
    });

    c.restart(2);
    block_on(async {
        assert!(get(&stores[2], &Path::from("b")).await == b);
        stores[2]
            .put(&Path::from("c"), PutPayload::from_static(b"c"))
            .await
            .unwrap();
        assert_eq!(get(&stores[0], &Path::from("c")).await, b"c");
    });
    eprintln!(
        "cluster started in {started:?}; first write with a node down took {stalled:?}; whole test {:?}",
        t0.elapsed()
    );
}

/// What works instead of conditional PUTs on Garage: a lock taken by writing a
/// uniquely named object and then listing the lock prefix (restic's scheme).
/// Alone in the listing → read the ref, write the new one, drop the lock; not
/// alone → drop the lock and retry later. Safe because each writer lists only
/// after its own lock is written and listings are read-after-write
/// consistent, so of two racing writers at least one sees the other. Three
/// writers, each through a different node, increment one counter object: no
/// increment is lost.
#[test]
fn lock_by_unique_name_then_list_loses_no_update_across_nodes() {
    const ROUNDS: u64 = 5;
    let c = GarageCluster::start3();
    let counter = Path::from("refs/counter");
    std::thread::scope(|scope| {
        for who in 0..3usize {
            let s = store(&c.env(who), c.access());
            let counter = counter.clone();
            scope.spawn(move || {
                block_on(async {
                    let mut rng = 0x2545_f491_4f6c_dd1d_u64 ^ ((who as u64 + 1) * 0x9e37_79b9);
                    let (mut done, mut tries) = (0, 0);
                    while done < ROUNDS {
                        tries += 1;
                        assert!(tries < 500, "writer {who} never got the lock");
                        let mine = Path::from(format!("locks/{who}-{tries}"));
                        s.put(&mine, PutPayload::from_static(b"lock")).await.unwrap();
                        let held = s.list_with_delimiter(Some(&Path::from("locks"))).await.unwrap();
                        let alone = held.objects.iter().all(|m| m.location == mine);
                        if alone {
                            let n: u64 = match s.get(&counter).await {
                                Ok(r) => String::from_utf8(r.bytes().await.unwrap().to_vec())
                                    .unwrap()
                                    .parse()
                                    .unwrap(),
                                Err(Error::NotFound { .. }) => 0,
                                Err(e) => panic!("{e}"),
                            };
                            s.put(&counter, (n + 1).to_string().into()).await.unwrap();
                            done += 1;
                        }
                        s.delete(&mine).await.unwrap();
                        if !alone {
                            rng ^= rng << 13;
                            rng ^= rng >> 7;
                            rng ^= rng << 17;
                            std::thread::sleep(std::time::Duration::from_millis(5 + rng % 40));
                        }
                    }
                });
            });
        }
    });
    let s = store(&c.env(0), c.access());
    let total = block_on(async { String::from_utf8(get(&s, &counter).await).unwrap() });
    assert_eq!(total, (3 * ROUNDS).to_string(), "an increment was lost");
}
