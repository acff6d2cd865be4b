//! `validate FILE...`: the same validation admission uses, offline, one verdict per file: a
//! line of text each, or one JSON object each with exactly the contract's fields. `-` reads a
//! report from standard input (kept in a private temporary file while it is judged, since the
//! validator reads a file, and only once).

use std::path::PathBuf;

use serde::Serialize;

use crate::cli::OutputFormat;
use crate::exit;
use crate::report::one_line;
use crate::validate::{Hints, ScanType};

#[derive(Serialize)]
struct Verdict {
    path: String,
    valid: bool,
    format: Option<&'static str>,
    scan_type: Option<&'static str>,
    target: Option<String>,
    reason: Option<String>,
    warnings: Vec<String>,
}

fn judge(path: &std::path::Path, hints: &Hints) -> Verdict {
    let mut v = Verdict {
        path: path.display().to_string(),
        valid: false,
        format: None,
        scan_type: None,
        target: None,
        reason: None,
        warnings: vec![],
    };
    match crate::admit::check(path, hints) {
        Ok(verdict) => match verdict {
            Ok(r) => {
                v.valid = true;
                v.format = Some(r.format.as_str());
                v.scan_type = Some(r.scan_type.as_str());
                v.target = r.target;
                v.warnings = r.warnings;
            }
            Err(rej) => {
                v.format = Some(rej.format.as_str());
                v.reason = Some(rej.reason);
                v.warnings = rej.warnings;
            }
        },
        Err(e) => v.reason = Some(format!("cannot read it: {e}")),
    }
    v
}

/// The most `validate -` keeps of standard input in a temporary file: `max_file_size`'s default.
const STDIN_LIMIT: u64 = 2 << 30;

/// The report on standard input (`-`), judged as a file.
fn judge_stdin(hints: &Hints, read: &mut bool) -> Verdict {
    let failed = |reason: String| Verdict {
        path: "-".into(),
        valid: false,
        format: None,
        scan_type: None,
        target: None,
        reason: Some(reason),
        warnings: vec![],
    };
    if std::mem::replace(read, true) {
        return failed("standard input was read already: give \"-\" once".into());
    }
    let mut tmp = match tempfile::NamedTempFile::new() {
        Ok(t) => t,
        Err(e) => {
            return failed(format!(
                "cannot keep standard input in a temporary file: {e}"
            ))
        }
    };
    use std::io::Read;
    match std::io::copy(
        &mut std::io::stdin().lock().take(STDIN_LIMIT + 1),
        tmp.as_file_mut(),
    ) {
        Err(e) => return failed(format!("cannot read standard input: {e}")),
        Ok(n) if n > STDIN_LIMIT => {
            return failed(format!(
                "standard input holds more than {} (max_file_size's default): save it to a file and validate that",
                bytesize::ByteSize::b(STDIN_LIMIT).display().iec()
            ))
        }
        Ok(_) => {}
    }
    let mut v = judge(tmp.path(), hints);
    v.path = "-".into();
    v
}

pub fn run(
    format: OutputFormat,
    scan_type: Option<&str>,
    target: Option<String>,
    accept_partial: bool,
    files: &[PathBuf],
) -> i32 {
    let scan_type = match scan_type.map(str::parse::<ScanType>).transpose() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("hostedscan-agent: --scan-type: {e}");
            return exit::USAGE;
        }
    };
    let hints = Hints {
        scan_type,
        target,
        accept_partial,
    };
    let mut all_valid = true;
    let mut stdin_read = false;
    for f in files {
        let v = if f.as_os_str() == "-" {
            judge_stdin(&hints, &mut stdin_read)
        } else {
            judge(f, &hints)
        };
        all_valid &= v.valid;
        match format {
            OutputFormat::Json => println!("{}", serde_json::to_string(&v).unwrap_or_default()),
            OutputFormat::Text => {
                // One line per file, warnings included, so the output greps and reads at a glance.
                let warnings = match v.warnings.len() {
                    0 => String::new(),
                    _ => format!("  (warning: {})", one_line(&v.warnings.join("; "))),
                };
                // The name and what the report says come from outside: one line, no escapes.
                let line = if v.valid {
                    format!(
                        "ok       {}  {} {}{}{warnings}",
                        v.path,
                        v.format.unwrap_or("-"),
                        v.scan_type.unwrap_or("-"),
                        v.target.map(|t| format!(" target {t}")).unwrap_or_default()
                    )
                } else {
                    format!(
                        "INVALID  {}  {}{warnings}",
                        v.path,
                        one_line(&v.reason.unwrap_or_default())
                    )
                };
                println!("{}", crate::escape::text(&line));
            }
        }
    }
    if all_valid {
        exit::OK
    } else {
        exit::DATAERR
    }
}
