//! The CSV registries of a governed plane, read strictly (`governance.md`,
//! "CSV registries"): the `csv` crate with quoting off does the splitting;
//! a pass over the raw bytes first refuses what the crate would accept
//! silently (a byte-order mark, `\r`, quotes, blank lines, huge cells).

use std::collections::HashMap;

/// The list separator of every list-valued cell (documented once, in `governance.md`).
pub const LIST_SEPARATOR: char = ';';
/// Longest cell accepted, in bytes.
pub const MAX_CELL: usize = 4096;
/// Largest registry file accepted, in bytes.
pub const MAX_FILE: usize = 64 << 20;

/// A registry problem: the file (plane-relative), the 1-based line (0 when
/// the file as a whole is wrong) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryError {
    /// Plane-relative path of the registry.
    pub file: String,
    /// 1-based line, 0 for the whole file.
    pub line: u64,
    /// One sentence.
    pub message: String,
}

impl std::fmt::Display for RegistryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(f, "{}:{}: {}", self.file, self.line, self.message)
        }
    }
}

/// One data row: its line and its cells by column name.
#[derive(Debug, Clone)]
pub struct Row<'t> {
    /// 1-based line in the file.
    pub line: u64,
    /// The row's cell boundaries in `text`: cell `i` is `text[ends[i-1]..ends[i]]`
    /// (`start` for the first).
    start: usize,
    ends: &'t [usize],
    text: &'t str,
    columns: &'t HashMap<String, usize>,
}

impl<'t> Row<'t> {
    /// The cell of `column` ("" for an optional column the file does not have).
    pub fn get(&self, column: &str) -> &'t str {
        self.columns.get(column).map_or("", |&i| {
            let from = if i == 0 { self.start } else { self.ends[i - 1] };
            &self.text[from..self.ends[i]]
        })
    }
}

/// A parsed registry: header columns and rows.
#[derive(Debug, Clone)]
pub struct Table {
    /// Plane-relative path, for messages.
    pub file: String,
    columns: HashMap<String, usize>,
    /// Every data cell, concatenated (one allocation per file, not per cell).
    text: String,
    /// End offset in `text` of every cell, row after row.
    ends: Vec<usize>,
    /// Line of every data row.
    lines: Vec<u64>,
    width: usize,
}

impl Table {
    /// Parses `bytes` strictly. `required` columns must all be present,
    /// `optional` ones may be; anything else is an error.
    ///
    /// # Errors
    /// The first problem, as a [`RegistryError`] naming the line.
    pub fn parse(bytes: &[u8], file: &str, required: &[&str], optional: &[&str]) -> Result<Table, RegistryError> {
        let err = |line: u64, message: String| RegistryError {
            file: file.to_string(),
            line,
            message,
        };
        if bytes.is_empty() {
            return Err(err(0, "empty file; a registry needs at least its header line".into()));
        }
        if bytes.len() > MAX_FILE {
            return Err(err(
                0,
                format!("{} bytes; a registry may hold at most {MAX_FILE}", bytes.len()),
            ));
        }
        if bytes.starts_with(b"\xEF\xBB\xBF") {
            return Err(err(
                1,
                "starts with a byte-order mark; save the file as UTF-8 without BOM".into(),
            ));
        }
        // Byte-level rules (the csv crate would accept these silently), each
        // found with one memchr pass over the file; the problem on the
        // earliest line is reported (on one line: in this order).
        let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
        let line_at = |pos: usize| memchr::memchr_iter(b'\n', &body[..pos]).count() as u64 + 1;
        let mut first: Option<(u64, usize, String)> = None;
        let mut note = |pos: Option<usize>, rank: usize, message: &str| {
            if let Some(pos) = pos {
                let line = line_at(pos);
                if first.as_ref().is_none_or(|(l, r, _)| (line, rank) < (*l, *r)) {
                    first = Some((line, rank, message.to_string()));
                }
            }
        };
        note(
            memchr::memchr(b'\r', body),
            0,
            "has a carriage return (CRLF line ends); use \\n line ends",
        );
        let blank = if body.first() == Some(&b'\n') || body.is_empty() {
            Some(0)
        } else {
            memchr::memmem::find(body, b"\n\n").map(|p| p + 1)
        };
        note(blank, 1, "is blank; registries have no blank lines");
        note(
            memchr::memchr(b'"', body),
            2,
            "has a double quote; quoted cells are not allowed (cells hold no commas)",
        );
        note(
            std::str::from_utf8(body).err().map(|e| e.valid_up_to()),
            3,
            "is not valid UTF-8",
        );
        if let Some((line, _, message)) = first {
            return Err(err(line, message));
        }
        // Splitting: csv-core (the csv crate's parser) with quoting off, one
        // reader per thread reused across files (building one costs more
        // than parsing a small registry). After the checks above, record `i`
        // (0: the header) is line `i + 1`.
        thread_local! {
            static READER: std::cell::RefCell<csv_core::Reader> = std::cell::RefCell::new(
                csv_core::ReaderBuilder::new()
                    .quoting(false)
                    .terminator(csv_core::Terminator::Any(b'\n'))
                    .build(),
            );
        }
        let mut text: Vec<u8> = vec![0; body.len() + 1];
        let mut ends: Vec<usize> = Vec::new();
        let mut lines = Vec::new();
        let mut header: Option<Vec<String>> = None;
        READER.with(|r| -> Result<(), RegistryError> {
            let mut rdr = r.borrow_mut();
            rdr.reset();
            let mut input = bytes;
            let mut used = 0; // bytes of `text` holding cells
            let mut rec_ends: Vec<usize> = vec![0; 64];
            let mut rec_n = 0; // ends of the record being read
            let mut rec_start = 0;
            let mut line = 1u64;
            loop {
                let (res, nin, nout, nend) = rdr.read_record(input, &mut text[used..], &mut rec_ends[rec_n..]);
                input = &input[nin..];
                used += nout;
                rec_n += nend;
                match res {
                    csv_core::ReadRecordResult::InputEmpty => {}
                    csv_core::ReadRecordResult::OutputFull => {
                        // Cells never outgrow the input; only reached at its end.
                        text.resize(text.len() * 2 + 16, 0);
                    }
                    csv_core::ReadRecordResult::OutputEndsFull => rec_ends.resize(rec_ends.len() * 2, 0),
                    csv_core::ReadRecordResult::Record => {
                        let cells = &rec_ends[..rec_n];
                        let mut from = 0;
                        for &e in cells {
                            if e - from > MAX_CELL {
                                return Err(err(
                                    line,
                                    format!("has a cell of {} bytes; at most {MAX_CELL} are allowed", e - from),
                                ));
                            }
                            from = e;
                        }
                        match &header {
                            None => {
                                let h = &text[rec_start..used];
                                let names = cells
                                    .iter()
                                    .scan(0, |from, &e| {
                                        let cell = String::from_utf8_lossy(&h[*from..e]).into_owned();
                                        *from = e;
                                        Some(cell)
                                    })
                                    .collect();
                                header = Some(names);
                                // The header's bytes are not cells of the table.
                                used = rec_start;
                            }
                            Some(h) if h.len() != rec_n => {
                                return Err(err(
                                    line,
                                    format!("has {rec_n} cells; the header has {} columns", h.len()),
                                ));
                            }
                            Some(_) => {
                                ends.extend(cells.iter().map(|&e| rec_start + e));
                                lines.push(line);
                                rec_start = used;
                            }
                        }
                        rec_n = 0;
                        line += 1;
                    }
                    csv_core::ReadRecordResult::End => return Ok(()),
                }
            }
        })?;
        let used = ends.last().copied().unwrap_or(0);
        text.truncate(used);
        // Every byte was checked to be UTF-8 above and cells end at commas
        // and line feeds, so this cannot fail; if it did, say so, never panic.
        let text = String::from_utf8(text).map_err(|_| err(0, "is not valid UTF-8".into()))?;
        let header = header.ok_or_else(|| err(0, "no header line".into()))?;
        let mut columns = HashMap::new();
        for (i, name) in header.iter().enumerate() {
            if !required.contains(&name.as_str()) && !optional.contains(&name.as_str()) {
                let mut known: Vec<&str> = required.iter().chain(optional).copied().collect();
                known.sort_unstable();
                return Err(err(
                    1,
                    format!("unknown column {name:?}; the columns are {}", known.join(", ")),
                ));
            }
            if columns.insert(name.clone(), i).is_some() {
                return Err(err(1, format!("column {name:?} appears twice")));
            }
        }
        if let Some(missing) = required.iter().find(|c| !columns.contains_key(**c)) {
            return Err(err(1, format!("missing column {missing:?}")));
        }
        Ok(Table {
            file: file.to_string(),
            columns,
            text,
            ends,
            lines,
            width: header.len(),
        })
    }

    /// The index of `column`, for [`Table::cell`].
    pub fn column(&self, column: &str) -> Option<usize> {
        self.columns.get(column).copied()
    }

    /// Cell `col` (from [`Table::column`]) of data row `r`.
    ///
    /// # Panics
    /// When `r` or `col` is out of range.
    pub fn cell(&self, r: usize, col: usize) -> &str {
        assert!(col < self.width, "column {col} of a {}-column table", self.width);
        let i = r * self.width + col;
        let from = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.text[from..self.ends[i]]
    }

    /// The number of data rows.
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    /// True when the table has no data rows.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Data row `r` (0-based, in file order).
    ///
    /// # Panics
    /// When `r >= self.len()`.
    pub fn row(&self, r: usize) -> Row<'_> {
        Row {
            line: self.lines[r],
            start: if r == 0 { 0 } else { self.ends[r * self.width - 1] },
            ends: &self.ends[r * self.width..(r + 1) * self.width],
            text: &self.text,
            columns: &self.columns,
        }
    }

    /// The data rows, in file order.
    pub fn rows(&self) -> impl Iterator<Item = Row<'_>> {
        (0..self.len()).map(|r| self.row(r))
    }

    /// True when the file has this column.
    pub fn has_column(&self, name: &str) -> bool {
        self.columns.contains_key(name)
    }
}

/// True when a path can be a registry cell: UTF-8, with no comma, quote,
/// carriage return or line feed.
pub fn representable(p: &[u8]) -> bool {
    std::str::from_utf8(p).is_ok() && !p.iter().any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r'))
}

/// Splits a list cell on [`LIST_SEPARATOR`] (an empty cell is an empty list).
///
/// # Errors
/// An empty item (`a;;b`, a trailing `;`), as a sentence.
pub fn list(cell: &str) -> Result<Vec<String>, String> {
    if cell.is_empty() {
        return Ok(Vec::new());
    }
    let items: Vec<String> = cell.split(LIST_SEPARATOR).map(str::to_string).collect();
    if items.iter().any(String::is_empty) {
        return Err(format!(
            "list {cell:?} has an empty item (items are separated by one `;`)"
        ));
    }
    Ok(items)
}

/// Splits a metadata cell into `key=value` pairs.
///
/// # Errors
/// An item without `=` or with an empty key, as a sentence.
pub fn metadata(cell: &str) -> Result<Vec<(String, String)>, String> {
    list(cell)?
        .into_iter()
        .map(|item| match item.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(format!("metadata item {item:?} is not key=value")),
        })
        .collect()
}

/// Checks an id: `prefix` followed by at least one of `A-Z a-z 0-9 . _ -`.
///
/// # Errors
/// A sentence naming the id and the rule.
pub fn check_id(id: &str, prefix: &str, what: &str) -> Result<(), String> {
    let ok = id.len() > prefix.len()
        && id.starts_with(prefix)
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what} id {id:?} must start with {prefix} and use only A-Z a-z 0-9 . _ -"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &[u8]) -> Result<Table, RegistryError> {
        Table::parse(s, "r.csv", &["id", "name"], &["extra"])
    }

    #[test]
    fn strict_rules_each_name_the_line() {
        let t = parse(b"name,id\nN,A\nM,B\n").unwrap();
        let rows: Vec<_> = t
            .rows()
            .map(|r| (r.line, r.get("id").to_string(), r.get("extra").to_string()))
            .collect();
        assert_eq!(rows, vec![(2, "A".into(), "".into()), (3, "B".into(), "".into())]);
        assert!(parse(b"id,name").unwrap().rows().next().is_none());
        let cases: &[(&[u8], u64, &str)] = &[
            (b"", 0, "empty"),
            (b"\xEF\xBB\xBFid,name\n", 1, "byte-order mark"),
            (b"id,name\r\nA,B\r\n", 1, "carriage return"),
            (b"id,name\nA,B\n\nC,D\n", 3, "blank"),
            (b"id,name\n\"A\",B\n", 2, "double quote"),
            (b"id,name\nA,B,C\n", 2, "3 cells"),
            (b"id\nA\n", 1, "missing column \"name\""),
            (b"id,name,colour\n", 1, "unknown column \"colour\""),
            (b"id,name,id\n", 1, "appears twice"),
            (b"id,name\nA,\xff\n", 2, "UTF-8"),
        ];
        for (input, line, needle) in cases {
            let e = parse(input).unwrap_err();
            assert_eq!(e.line, *line, "{e}");
            assert!(e.message.contains(needle), "{e}");
        }
        let mut big = b"id,name\nA,".to_vec();
        big.extend(std::iter::repeat_n(b'x', 10 << 20));
        let e = parse(&big).unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("10485760 bytes"), "{e}");
    }

    /// The cells as the `csv` crate itself reads `bytes` (quoting off, `\n` records).
    fn csv_crate_rows(bytes: &[u8]) -> Vec<Vec<String>> {
        let mut r = csv::ReaderBuilder::new()
            .has_headers(false)
            .quoting(false)
            .flexible(true)
            .terminator(csv::Terminator::Any(b'\n'))
            .from_reader(bytes);
        r.records()
            .map(|rec| rec.unwrap().iter().map(str::to_string).collect())
            .collect()
    }

    proptest::proptest! {
        /// Whatever bytes come in, parsing never panics, and an accepted file
        /// has exactly the cells and lines the `csv` crate reads from it.
        #[test]
        fn accepted_files_read_as_the_csv_crate_reads_them(
            rows in proptest::collection::vec(
                proptest::collection::vec("[a-z;=é -]{0,6}", 2..=2), 0..8),
            noise in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..4),
            at in 0usize..64,
        ) {
            let mut bytes = b"id,name\n".to_vec();
            for r in &rows {
                bytes.extend(r.join(",").as_bytes());
                bytes.push(b'\n');
            }
            let at = at.min(bytes.len());
            let mut noisy = bytes[..at].to_vec();
            noisy.extend(&noise);
            noisy.extend(&bytes[at..]);
            for input in [bytes, noisy] {
                if let Ok(t) = parse(&input) {
                    let want = csv_crate_rows(&input);
                    let got: Vec<Vec<String>> = t
                        .rows()
                        .map(|r| vec![r.get("id").to_string(), r.get("name").to_string()])
                        .collect();
                    proptest::prop_assert_eq!(&got[..], &want[1..]);
                    let lines: Vec<u64> = t.rows().map(|r| r.line).collect();
                    proptest::prop_assert_eq!(lines, (2..2 + got.len() as u64).collect::<Vec<_>>());
                }
            }
        }
    }

    #[test]
    fn lists_metadata_and_ids() {
        assert_eq!(list("").unwrap(), Vec::<String>::new());
        assert_eq!(list("a;b").unwrap(), vec!["a", "b"]);
        assert!(list("a;;b").is_err());
        assert!(list("a;").is_err());
        assert_eq!(
            metadata("k=v;t=1=2").unwrap(),
            vec![("k".into(), "v".into()), ("t".into(), "1=2".into())]
        );
        assert!(metadata("k").is_err());
        assert!(check_id("SPEC-1.a_b", "SPEC-", "spec").is_ok());
        assert!(check_id("SPEC-", "SPEC-", "spec").is_err());
        assert!(check_id("FMWK-1 x", "FMWK-", "framework").is_err());
    }
}
