//! `cplane check-ignore`.

use super::{CmdResult, Ctx, output, plane_path};
use serde_json::json;
use std::io::Write;

/// Say which exclusion rule, if any, decides each PATH
///
/// Like `git check-ignore -v`: for each PATH that a rule matches, prints
/// `SOURCE:LINE:PATTERN<TAB>PATH`, where SOURCE is the plane-relative path
/// of the `.cpignore` that holds the rule, or `--exclude` for the plane's
/// own patterns (LINE is then the pattern's position). A `!PATTERN` that
/// re-includes the path is printed too; a path inside an excluded directory
/// is decided by the rule that excludes the directory. Paths no rule
/// matches are not printed. Rules are read as a scan reads them: each
/// `.cpignore` from the plane root down to the path's directory.
///
/// PATH is relative to the plane root, or to the current directory when it
/// starts with `./` or `../`; it need not exist (end it with `/` to ask
/// about a directory). Exit 0 when some PATH is excluded, 1 when none is.
///
/// With --json: `{"plane", "paths": [{"path", "excluded", "source",
/// "line", "pattern", "matched"}]}`.
#[derive(clap::Args, Debug)]
pub struct CheckIgnoreArgs {
    /// Paths to check
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<std::ffi::OsString>,
}

pub fn cmd_check_ignore(ctx: &mut Ctx, args: CheckIgnoreArgs) -> CmdResult {
    use std::os::unix::ffi::OsStrExt;
    let (store, plane) = ctx.open_store_only()?;
    let scope = cplane::scope::Scope::open(&plane)?;
    let mut any = false;
    let mut rows = Vec::new();
    for arg in &args.paths {
        let rel = plane_path(ctx, &store, &plane, arg, true)?;
        let hint = arg.as_bytes().ends_with(b"/");
        let hit = cplane::exclude::check(&scope, &rel, hint)?;
        any |= hit.as_ref().is_some_and(|h| h.excluded);
        rows.push((rel, hit));
    }
    if ctx.json {
        let list: Vec<_> = rows
            .iter()
            .map(|(rel, hit)| {
                let mut m = output::path_obj(rel.as_bytes());
                m.insert("excluded".into(), hit.as_ref().is_some_and(|h| h.excluded).into());
                m.insert("source".into(), hit.as_ref().map(|h| h.source.to_string()).into());
                m.insert("line".into(), hit.as_ref().map(|h| h.line).into());
                m.insert("pattern".into(), hit.as_ref().map(|h| h.pattern.clone()).into());
                m.insert("matched".into(), hit.as_ref().map(|h| h.matched.display()).into());
                serde_json::Value::Object(m)
            })
            .collect();
        writeln!(ctx.out, "{}", json!({"plane": plane.name, "paths": list}))?;
    } else {
        for (rel, hit) in &rows {
            if let Some(h) = hit {
                writeln!(
                    ctx.out,
                    "{}:{}:{}\t{}",
                    h.source,
                    h.line,
                    h.pattern,
                    output::path(rel.as_bytes())
                )?;
            }
        }
    }
    Ok(super::findings_code(any))
}
