//! Checks of the relations between the files of one directory: unique job ids and
//! `depends_on` jobs that exist and form no cycle.

use std::collections::BTreeMap;

use super::graph::find_cycles;
use super::suggest::closest;
use super::{FileOutcome, Located};
use crate::jobs::{Diagnostic, Loaded};

/// Checks the relations between the files of one directory: job ids are unique and
/// cross-job dependencies name known jobs without cycles. Jobs involved in a problem are
/// removed from the valid set.
pub fn check_directory(outcomes: Vec<FileOutcome>) -> Loaded {
    let mut diagnostics: Vec<Diagnostic> = Vec::new();
    // The first file (in name order) to use an id owns it.
    let mut owner: BTreeMap<String, usize> = BTreeMap::new();
    let mut rejected = vec![false; outcomes.len()];
    for (i, o) in outcomes.iter().enumerate() {
        rejected[i] = o.job.is_none();
        let Some(id) = &o.id else { continue };
        if let Some(&first) = owner.get(&id.value) {
            diagnostics.push(Diagnostic {
                file: o.file.clone(),
                line: id.line,
                column: id.column,
                path: id.path.clone(),
                message: format!(
                    "job id `{}` is already used by {}",
                    id.value,
                    outcomes[first].file.display()
                ),
                hint: Some("job ids must be unique across the directory".into()),
            });
            rejected[i] = true;
        } else {
            owner.insert(id.value.clone(), i);
        }
    }
    let known: Vec<&str> = owner.keys().map(String::as_str).collect();
    let mut edges: Vec<Vec<usize>> = vec![Vec::new(); outcomes.len()];
    let mut edge_locs: Vec<Vec<&Located>> = vec![Vec::new(); outcomes.len()];
    for (i, o) in outcomes.iter().enumerate() {
        let owns_id =
            o.id.as_ref()
                .is_some_and(|id| owner.get(&id.value) == Some(&i));
        for dep in &o.job_deps {
            match owner.get(&dep.value) {
                Some(&j) => {
                    if owns_id {
                        edges[i].push(j);
                        edge_locs[i].push(dep);
                    }
                }
                None => {
                    let hint = closest(&dep.value, known.iter().copied())
                        .map(|c| format!("did you mean `{c}`?"));
                    diagnostics.push(Diagnostic {
                        file: o.file.clone(),
                        line: dep.line,
                        column: dep.column,
                        path: dep.path.clone(),
                        message: format!("unknown job `{}`", dep.value),
                        hint,
                    });
                    rejected[i] = true;
                }
            }
        }
    }
    for cycle in find_cycles(&edges) {
        let first = cycle[0];
        let names: Vec<&str> = cycle
            .iter()
            .filter_map(|&i| outcomes[i].id.as_ref().map(|id| id.value.as_str()))
            .collect();
        let loc = cycle
            .get(1)
            .and_then(|second| edges[first].iter().position(|j| j == second))
            .and_then(|p| edge_locs[first].get(p));
        let (line, column, path) = loc.map_or((0, 0, String::new()), |l| {
            (l.line, l.column, l.path.clone())
        });
        diagnostics.push(Diagnostic {
            file: outcomes[first].file.clone(),
            line,
            column,
            path,
            message: format!("job dependency cycle: {}", names.join(" -> ")),
            hint: None,
        });
        for &i in &cycle {
            rejected[i] = true;
        }
    }
    let mut loaded = Loaded::default();
    for (i, o) in outcomes.into_iter().enumerate() {
        loaded.diagnostics.extend(o.diagnostics);
        if let (false, Some(job)) = (rejected[i], o.job) {
            loaded.jobs.push(job);
        }
    }
    // File diagnostics first, in file order, then the directory-wide ones.
    loaded.diagnostics.extend(diagnostics);
    loaded
}
