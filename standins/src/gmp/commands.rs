//! Commands of the GMP stand-in: a complete command dispatched to its handler (unless a fault
//! is scripted for it), the shapes of gvmd's responses, and the two commands that are about no
//! resource, get_version and authenticate.

use std::collections::VecDeque;

use quick_xml::escape::partial_escape;

use super::connection::Elem;
use super::reports::{get_reports, ReportsJob};
use super::runs::{start_task, stop_task};
use super::targets::{create_target, delete_target, get_targets, modify_target};
use super::tasks::{create_task, delete_task, get_tasks, modify_task};
use super::{State, GMP_VERSION};

/// What to do with a complete command.
pub(super) enum Reply {
    Xml(String),
    Reports(ReportsJob),
    /// Close without answering.
    Drop,
    /// Never answer; keep the connection open.
    Hang,
}

/// `<CMD_response status=.. status_text=../>`. The text is written as gvmd's printf does
/// (apostrophes stay literal, as in "Failed to find target 'ID'"); only `&`, `<`, `>` and `"`
/// are escaped.
pub(super) fn response(cmd: &str, status: u16, text: &str) -> String {
    let text = partial_escape(text).replace('"', "&quot;");
    format!("<{cmd}_response status=\"{status}\" status_text=\"{text}\"/>")
}

pub(super) fn ok(cmd: &str) -> String {
    response(cmd, 200, "OK")
}

pub(super) fn syntax(cmd: &str, text: &str) -> String {
    response(cmd, 400, text)
}

/// gvmd's send_find_error_to_client.
pub(super) fn not_found(cmd: &str, kind: &str, id: &str) -> String {
    response(cmd, 404, &format!("Failed to find {kind} '{id}'"))
}

pub(super) fn created(cmd: &str, id: &str) -> String {
    format!("<{cmd}_response status=\"201\" status_text=\"OK, resource created\" id=\"{id}\"/>")
}

pub(super) fn dispatch(s: &mut State, cmd: &Elem, authed: &mut bool) -> Reply {
    let name = cmd.name.as_str();
    if let Some(n) = s.hangs.get_mut(name) {
        if *n > 0 {
            *n -= 1;
            return Reply::Hang;
        }
    }
    if let Some(n) = s.drops.get_mut(name) {
        if *n > 0 {
            *n -= 1;
            return Reply::Drop;
        }
    }
    if let Some((status, text)) = s.fails.get_mut(name).and_then(VecDeque::pop_front) {
        return Reply::Xml(response(name, status, &text));
    }
    Reply::Xml(match name {
        "get_version" => format!(
            "<get_version_response status=\"200\" status_text=\"OK\">\
             <version>{GMP_VERSION}</version></get_version_response>"
        ),
        "authenticate" => authenticate(s, cmd, authed),
        "get_targets" => get_targets(s, cmd),
        "create_target" => create_target(s, cmd),
        "modify_target" => modify_target(s, cmd),
        "delete_target" => delete_target(s, cmd),
        "get_tasks" => get_tasks(s, cmd),
        "create_task" => create_task(s, cmd),
        "modify_task" => modify_task(s, cmd),
        "start_task" => start_task(s, cmd),
        "stop_task" => stop_task(s, cmd),
        "delete_task" => delete_task(s, cmd),
        "get_reports" => return get_reports(s, cmd),
        // Unknown names were refused at their start tag.
        _ => response("gmp", 400, "Bogus command name"),
    })
}

fn authenticate(s: &mut State, cmd: &Elem, authed: &mut bool) -> String {
    let creds = cmd.child("credentials");
    let user = creds.and_then(|c| c.child_text("username")).unwrap_or("");
    let pass = creds.and_then(|c| c.child_text("password")).unwrap_or("");
    if user == s.user && pass == s.password {
        *authed = true;
        "<authenticate_response status=\"200\" status_text=\"OK\">\
         <role>Admin</role><timezone>UTC</timezone></authenticate_response>"
            .to_string()
    } else {
        // gvmd: XML_ERROR_AUTH_FAILED, back to the unauthenticated state.
        *authed = false;
        response("authenticate", 400, "Authentication failed")
    }
}
