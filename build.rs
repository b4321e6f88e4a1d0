//! Embeds `examples/control-plane/` and the package files of
//! `examples/packages/hello/files/` into the binary for `cplane demo` (and
//! `cplane init --governed` takes its genesis documents from there too).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, String, u32)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for p in entries {
        let meta = std::fs::symlink_metadata(&p).expect("stat");
        if meta.is_dir() {
            walk(root, &p, out);
        } else if meta.is_file() {
            let rel = p
                .strip_prefix(root)
                .expect("below root")
                .to_str()
                .expect("UTF-8 path")
                .to_string();
            let abs = p
                .canonicalize()
                .expect("canonical path")
                .to_str()
                .expect("UTF-8 path")
                .to_string();
            out.push((rel, abs, meta.permissions().mode() & 0o777));
        }
    }
}

fn main() {
    let root = Path::new("examples/control-plane");
    println!("cargo:rerun-if-changed=examples/control-plane");
    let mut files = Vec::new();
    walk(root, root, &mut files);
    let mut src = String::from(
        "/// The example control plane: (relative path, bytes, permission bits).\npub const CONTROL_PLANE: &[(&str, &[u8], u32)] = &[\n",
    );
    for (rel, abs, mode) in files {
        src.push_str(&format!("    ({rel:?}, include_bytes!({abs:?}), 0o{mode:o}),\n"));
    }
    src.push_str("];\n");
    let hello = Path::new("examples/packages/hello/files");
    println!("cargo:rerun-if-changed=examples/packages/hello/files");
    let mut files = Vec::new();
    walk(hello, hello, &mut files);
    src.push_str(
        "/// The files of the example package PKG-HELLO-001: (relative path, bytes, permission bits).\npub const HELLO_PACKAGE: &[(&str, &[u8], u32)] = &[\n",
    );
    for (rel, abs, mode) in files {
        src.push_str(&format!("    ({rel:?}, include_bytes!({abs:?}), 0o{mode:o}),\n"));
    }
    src.push_str("];\n");
    let out = Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("control_plane.rs");
    std::fs::write(out, src).expect("write control_plane.rs");
}
