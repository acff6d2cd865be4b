//! Targets of the GMP stand-in: what it holds of one, the presets a test starts from, and the
//! commands get_targets, create_target, modify_target and delete_target with gvmd's rules (names
//! unique, a target in use by a task cannot lose its hosts, port list or existence).

use std::fmt::Write as _;

use super::commands::{created, not_found, ok, syntax};
use super::connection::Elem;
use super::listing::{common, get_end, paginate, parse_filter, term_of};
use super::{esc, now, port_list_name, GmpStandIn, State, PORT_LIST_TCP};

/// A target as the stand-in holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetRec {
    pub id: String,
    pub name: String,
    /// As stored by gvmd: the given hosts, trimmed, joined with ", ".
    pub hosts: String,
    pub port_list_id: String,
    /// Deleted to the trashcan (delete_target without ultimate).
    pub in_trash: bool,
}

/// A target with everything get_targets shows ([`TargetRec`] is what tests see).
#[derive(Clone, Debug)]
pub(super) struct Target {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) comment: String,
    pub(super) hosts: String,
    pub(super) port_list_id: String,
    pub(super) port_list_name: String,
    pub(super) created: String,
    pub(super) modified: String,
    pub(super) in_trash: bool,
}

impl GmpStandIn {
    /// Targets, including those in the trashcan, in creation order.
    pub fn targets(&self) -> Vec<TargetRec> {
        self.state()
            .targets
            .iter()
            .map(|t| TargetRec {
                id: t.id.clone(),
                name: t.name.clone(),
                hosts: t.hosts.clone(),
                port_list_id: t.port_list_id.clone(),
                in_trash: t.in_trash,
            })
            .collect()
    }

    /// Creates a target as if a client had (port list "All IANA assigned TCP" unless given);
    /// returns its id. Panics if the name is taken, as gvmd would refuse it.
    pub fn preset_target(&self, name: &str, hosts: &str, port_list_id: Option<&str>) -> String {
        let mut s = self.state();
        assert!(
            s.target_by_name(name).is_none(),
            "GMP stand-in: target {name:?} exists already"
        );
        let pl = port_list_id.unwrap_or(PORT_LIST_TCP);
        let pl_name = port_list_name(pl)
            .unwrap_or_else(|| panic!("GMP stand-in: unknown port list {pl}"))
            .to_string();
        let id = s.new_id(1);
        let now = now();
        s.targets.push(Target {
            id: id.clone(),
            name: name.to_string(),
            comment: String::new(),
            hosts: clean_hosts(hosts),
            port_list_id: pl.to_string(),
            port_list_name: pl_name,
            created: now.clone(),
            modified: now,
            in_trash: false,
        });
        id
    }
}

/// gvmd's clean_hosts, roughly: each comma-separated host trimmed, empty ones dropped,
/// joined with ", ".
pub(super) fn clean_hosts(hosts: &str) -> String {
    hosts
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .collect::<Vec<_>>()
        .join(", ")
}

impl State {
    pub(super) fn target_by_name(&self, name: &str) -> Option<&Target> {
        self.targets.iter().find(|t| !t.in_trash && t.name == name)
    }

    pub(super) fn target_idx(&self, id: &str) -> Option<usize> {
        self.targets.iter().position(|t| !t.in_trash && t.id == id)
    }

    /// gvmd's target_in_use: a task outside the trashcan refers to it.
    pub(super) fn target_in_use(&self, id: &str) -> bool {
        self.tasks.iter().any(|t| !t.in_trash && t.target_id == id)
    }
}

pub(super) fn get_targets(s: &mut State, cmd: &Elem) -> String {
    let f = parse_filter(cmd.attr("filter").unwrap_or(""));
    let term = term_of(cmd, &f);
    let selected: Vec<Target> = match cmd.attr("target_id") {
        Some(id) => match s.target_idx(id) {
            Some(i) => vec![s.targets[i].clone()],
            None => return not_found("get_targets", "target", id),
        },
        None => s
            .targets
            .iter()
            .filter(|t| !t.in_trash && f.name.as_ref().is_none_or(|n| *n == t.name))
            .cloned()
            .collect(),
    };
    let full = selected.len();
    let (page, first, max) = if cmd.attr("target_id").is_some() {
        (selected, 1, -1)
    } else {
        paginate(selected, &f)
    };
    let mut out = String::from("<get_targets_response status=\"200\" status_text=\"OK\">");
    for t in &page {
        common(
            &mut out,
            "target",
            &t.id,
            &t.name,
            &t.comment,
            (&t.created, &t.modified),
            s.target_in_use(&t.id),
        );
        let max_hosts = t.hosts.split(", ").filter(|h| !h.is_empty()).count();
        let _ = write!(
            out,
            "<hosts>{}</hosts><exclude_hosts></exclude_hosts><max_hosts>{max_hosts}</max_hosts>\
             <port_list id=\"{}\"><name>{}</name><trash>0</trash></port_list>\
             <ssh_credential id=\"\"><name></name><port></port><trash>0</trash></ssh_credential>\
             <smb_credential id=\"\"><name></name><trash>0</trash></smb_credential>\
             <esxi_credential id=\"\"><name></name><trash>0</trash></esxi_credential>\
             <snmp_credential id=\"\"><name></name><trash>0</trash></snmp_credential>\
             <ssh_elevate_credential id=\"\"><name></name><trash>0</trash></ssh_elevate_credential>\
             <krb5_credential id=\"\"><name></name><trash>0</trash></krb5_credential>\
             <reverse_lookup_only>0</reverse_lookup_only>\
             <reverse_lookup_unify>0</reverse_lookup_unify>\
             <alive_tests>Scan Config Default</alive_tests>\
             <allow_simultaneous_ips>1</allow_simultaneous_ips></target>",
            esc(&t.hosts),
            t.port_list_id,
            esc(&t.port_list_name)
        );
    }
    let n = page.len();
    get_end(&mut out, "target", &term, first, max, full, n);
    out
}

pub(super) fn create_target(s: &mut State, cmd: &Elem) -> String {
    const C: &str = "create_target";
    let Some(name) = cmd.child_text("name") else {
        return syntax(C, "A NAME is required");
    };
    if name.is_empty() {
        return syntax(C, "Name must be at least one character long");
    }
    let Some(hosts) = cmd.child_text("hosts") else {
        return syntax(C, "A host is required");
    };
    if hosts.is_empty() {
        return syntax(C, "Hosts must be at least one character long");
    }
    // manage_sql_targets.c create_target: the name check comes before the port list.
    if s.target_by_name(name).is_some() {
        return syntax(C, "Target exists already");
    }
    let (pl_id, pl_name) = match (cmd.child_id("port_list"), cmd.child_text("port_range")) {
        (Some(id), _) => match port_list_name(id) {
            Some(n) => (id.to_string(), n.to_string()),
            None => return not_found(C, "port_list", id),
        },
        (None, Some(_range)) => (s.new_id(5), name.to_string()),
        (None, None) => return syntax(C, "One of PORT_LIST and PORT_RANGE are required"),
    };
    let hosts = clean_hosts(hosts);
    if hosts.is_empty() {
        return syntax(C, "Error in host specification");
    }
    let id = s.new_id(1);
    let now = now();
    s.targets.push(Target {
        id: id.clone(),
        name: name.to_string(),
        comment: cmd.child_text("comment").unwrap_or("").to_string(),
        hosts,
        port_list_id: pl_id,
        port_list_name: pl_name,
        created: now.clone(),
        modified: now,
        in_trash: false,
    });
    created(C, &id)
}

pub(super) fn modify_target(s: &mut State, cmd: &Elem) -> String {
    const C: &str = "modify_target";
    let Some(id) = cmd.attr("target_id") else {
        return syntax(C, "A target_id attribute is required");
    };
    let hosts = cmd.child_text("hosts");
    let exclude = cmd.child_text("exclude_hosts");
    if hosts.is_some() && exclude.is_none() {
        return syntax(C, "HOSTS requires an EXCLUDE_HOSTS");
    }
    let Some(idx) = s.target_idx(id) else {
        return not_found(C, "target", id);
    };
    let in_use = s.target_in_use(id);
    let mut t = s.targets[idx].clone();
    if let Some(name) = cmd.child_text("name") {
        if name.is_empty() {
            return syntax(C, "Name must be at least one character long");
        }
        if s.targets
            .iter()
            .any(|o| !o.in_trash && o.id != t.id && o.name == name)
        {
            return syntax(C, "Target exists already");
        }
        t.name = name.to_string();
    }
    if let Some(comment) = cmd.child_text("comment") {
        t.comment = comment.to_string();
    }
    if let Some(pl) = cmd.child_id("port_list") {
        if in_use {
            return syntax(C, "Target is in use");
        }
        match port_list_name(pl) {
            Some(n) => {
                t.port_list_id = pl.to_string();
                t.port_list_name = n.to_string();
            }
            None => return not_found(C, "port_list", pl),
        }
    }
    if exclude.is_some() {
        if in_use {
            return syntax(C, "Target is in use");
        }
        let Some(hosts) = hosts else {
            return syntax(C, "EXCLUDE_HOSTS requires a HOSTS");
        };
        if hosts.is_empty() {
            // Sic: gvmd's text lacks the space.
            return syntax(C, "HOSTS must be at least onecharacter long");
        }
        let cleaned = clean_hosts(hosts);
        if cleaned.is_empty() {
            return syntax(C, "Error in host specification");
        }
        t.hosts = cleaned;
    }
    t.modified = now();
    s.targets[idx] = t;
    ok(C)
}

pub(super) fn delete_target(s: &mut State, cmd: &Elem) -> String {
    const C: &str = "delete_target";
    let Some(id) = cmd.attr("target_id") else {
        return syntax(C, "A target_id attribute is required");
    };
    let ultimate = cmd.flag("ultimate");
    let Some(idx) = s.targets.iter().position(|t| t.id == id) else {
        return not_found(C, "target", id);
    };
    let id = id.to_string();
    if s.targets[idx].in_trash {
        if !ultimate {
            return ok(C); // Already in the trashcan.
        }
        if s.tasks.iter().any(|t| t.target_id == id) {
            return syntax(C, "Target is in use");
        }
        s.targets.remove(idx);
    } else if !ultimate {
        if s.target_in_use(&id) {
            return syntax(C, "Target is in use");
        }
        s.targets[idx].in_trash = true;
    } else {
        if s.tasks.iter().any(|t| t.target_id == id) {
            return syntax(C, "Target is in use");
        }
        s.targets.remove(idx);
    }
    s.deleted.push(id);
    ok(C)
}
