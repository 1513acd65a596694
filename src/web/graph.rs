//! The DAG of a run as an SVG graph (placeholder: one row per task; the `graph` work replaces
//! it with a real layout behind the same signature).

use super::html::escape;

/// One task of the graph: its id, the tasks it depends on, its status word and attempts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GraphTask {
    pub id: String,
    pub deps: Vec<String>,
    pub status: String,
    pub attempts: u32,
}

/// A complete `<svg>` element with one `<g class="node status-STATUS" data-task="ID"
/// data-status="STATUS">` per task, every text escaped, no script.
pub fn dag_svg(tasks: &[GraphTask]) -> String {
    let h = 28 * tasks.len().max(1);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"dag\" width=\"320\" height=\"{h}\" \
         viewBox=\"0 0 320 {h}\">"
    );
    for (i, t) in tasks.iter().enumerate() {
        let y = 28 * i;
        s.push_str(&format!(
            "<g class=\"node status-{st}\" data-task=\"{id}\" data-status=\"{st}\">\
             <rect x=\"2\" y=\"{ry}\" width=\"316\" height=\"24\" rx=\"4\"/>\
             <text x=\"10\" y=\"{ty}\">{id} ({st}, {n})</text></g>",
            st = escape(&t.status),
            id = escape(&t.id),
            ry = y + 2,
            ty = y + 18,
            n = t.attempts
        ));
    }
    s.push_str("</svg>");
    s
}
