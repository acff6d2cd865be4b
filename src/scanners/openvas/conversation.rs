//! The openvas scan as a conversation with gvmd: each step (find or create the target and the
//! task, start or join a run, poll, stream the report) written so it can be done again from the
//! start on a new connection when the old one drops.

use super::*;

/// One conversation with gvmd for one run.
pub(super) struct Conversation<'a> {
    pub(super) run: &'a GmpRun<'a>,
    pub(super) password: String,
    pub(super) session: Option<Session>,
    pub(super) hosts: String,
}

impl Conversation<'_> {
    async fn session(&mut self) -> Result<&mut Session, GmpError> {
        if self.session.is_none() {
            let s = self.run.settings;
            let session = Session::open(&s.endpoint, &s.username, &self.password, s.reply_timeout)
                .await
                .map_err(|e| match e {
                    GmpError::Login { .. } => {
                        GmpError::Local(format!("{e} ({})", s.password_file.display()))
                    }
                    e => e,
                })?;
            self.session = Some(session);
        }
        Ok(self.session.as_mut().expect("just opened"))
    }

    pub(super) async fn call(&mut self, command: &str, xml: &str) -> Result<Element, GmpError> {
        let r = self.session().await?.call(command, xml).await;
        if r.as_ref().is_err_and(|e| e.is_dropped()) {
            self.session = None;
        }
        r
    }

    /// The job's target, made if missing.
    async fn ensure_target(&mut self) -> Result<String, GmpError> {
        let s = self.run.settings;
        let name = target_name(self.run.job, &self.hosts, &s.port_list_id);
        let resp = self
            .call(
                "get_targets",
                &format!(
                    r#"<get_targets filter="name=&quot;{}&quot; rows=-1"/>"#,
                    escape(&name)
                ),
            )
            .await?;
        if let Some(t) = resp
            .children_named("target")
            .find(|t| t.text_at("name") == Some(name.as_str()))
        {
            let id = t.attr("id").unwrap_or_default().to_string();
            // gvmd tidies a host list as it stores it: compare as sets, ignoring case.
            let set = |h: &str| -> std::collections::BTreeSet<String> {
                h.split(',')
                    .map(|x| x.trim().to_ascii_lowercase())
                    .filter(|x| !x.is_empty())
                    .collect()
            };
            let hosts = t.text_at("hosts").unwrap_or_default();
            let port_list = t.id_at("port_list").unwrap_or_default();
            if set(hosts) != set(&self.hosts) || !port_list.eq_ignore_ascii_case(&s.port_list_id) {
                tracing::warn!(
                    job = %self.run.job,
                    target = %id,
                    hosts,
                    port_list,
                    "the gvmd target {name} differs from the job (hosts {}, port list {}); edited by hand? It is used as it is",
                    self.hosts,
                    s.port_list_id
                );
            }
            tracing::debug!(job = %self.run.job, target = %id, "gvmd target found");
            return Ok(id);
        }
        let resp = self
            .call(
                "create_target",
                &format!(
                    "<create_target><name>{}</name><comment>{}</comment><hosts>{}</hosts><port_list id=\"{}\"/></create_target>",
                    escape(&name),
                    escape(&format!("Made by hostedscan-agent for the job {:?}; edits are not kept", self.run.job)),
                    escape(&self.hosts),
                    escape(&s.port_list_id)
                ),
            )
            .await?;
        let id = created_id("create_target", &resp)?;
        tracing::info!(job = %self.run.job, target = %id, name = %name, hosts = %self.hosts, "gvmd target created");
        Ok(id)
    }

    /// The job's task, made if missing, pointed at `target` and the job's scan config and
    /// scanner.
    async fn ensure_task(&mut self, target: &str) -> Result<Task, GmpError> {
        let s = self.run.settings;
        let name = task_name(self.run.job);
        let resp = self
            .call(
                "get_tasks",
                &format!(
                    r#"<get_tasks filter="name=&quot;{}&quot; rows=-1"/>"#,
                    escape(&name)
                ),
            )
            .await?;
        let found = resp
            .children_named("task")
            .find(|t| t.text_at("name") == Some(name.as_str()))
            .and_then(Task::from_element);
        let Some(mut task) = found else {
            let resp = self
                .call(
                    "create_task",
                    &format!(
                        "<create_task><name>{}</name><comment>{}</comment><config id=\"{}\"/><target id=\"{}\"/><scanner id=\"{}\"/><alterable>1</alterable></create_task>",
                        escape(&name),
                        escape(&format!("Run by hostedscan-agent for the job {:?}; its reports are uploaded to HostedScan", self.run.job)),
                        escape(&s.scan_config_id),
                        escape(target),
                        escape(&s.scanner_id)
                    ),
                )
                .await?;
            let id = created_id("create_task", &resp)?;
            tracing::info!(job = %self.run.job, task = %id, name = %name, "gvmd task created");
            return Ok(Task {
                id,
                status: "New".into(),
                target_id: target.into(),
                target_name: String::new(),
                config_id: s.scan_config_id.clone(),
                scanner_id: s.scanner_id.clone(),
                current_report: None,
            });
        };
        let changed = !task.target_id.eq_ignore_ascii_case(target)
            || !task.config_id.eq_ignore_ascii_case(&s.scan_config_id)
            || !task.scanner_id.eq_ignore_ascii_case(&s.scanner_id);
        if changed && task_state(&task.status) == TaskState::Active {
            tracing::warn!(job = %self.run.job, task = %task.id, status = %task.status, "the gvmd task is running with other hosts or scan settings than the job's; this run waits for it, and the job's settings apply from the next run");
        }
        if changed && task_state(&task.status) != TaskState::Active {
            let old_target = (task.target_id != target)
                .then(|| (task.target_id.clone(), task.target_name.clone()));
            self.call(
                "modify_task",
                &format!(
                    "<modify_task task_id=\"{}\"><target id=\"{}\"/><config id=\"{}\"/><scanner id=\"{}\"/></modify_task>",
                    escape(&task.id),
                    escape(target),
                    escape(&s.scan_config_id),
                    escape(&s.scanner_id)
                ),
            )
            .await
            .map_err(|e| match e {
                GmpError::Status { status, text, .. } => GmpError::Local(format!(
                    "gvmd will not point the task {name} at the job's new target or scan settings ({status} {text:?}): delete the task in gvmd (or make it alterable) and the next run makes it again"
                )),
                e => e,
            })?;
            tracing::info!(job = %self.run.job, task = %task.id, target, "gvmd task now uses the job's current target and scan settings");
            task.target_id = target.into();
            task.config_id = s.scan_config_id.clone();
            task.scanner_id = s.scanner_id.clone();
            if let Some((old, old_name)) = old_target {
                // The old target was the agent's (by its name) and nothing uses it now.
                if old_name.starts_with(&format!("{NAME_PREFIX}{}_", self.run.job)) {
                    match self
                        .call(
                            "delete_target",
                            &format!(
                                r#"<delete_target target_id="{}" ultimate="1"/>"#,
                                escape(&old)
                            ),
                        )
                        .await
                    {
                        Ok(_) => {
                            tracing::info!(job = %self.run.job, target = %old, "the job's previous gvmd target is deleted")
                        }
                        // Not worth failing the scan over: the old target is only clutter.
                        Err(e) => {
                            tracing::warn!(job = %self.run.job, target = %old, error = %e, "cannot delete the job's previous gvmd target; delete it by hand")
                        }
                    }
                }
            }
        }
        Ok(task)
    }

    /// Starts the task, or adopts the run of it already going. Returns the report's id.
    async fn start(&mut self, task: &Task, start_sent: &mut bool) -> Result<String, GmpError> {
        let now = self.task(&task.id).await?;
        if task_state(&now.status) == TaskState::Active {
            if let Some(r) = now.current_report {
                tracing::info!(job = %self.run.job, task = %task.id, report = %r, status = %now.status, "the gvmd task is already running (an earlier run, or started by hand); waiting for it rather than starting another");
                return Ok(r);
            }
        }
        *start_sent = true;
        let resp = self
            .call(
                "start_task",
                &format!(r#"<start_task task_id="{}"/>"#, escape(&task.id)),
            )
            .await?;
        let report = resp
            .text_at("report_id")
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .ok_or_else(|| GmpError::Protocol {
                command: "start_task".into(),
                detail: "no report_id in the answer".into(),
            })?;
        tracing::info!(job = %self.run.job, task = %task.id, report = %report, "gvmd task started");
        Ok(report)
    }

    async fn task(&mut self, id: &str) -> Result<Task, GmpError> {
        let resp = self
            .call(
                "get_tasks",
                &format!(r#"<get_tasks task_id="{}"/>"#, escape(id)),
            )
            .await?;
        resp.child("task")
            .and_then(Task::from_element)
            .ok_or_else(|| GmpError::Protocol {
                command: "get_tasks".into(),
                detail: format!("no task {id} in the answer"),
            })
    }

    pub(super) async fn stop(&mut self, task: &str) -> Result<(), GmpError> {
        self.call(
            "stop_task",
            &format!(r#"<stop_task task_id="{}"/>"#, escape(task)),
        )
        .await
        .map(drop)
    }

    /// Streams the report into `output` (created anew, fsynced).
    async fn fetch(&mut self, report: &str, output: &Path) -> Result<u64, GmpError> {
        let local = |e: std::io::Error| {
            GmpError::Local(format!(
                "cannot write the report to {}: {e}",
                output.display()
            ))
        };
        let file = tokio::fs::File::create(output).await.map_err(local)?;
        let mut out = tokio::io::BufWriter::with_capacity(256 * 1024, file);
        let cmd = format!(
            r#"<get_reports report_id="{}" format_id="{XML_REPORT_FORMAT}" filter="{}" ignore_pagination="1" details="1"/>"#,
            escape(report),
            escape(&report_filter(self.run.settings.min_qod))
        );
        let r = self
            .session()
            .await?
            .fetch_into("get_reports", &cmd, &mut out)
            .await;
        if r.is_err() {
            // Whatever is left of the answer is still on the connection.
            self.session = None;
        }
        let bytes = r?;
        out.flush().await.map_err(local)?;
        out.into_inner().sync_all().await.map_err(local)?;
        Ok(bytes)
    }

    /// The steps from wherever `p` says the run is.
    pub(super) async fn attempt(
        &mut self,
        p: &mut Progress,
        output: &Path,
    ) -> Result<u64, GmpError> {
        if p.target.is_none() {
            p.target = Some(self.ensure_target().await?);
        }
        if p.task.is_none() {
            let target = p.target.clone().unwrap_or_default();
            p.task = Some(self.ensure_task(&target).await?);
        }
        let task = p.task.clone().expect("set above");
        if p.report.is_none() {
            p.report = Some(self.start(&task, &mut p.start_sent).await?);
        }
        while p.ended.is_none() {
            let now = self.task(&task.id).await?;
            p.polls += 1;
            match task_state(&now.status) {
                TaskState::Active | TaskState::New => {
                    let wait = p.interval.map_or(self.run.settings.polling.first, |i| {
                        self.run.settings.polling.next(i)
                    });
                    p.interval = Some(wait);
                    tracing::debug!(job = %self.run.job, status = %now.status, next_poll = ?wait, "gvmd task still running");
                    tokio::time::sleep(wait).await;
                }
                _ => p.ended = Some(now.status),
            }
        }
        let ended = p.ended.clone().unwrap_or_default();
        match task_state(&ended) {
            TaskState::Done => {}
            TaskState::Partial if self.run.accept_partial => {
                tracing::warn!(job = %self.run.job, status = %ended, "the gvmd task did not finish; uploading its partial report (accept_partial)");
            }
            TaskState::Partial => {
                return Err(GmpError::Local(format!(
                    "the gvmd task ended {ended} (stopped by someone, or gvmd or the scanner was restarted); its partial report is not uploaded (set accept_partial = true to upload partial scans)"
                )))
            }
            _ => {
                return Err(GmpError::Local(format!(
                    "the gvmd task is {ended:?}: it cannot be run (deleted, or a container task?)"
                )))
            }
        }
        let report = p.report.clone().unwrap_or_default();
        self.fetch(&report, output).await
    }
}

/// The id of what a `create_*` command made.
fn created_id(command: &str, resp: &Element) -> Result<String, GmpError> {
    resp.attr("id")
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .ok_or_else(|| GmpError::Protocol {
            command: command.into(),
            detail: "no id in the answer".into(),
        })
}
