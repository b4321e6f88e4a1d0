//! Remote URLs: `s3://BUCKET[/PREFIX]` and `file:///ABSOLUTE/PATH`.

use crate::error::{Error, Result};
use std::path::PathBuf;

/// Where a remote lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteUrl {
    /// An S3 bucket (AWS or an S3-compatible server), with an optional key
    /// prefix (no leading or trailing `/`; `""` for the bucket's root).
    S3 {
        /// Bucket name.
        bucket: String,
        /// Key prefix every object of the remote is under.
        prefix: String,
    },
    /// A directory on this machine (or a mounted filesystem): an air-gapped
    /// copy, or tests without a server.
    Dir {
        /// Absolute path of the directory.
        path: PathBuf,
    },
}

impl RemoteUrl {
    /// Parses `url`.
    ///
    /// # Errors
    /// [`Error::BadRemote`] naming what is wrong and what is accepted: an
    /// unknown scheme, a relative `file://` path, an empty bucket, or
    /// credentials written into the URL (they belong in the environment).
    pub fn parse(url: &str) -> Result<RemoteUrl> {
        let bad = |reason: String| Error::BadRemote {
            url: url.to_string(),
            reason,
        };
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.contains('@') || bucket.contains(':') {
                return Err(bad(
                    "credentials do not go into the URL; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment"
                        .into(),
                ));
            }
            if bucket.is_empty()
                || !bucket
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
            {
                return Err(bad(format!(
                    "`{bucket}` is not an S3 bucket name (lower-case letters, digits, `-` and `.`); the form is s3://BUCKET/PREFIX"
                )));
            }
            let prefix = prefix.trim_matches('/');
            if prefix.split('/').any(|c| c == "." || c == "..") || prefix.contains("//") {
                return Err(bad(format!(
                    "the prefix `{prefix}` has an empty, `.` or `..` component"
                )));
            }
            return Ok(RemoteUrl::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.to_string(),
            });
        }
        if let Some(rest) = url.strip_prefix("file://") {
            if !rest.starts_with('/') {
                return Err(bad(
                    "a file:// URL needs an absolute path: file:///srv/cplane (three slashes)".into(),
                ));
            }
            let path = PathBuf::from(rest);
            if path.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
                return Err(bad("the path may not contain `..`".into()));
            }
            return Ok(RemoteUrl::Dir { path });
        }
        Err(bad(
            "unsupported URL; use s3://BUCKET/PREFIX (S3 or an S3-compatible server) or file:///ABSOLUTE/PATH (a directory)"
                .into(),
        ))
    }

    /// The URL in its canonical spelling.
    pub fn to_url(&self) -> String {
        match self {
            RemoteUrl::S3 { bucket, prefix } if prefix.is_empty() => format!("s3://{bucket}"),
            RemoteUrl::S3 { bucket, prefix } => format!("s3://{bucket}/{prefix}"),
            RemoteUrl::Dir { path } => format!("file://{}", path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::RemoteUrl;

    #[test]
    fn urls_parse_or_say_why_not() {
        assert_eq!(
            RemoteUrl::parse("s3://bkt/a/b/").unwrap(),
            RemoteUrl::S3 {
                bucket: "bkt".into(),
                prefix: "a/b".into()
            }
        );
        assert_eq!(RemoteUrl::parse("s3://bkt").unwrap().to_url(), "s3://bkt", "no prefix");
        assert_eq!(
            RemoteUrl::parse("file:///srv/x").unwrap(),
            RemoteUrl::Dir { path: "/srv/x".into() }
        );
        for bad in [
            "file://relative/x",
            "http://host/x",
            "s3://",
            "s3://KEY:SECRET@bucket/x",
            "s3://Bucket_Upper",
            "s3://b/a/../c",
            "/plain/path",
        ] {
            assert!(RemoteUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
