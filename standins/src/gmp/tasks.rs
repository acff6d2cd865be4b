//! Tasks of the GMP stand-in: what it holds of one, the presets a test starts from, and the
//! commands get_tasks (which also moves scripted runs on, see `runs.rs`), create_task,
//! modify_task and delete_task with gvmd's rules.

use std::fmt::Write as _;

use super::commands::{created, not_found, ok, response, syntax};
use super::connection::Elem;
use super::listing::{common, get_end, paginate, parse_filter, term_of};
use super::runs::{End, Status};
use super::{
    config_name, esc, now, scanner, GmpStandIn, State, CONFIG_FULL_AND_FAST, SCANNER_OPENVAS,
};

/// A task as the stand-in holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskRec {
    pub id: String,
    pub name: String,
    pub target_id: String,
    pub config_id: String,
    pub scanner_id: String,
    /// gvmd's status name: New, Requested, Queued, Running, Stop Requested, Stopped, Done,
    /// Interrupted.
    pub status: String,
    pub alterable: bool,
    /// Every report of the task, oldest first (one per start_task).
    pub report_ids: Vec<String>,
    /// Deleted to the trashcan (delete_task without ultimate).
    pub in_trash: bool,
}

/// A task with everything get_tasks shows and its scripted run ([`TaskRec`] is what tests see).
#[derive(Clone, Debug)]
pub(super) struct Task {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) comment: String,
    pub(super) target_id: String,
    pub(super) config_id: String,
    pub(super) scanner_id: String,
    pub(super) alterable: bool,
    pub(super) status: Status,
    pub(super) progress: i32,
    /// get_tasks observations since the run started.
    pub(super) polls: usize,
    /// Whether the Stop Requested state has been shown once.
    pub(super) stop_shown: bool,
    pub(super) plan_polls: usize,
    pub(super) plan_end: End,
    pub(super) current_report: Option<String>,
    pub(super) last_report: Option<String>,
    pub(super) reports: Vec<String>,
    pub(super) created: String,
    pub(super) modified: String,
    pub(super) in_trash: bool,
}

impl GmpStandIn {
    /// Tasks, including those in the trashcan, in creation order. Reading them does not move
    /// a scripted run on (only get_tasks does).
    pub fn tasks(&self) -> Vec<TaskRec> {
        self.state()
            .tasks
            .iter()
            .map(|t| TaskRec {
                id: t.id.clone(),
                name: t.name.clone(),
                target_id: t.target_id.clone(),
                config_id: t.config_id.clone(),
                scanner_id: t.scanner_id.clone(),
                status: t.status.name().to_string(),
                alterable: t.alterable,
                report_ids: t.reports.clone(),
                in_trash: t.in_trash,
            })
            .collect()
    }
    /// Puts a task named `name` in `status` (a gvmd status name, e.g. "Running" to simulate a
    /// task left running by a previous agent, or "Done"), on the target named `name` (created
    /// with `hosts` if there is none); returns the task id. An active preset task follows the
    /// current [`set_run`](Self::set_run) script as if its first get_tasks had happened; a
    /// finished one gets one finished report.
    pub fn preset_task(&self, name: &str, hosts: &str, status: &str) -> String {
        let status = Status::parse(status)
            .unwrap_or_else(|| panic!("GMP stand-in: unknown task status {status:?}"));
        let existing = self.state().target_by_name(name).map(|t| t.id.clone());
        let target_id = match existing {
            Some(id) => id,
            None => self.preset_target(name, hosts, None),
        };
        let mut s = self.state();
        let id = s.new_id(2);
        let now = now();
        let mut task = Task {
            id: id.clone(),
            name: name.to_string(),
            comment: String::new(),
            target_id,
            config_id: CONFIG_FULL_AND_FAST.to_string(),
            scanner_id: SCANNER_OPENVAS.to_string(),
            alterable: false,
            status,
            progress: -1,
            polls: 0,
            stop_shown: false,
            plan_polls: s.run_polls,
            plan_end: s.run_end,
            current_report: None,
            last_report: None,
            reports: Vec::new(),
            created: now.clone(),
            modified: now.clone(),
            in_trash: false,
        };
        if status != Status::New {
            let report = s.new_report(&id, status);
            task.reports.push(report.clone());
            if status.active() {
                task.current_report = Some(report);
                task.polls = 1;
                task.progress = if status == Status::Requested { 0 } else { 1 };
            } else {
                let (results, padding) = (s.results, s.padding);
                let r = s.reports.get_mut(&report).expect("report just made");
                r.results = results;
                r.padding = padding;
                r.scan_end = now.clone();
                task.last_report = Some(report);
            }
        }
        s.tasks.push(task);
        id
    }
}

impl State {
    pub(super) fn task_idx(&self, id: &str) -> Option<usize> {
        self.tasks.iter().position(|t| !t.in_trash && t.id == id)
    }
}

pub(super) fn get_tasks(s: &mut State, cmd: &Elem) -> String {
    let f = parse_filter(cmd.attr("filter").unwrap_or(""));
    let term = term_of(cmd, &f);
    let selected: Vec<usize> = match cmd.attr("task_id") {
        Some(id) => match s.task_idx(id) {
            Some(i) => vec![i],
            None => return not_found("get_tasks", "task", id),
        },
        None => (0..s.tasks.len())
            .filter(|&i| {
                let t = &s.tasks[i];
                !t.in_trash && f.name.as_ref().is_none_or(|n| *n == t.name)
            })
            .collect(),
    };
    let full = selected.len();
    let (page, first, max) = if cmd.attr("task_id").is_some() {
        (selected, 1, -1)
    } else {
        paginate(selected, &f)
    };
    let mut out = String::from(
        "<get_tasks_response status=\"200\" status_text=\"OK\"><apply_overrides>0</apply_overrides>",
    );
    for &i in &page {
        s.observe(i);
        let t = &s.tasks[i];
        common(
            &mut out,
            "task",
            &t.id,
            &t.name,
            &t.comment,
            (&t.created, &t.modified),
            t.status.active(),
        );
        let target_name = s
            .targets
            .iter()
            .find(|x| x.id == t.target_id)
            .map(|x| x.name.as_str())
            .unwrap_or("");
        let (scanner_name, scanner_type) = scanner(&t.scanner_id).unwrap_or(("", 0));
        let finished = t
            .reports
            .iter()
            .filter(|r| s.reports.get(*r).is_some_and(|r| !r.status.active()))
            .count();
        let _ = write!(
            out,
            "<alterable>{}</alterable><usage_type>scan</usage_type>\
             <config id=\"{}\"><name>{}</name><trash>0</trash></config>\
             <target id=\"{}\"><name>{}</name><trash>0</trash></target>\
             <hosts_ordering></hosts_ordering>\
             <scanner id='{}'><name>{}</name><type>{scanner_type}</type><trash>0</trash></scanner>\
             <status>{}</status><progress>{}</progress>\
             <report_count>{}<finished>{finished}</finished></report_count><trend></trend>\
             <schedule id=\"\"><name></name><trash>0</trash></schedule>\
             <schedule_periods>0</schedule_periods>",
            u8::from(t.alterable),
            t.config_id,
            esc(config_name(&t.config_id).unwrap_or("")),
            t.target_id,
            esc(target_name),
            t.scanner_id,
            esc(scanner_name),
            t.status.name(),
            t.progress,
            t.reports.len(),
        );
        if let Some(r) = t.current_report.as_ref().and_then(|r| s.reports.get(r)) {
            let _ = write!(
                out,
                "<current_report><report id=\"{}\"><timestamp>{}</timestamp>\
                 <scan_start>{}</scan_start><scan_end></scan_end></report></current_report>",
                r.id, r.created, r.scan_start
            );
        }
        if let Some(r) = t.last_report.as_ref().and_then(|r| s.reports.get(r)) {
            let _ = write!(
                out,
                "<last_report><report id=\"{}\"><timestamp>{}</timestamp>\
                 <scan_start>{}</scan_start><scan_end>{}</scan_end></report></last_report>",
                r.id, r.created, r.scan_start, r.scan_end
            );
        }
        out.push_str(
            "<observers></observers><preferences><preference>\
             <name>Maximum concurrently executed NVTs per host</name>\
             <scanner_name>max_checks</scanner_name><value>4</value></preference><preference>\
             <name>Maximum concurrently scanned hosts</name>\
             <scanner_name>max_hosts</scanner_name><value>20</value></preference>\
             </preferences></task>",
        );
    }
    let n = page.len();
    get_end(&mut out, "task", &term, first, max, full, n);
    out
}

pub(super) fn create_task(s: &mut State, cmd: &Elem) -> String {
    const C: &str = "create_task";
    let Some(name) = cmd.child_text("name") else {
        return syntax(C, "A NAME is required");
    };
    let Some(target_id) = cmd.child_id("target") else {
        return syntax(C, "A target is required");
    };
    let Some(config_id) = cmd.child_id("config") else {
        return syntax(C, "A config is required");
    };
    let scanner_id = cmd.child_id("scanner").unwrap_or(SCANNER_OPENVAS);
    // gmp.c CLIENT_CREATE_TASK checks the scanner, then the config, then the target.
    if scanner(scanner_id).is_none() {
        return not_found(C, "scanner", scanner_id);
    }
    if config_name(config_id).is_none() {
        return not_found(C, "config", config_id);
    }
    if s.target_idx(target_id).is_none() {
        return not_found(C, "target", target_id);
    }
    let alterable = cmd.child_text("alterable").is_some_and(|v| v != "0");
    let id = s.new_id(2);
    let now = now();
    let task = Task {
        id: id.clone(),
        name: name.to_string(),
        comment: cmd.child_text("comment").unwrap_or("").to_string(),
        target_id: target_id.to_string(),
        config_id: config_id.to_string(),
        scanner_id: scanner_id.to_string(),
        alterable,
        status: Status::New,
        progress: -1,
        polls: 0,
        stop_shown: false,
        plan_polls: s.run_polls,
        plan_end: s.run_end,
        current_report: None,
        last_report: None,
        reports: Vec::new(),
        created: now.clone(),
        modified: now,
        in_trash: false,
    };
    s.tasks.push(task);
    created(C, &id)
}

pub(super) fn modify_task(s: &mut State, cmd: &Elem) -> String {
    const C: &str = "modify_task";
    let Some(id) = cmd.attr("task_id") else {
        return syntax(C, "A task_id attribute is required");
    };
    let Some(idx) = s.task_idx(id) else {
        // Sic: gvmd says "Task" here.
        return not_found(C, "Task", id);
    };
    let mut t = s.tasks[idx].clone();
    let locked = (t.status != Status::New && !t.alterable) || t.status.active();
    if let Some(name) = cmd.child_text("name") {
        t.name = name.to_string();
    }
    if let Some(comment) = cmd.child_text("comment") {
        t.comment = comment.to_string();
    }
    if let Some(sc) = cmd.child_id("scanner") {
        if locked {
            return syntax(C, "Status must be New to edit scanner");
        }
        if scanner(sc).is_none() {
            return not_found(C, "scanner", sc);
        }
        t.scanner_id = sc.to_string();
    }
    if let Some(cf) = cmd.child_id("config") {
        if locked {
            return syntax(C, "Status must be New to edit config");
        }
        if config_name(cf).is_none() {
            return not_found(C, "config", cf);
        }
        t.config_id = cf.to_string();
    }
    if let Some(a) = cmd.child_text("alterable") {
        if t.status != Status::New {
            return syntax(C, "Task must be New to modify Alterable state");
        }
        t.alterable = a != "0";
    }
    if let Some(tg) = cmd.child_id("target") {
        if locked {
            return syntax(C, "Status must be New to edit Target");
        }
        if s.target_idx(tg).is_none() {
            return not_found(C, "target", tg);
        }
        t.target_id = tg.to_string();
    }
    t.modified = now();
    s.tasks[idx] = t;
    ok(C)
}

pub(super) fn delete_task(s: &mut State, cmd: &Elem) -> String {
    const C: &str = "delete_task";
    let Some(id) = cmd.attr("task_id") else {
        return syntax(C, "A task_id attribute is required");
    };
    let ultimate = cmd.flag("ultimate");
    let Some(idx) = s.tasks.iter().position(|t| t.id == id) else {
        return not_found(C, "task", id);
    };
    let id = id.to_string();
    let was_active = s.tasks[idx].status.active();
    if was_active {
        // gvmd stops the scan first and answers "request submitted"; here the run is dropped
        // at once.
        let t = &mut s.tasks[idx];
        t.status = Status::Stopped;
        t.progress = -1;
        if let Some(r) = t.current_report.take() {
            if let Some(r) = s.reports.get_mut(&r) {
                r.status = Status::Stopped;
                r.scan_end = now();
            }
        }
    }
    if ultimate {
        let t = s.tasks.remove(idx);
        for r in &t.reports {
            s.reports.remove(r);
        }
    } else {
        s.tasks[idx].in_trash = true;
    }
    s.deleted.push(id);
    if was_active {
        response(C, 202, "OK, request submitted")
    } else {
        ok(C)
    }
}
