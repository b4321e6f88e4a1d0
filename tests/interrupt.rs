//! Ctrl-C stops a snapshot and a rollback at a safe point with nothing committed.
//! The cancellation token is passed in (no process-wide state).

use cplane::Control;
use cplane::checkout::NoHooks;
use cplane::progress::NoProgress;
use cplane::snapshot::{SealOptions, seal};
use cplane::store::Store;
use std::sync::atomic::AtomicBool;

#[test]
fn interrupted_snapshot_and_rollback_commit_nothing() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("a"), b"one").unwrap();
    let mut store = Store::init(d.path()).unwrap();
    let plane = store.plane("main").unwrap();
    let never = AtomicBool::new(false);
    let lock = store.lock(&never).unwrap();
    seal(&mut store, &lock, &plane, SealOptions::default(), Control::quiet()).unwrap();
    let head = store.head("main").unwrap();
    let checkpoints = store.checkpoints("main").unwrap();
    std::fs::write(d.path().join("a"), b"two").unwrap();

    let stop = AtomicBool::new(true);
    let ctl = Control::new(&NoProgress, &stop);
    let r = seal(&mut store, &lock, &plane, SealOptions::default(), ctl);
    assert!(matches!(r, Err(cplane::Error::Interrupted)), "{r:?}");
    assert_eq!(r.unwrap_err().class(), cplane::error::ErrorClass::Interrupted);
    assert_eq!(store.head("main").unwrap(), head);
    assert_eq!(store.checkpoints("main").unwrap(), checkpoints);
    assert!(
        std::fs::read_dir(store.tmp_dir()).unwrap().next().is_none(),
        "no temporary packs left"
    );

    let target = cplane::revision::resolve(&store, &plane, "HEAD").unwrap();
    let r = cplane::rollback::rollback(&mut store, &lock, &plane, &target, &NoHooks, ctl);
    assert!(matches!(r, Err(cplane::Error::Interrupted)), "{r:?}");
    assert_eq!(store.head("main").unwrap(), head);
    assert_eq!(
        store.checkpoints("main").unwrap(),
        checkpoints,
        "no rescue checkpoint left behind"
    );
    assert_eq!(
        std::fs::read(d.path().join("a")).unwrap(),
        b"two",
        "the plane is untouched"
    );
}
