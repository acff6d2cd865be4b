//! Scripted task runs of the GMP stand-in: gvmd's task statuses, how a run started by
//! start_task moves on at each get_tasks that shows it (Requested, Running with growing progress,
//! then its scripted end) and how stop_task ends it.

use super::commands::{not_found, ok, response, syntax};
use super::connection::Elem;
use super::{now, GmpStandIn, State};

/// How a scripted task run ends (see [`GmpStandIn::set_run`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    Done,
    Stopped,
    Interrupted,
    /// The task stays `Running` forever (a hung scan).
    Never,
}

/// gvmd's task status (also a report's `scan_run_status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Status {
    New,
    Requested,
    Queued,
    Running,
    StopRequested,
    Stopped,
    Done,
    Interrupted,
}

impl Status {
    pub(super) fn name(self) -> &'static str {
        match self {
            Status::New => "New",
            Status::Requested => "Requested",
            Status::Queued => "Queued",
            Status::Running => "Running",
            Status::StopRequested => "Stop Requested",
            Status::Stopped => "Stopped",
            Status::Done => "Done",
            Status::Interrupted => "Interrupted",
        }
    }

    pub(super) fn parse(s: &str) -> Option<Status> {
        [
            Status::New,
            Status::Requested,
            Status::Queued,
            Status::Running,
            Status::StopRequested,
            Status::Stopped,
            Status::Done,
            Status::Interrupted,
        ]
        .into_iter()
        .find(|st| st.name().eq_ignore_ascii_case(s))
    }

    pub(super) fn active(self) -> bool {
        matches!(
            self,
            Status::Requested | Status::Queued | Status::Running | Status::StopRequested
        )
    }
}

impl GmpStandIn {
    /// Scripts the next runs (taken at start_task): `Requested` at the first get_tasks, then
    /// `Running` for `polls_running` more, then `end` (default: 2 polls, [`End::Done`]).
    pub fn set_run(&self, polls_running: usize, end: End) {
        let mut s = self.state();
        s.run_polls = polls_running;
        s.run_end = end;
    }

    /// stop_task commands that stopped an active task.
    pub fn stops(&self) -> usize {
        self.state().stops
    }
}

impl State {
    /// One get_tasks observation of an active task: moves the scripted run on.
    pub(super) fn observe(&mut self, idx: usize) {
        self.step(idx);
        self.sync_report(idx);
    }

    /// A running report's scan_run_status follows its task's status.
    pub(super) fn sync_report(&mut self, idx: usize) {
        let task = &self.tasks[idx];
        if let Some(r) = task.current_report.as_ref() {
            if let Some(r) = self.reports.get_mut(r) {
                r.status = task.status;
            }
        }
    }

    fn step(&mut self, idx: usize) {
        let task = &mut self.tasks[idx];
        if !task.status.active() {
            return;
        }
        if task.status == Status::StopRequested {
            if task.stop_shown {
                self.finish(idx, Status::Stopped);
            } else {
                task.stop_shown = true;
            }
            return;
        }
        task.polls += 1;
        let k = task.polls;
        let n = task.plan_polls;
        if k == 1 {
            task.status = Status::Requested;
            task.progress = 0;
        } else if task.plan_end == End::Never {
            task.status = Status::Running;
            task.progress = (k as i32 - 1).min(99);
        } else if k <= n + 1 {
            task.status = Status::Running;
            task.progress = (((k - 1) * 100) / (n + 1)).clamp(1, 99) as i32;
        } else {
            let end = match task.plan_end {
                End::Done => Status::Done,
                End::Stopped => Status::Stopped,
                End::Interrupted | End::Never => Status::Interrupted,
            };
            self.finish(idx, end);
        }
    }

    /// Ends the current run of a task with `status`; its report gets the configured results.
    fn finish(&mut self, idx: usize, status: Status) {
        let (results, padding) = (self.results, self.padding);
        let task = &mut self.tasks[idx];
        task.status = status;
        task.progress = -1;
        if let Some(rid) = task.current_report.take() {
            if let Some(r) = self.reports.get_mut(&rid) {
                r.status = status;
                r.results = results;
                r.padding = padding;
                r.scan_end = now();
            }
            task.last_report = Some(rid);
        }
    }
}

pub(super) fn start_task(s: &mut State, cmd: &Elem) -> String {
    const C: &str = "start_task";
    let Some(id) = cmd.attr("task_id") else {
        return syntax(C, "A task_id attribute is required");
    };
    let Some(idx) = s.task_idx(id) else {
        return not_found(C, "task", id);
    };
    if s.tasks[idx].status.active() {
        return syntax(C, "Task is active already");
    }
    let id = id.to_string();
    let report = s.new_report(&id, Status::Requested);
    let (polls, end) = (s.run_polls, s.run_end);
    let t = &mut s.tasks[idx];
    t.status = Status::Requested;
    t.progress = 0;
    t.polls = 0;
    t.stop_shown = false;
    t.plan_polls = polls;
    t.plan_end = end;
    t.current_report = Some(report.clone());
    t.reports.push(report.clone());
    format!(
        "<start_task_response status=\"202\" status_text=\"OK, request submitted\">\
         <report_id>{report}</report_id></start_task_response>"
    )
}

pub(super) fn stop_task(s: &mut State, cmd: &Elem) -> String {
    const C: &str = "stop_task";
    let Some(id) = cmd.attr("task_id") else {
        return syntax(C, "A task_id attribute is required");
    };
    let Some(idx) = s.task_idx(id) else {
        return not_found(C, "task", id);
    };
    let t = &mut s.tasks[idx];
    if t.status.active() {
        if t.status != Status::StopRequested {
            t.status = Status::StopRequested;
            t.stop_shown = false;
        }
        s.sync_report(idx);
        s.stops += 1;
        response(C, 202, "OK, request submitted")
    } else {
        // gvmd's stop_task_internal: nothing to stop.
        ok(C)
    }
}
