#!/usr/bin/env python3
"""Lays a copy of a tree out as a governed plane, for the governance benchmark.

usage: scripts/governed-tree.py SRC DST

Copies SRC to DST (hard links are not used: DST is a plain copy) and adds:
  * the genesis framework FMWK-000 / spec SPEC-000 owning the governance files
    (the same layout `cplane init --governed` writes);
  * FMWK-BENCH, authorizing `**`, whose rules file requires the built-in
    secrets gate (`default_secrets`) on every file, with spec SPEC-BENCH;
  * a `.file_registry.csv` in every directory that holds files, listing them.
Names a registry cell cannot hold (a comma, quote or line break) are listed
as exempt paths in FMWK-BENCH's rules instead. The result verifies clean
with `cplane init && cplane verify` provided the tree holds no secrets.
"""
import json
import os
import shutil
import sys


def glob_escape(path):
    """`path` as a globset pattern that matches exactly it."""
    return "".join(f"[{c}]" if c in "*?[]{}\\" else c for c in path)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    src, dst = sys.argv[1], sys.argv[2]
    if os.path.exists(dst):
        sys.exit(f"{dst} exists; remove it first")
    shutil.copytree(src, dst, symlinks=True)
    w = lambda rel, text: (os.makedirs(os.path.join(dst, os.path.dirname(rel)), exist_ok=True),
                           open(os.path.join(dst, rel), "w").write(text))
    w("registries/frameworks_registry.csv",
      "id,name,version,purpose,artifact_path,allowed_spec_types,required_gates,required_metadata,authorizes,rules_path\n"
      "FMWK-000,Genesis,1.0,Governs the governance files,frameworks/FMWK-000/framework.md,governance,no-secrets,,"
      "registries/*.csv;**/.file_registry.csv;frameworks/**;specs/**,frameworks/FMWK-000/rules.json\n"
      "FMWK-BENCH,Bench,1.0,Every file of the generated tree,frameworks/FMWK-BENCH/framework.md,tree,no-secrets,,"
      "**,frameworks/FMWK-BENCH/rules.json\n")
    w("registries/specs_registry.csv",
      "id,framework_id,entity_type,artifact_path,required_assets,gates,metadata\n"
      "SPEC-000,FMWK-000,governance,specs/SPEC-000/spec.md,,,\n"
      "SPEC-BENCH,FMWK-BENCH,tree,specs/SPEC-BENCH/spec.md,,,\n")
    w("registries/packages_registry.csv", "id,version,spec_id,framework_id,manifest_digest,status\n")
    gates = [{"id": "no-secrets", "kind": "forbidden_content", "default_secrets": True}]
    for fw in ("FMWK-000", "FMWK-BENCH"):
        w(f"frameworks/{fw}/framework.md", f"# {fw}\n")
        w(f"frameworks/{fw}/rules.json", json.dumps({"gates": gates}) + "\n")
    # Names a CSV cell cannot hold (a comma, quote or line break: the kernel's
    # device-tree bindings have thousands) are exempt, by exact path.
    exempt = []
    for spec in ("SPEC-000", "SPEC-BENCH"):
        w(f"specs/{spec}/spec.md", f"# {spec}\n")
    governance = {"registries", "frameworks", "specs"}
    rows = 0
    for d, dirs, files in os.walk(dst):
        dirs_all = set(dirs)
        dirs[:] = sorted(x for x in dirs if x != ".cp" and not os.path.islink(os.path.join(d, x)))
        rel = os.path.relpath(d, dst)
        top = rel.split(os.sep)[0]
        # A symlink to a directory is listed among the directories (and not
        # walked): it is a file of the plane like any other symlink.
        files = files + [x for x in os.listdir(d) if x in dirs_all and os.path.islink(os.path.join(d, x))]
        if not files and rel != ".":
            continue
        owner = "SPEC-000" if top in governance else "SPEC-BENCH"
        lines = ["file_path,owner_id,owner_kind"]
        names = sorted(set(files) | {".file_registry.csv"})
        if rel == ".":
            names.append("registries/file_ownership_registry.csv")
        unheld = [n for n in names if any(c in n for c in ',"\r\n')]
        for n in unheld:
            exempt.append(glob_escape(n if rel == "." else f"{rel}/{n}"))
        names = [n for n in names if n not in unheld]
        for name in names:
            is_governance = name == ".file_registry.csv" or name.startswith("registries/")
            o = "SPEC-000" if is_governance else owner
            lines.append(f"{name},{o},spec")
        rows += len(names)
        with open(os.path.join(d, ".file_registry.csv"), "w") as f:
            f.write("\n".join(lines) + "\n")
    if exempt:
        w("frameworks/FMWK-BENCH/rules.json", json.dumps({"gates": gates, "exempt": exempt}) + "\n")
    print(f"{dst}: governed, {rows} ownership rows, {len(exempt)} exempt names")


if __name__ == "__main__":
    main()
