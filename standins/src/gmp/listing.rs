//! What every get_* command of the GMP stand-in shares: the filter keywords it understands,
//! pagination, the common elements of a resource and gvmd's `send_get_end` tail.

use std::fmt::Write as _;

use super::connection::Elem;
use super::{esc, DEFAULT_USER};

/// gvmd's default "Rows Per Page".
const DEFAULT_ROWS: i64 = 10;

/// The filter keywords the stand-in understands.
pub(super) struct Filter {
    pub(super) name: Option<String>,
    pub(super) first: i64,
    pub(super) rows: i64,
    pub(super) rows_given: bool,
}

pub(super) fn parse_filter(term: &str) -> Filter {
    let mut f = Filter {
        name: None,
        first: 1,
        rows: DEFAULT_ROWS,
        rows_given: false,
    };
    for token in split_filter(term) {
        let Some((key, value)) = token.split_once('=') else {
            continue;
        };
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        match key.to_ascii_lowercase().as_str() {
            "name" => f.name = Some(value.to_string()),
            "first" => f.first = value.parse().unwrap_or(1).max(1),
            "rows" => {
                f.rows = value.parse().unwrap_or(DEFAULT_ROWS);
                f.rows_given = true;
            }
            _ => {}
        }
    }
    f
}

/// Splits a filter term at spaces outside double quotes.
fn split_filter(term: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for ch in term.chars() {
        match ch {
            '"' => {
                quoted = !quoted;
                cur.push(ch);
            }
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Applies first/rows to a list; returns (page, first, max) for the `<TYPEs start max/>`.
pub(super) fn paginate<T>(items: Vec<T>, f: &Filter) -> (Vec<T>, i64, i64) {
    let skip = (f.first - 1) as usize;
    let page: Vec<T> = if f.rows < 0 {
        items.into_iter().skip(skip).collect()
    } else {
        items.into_iter().skip(skip).take(f.rows as usize).collect()
    };
    (page, f.first, f.rows)
}

/// gvmd's send_get_end: filters, sort, `<TYPEs start max/>`, counts, end tag.
pub(super) fn get_end(
    out: &mut String,
    kind: &str,
    term: &str,
    first: i64,
    max: i64,
    full: usize,
    page: usize,
) {
    let _ = write!(
        out,
        "<filters id=\"\"><term>{}</term><keywords/></filters>\
         <sort><field>name<order>ascending</order></field></sort>\
         <{kind}s start=\"{first}\" max=\"{max}\"/>\
         <{kind}_count>{full}<filtered>{full}</filtered><page>{page}</page></{kind}_count>\
         </get_{kind}s_response>",
        esc(term)
    );
}

pub(super) fn common(
    out: &mut String,
    kind: &str,
    id: &str,
    name: &str,
    comment: &str,
    times: (&str, &str),
    in_use: bool,
) {
    let _ = write!(
        out,
        "<{kind} id=\"{id}\"><owner><name>{DEFAULT_USER}</name></owner><name>{}</name>\
         <comment>{}</comment><creation_time>{}</creation_time>\
         <modification_time>{}</modification_time><writable>1</writable>\
         <in_use>{}</in_use><permissions><permission><name>Everything</name></permission>\
         </permissions>",
        esc(name),
        esc(comment),
        times.0,
        times.1,
        u8::from(in_use)
    );
}

pub(super) fn term_of(cmd: &Elem, f: &Filter) -> String {
    let mut term = cmd.attr("filter").unwrap_or("").trim().to_string();
    if !f.rows_given {
        let _ = write!(
            term,
            "{}rows={}",
            if term.is_empty() { "" } else { " " },
            f.rows
        );
    }
    term
}
