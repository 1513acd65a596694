//! A run's DAG drawn as an SVG by Petit itself, so the run page needs no JavaScript graph
//! library and no CDN (issue #16: "the DAG drawn as an SVG graph laid out by Petit").
//!
//! The layout is a small Sugiyama-style one, pure and deterministic:
//! 1. **Layers** by longest path from the tasks without dependencies, so every dependency
//!    points downward (a task sits below everything it waits for).
//! 2. **Order** within a layer by barycentre sweeps (down, then up, a fixed few times), each
//!    sweep O(V + E) plus a sort per layer, so a 1,000-task job stays fast. Long edges get no
//!    dummy nodes (their count could grow as V × E); a node's barycentre reads the relative
//!    position of its neighbours in whatever layer they are.
//! 3. **Rows**: a layer wider than [`MAX_COLUMNS`] wraps onto several rows (nodes of one layer
//!    have no edges between them), so a wide fan-out still reads on a phone.
//! 4. **Draw**: rounded rectangles with the task id (escaped, truncated, the full id in a
//!    `<title>`), the status and attempt count; edges as cubic paths from the bottom of a
//!    dependency to the top of its dependent, with an arrowhead, ports spread along the edge
//!    of each node in the order of the nodes at the other end. An edge that skips rows runs
//!    down the gap between two nodes of each row it passes (nearest its straight line), not
//!    through them; these waypoints have a budget of O(V + E) in all, past which an edge goes
//!    straight, so the output stays linear whatever the shape.
//!
//! Colours are presentation attributes, which the page's CSS overrides through the classes
//! `node status-STATUS` and `edge` (a Content-Security-Policy that forbids inline styles does
//! not block them). The SVG carries no script.

use std::collections::HashMap;
use std::fmt::Write as _;

use super::html::escape;

/// One task as the graph needs it: the run detail view's task, reduced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphTask {
    /// The task id (any text: escaped when drawn).
    pub id: String,
    /// Ids of the tasks this one depends on; ids not in the run are ignored.
    pub deps: Vec<String>,
    /// The CLI's task status word (`pending`, `running`, `succeeded`, ...).
    pub status: String,
    /// How many attempts the task has had.
    pub attempts: u32,
}

/// Nodes per row before a layer wraps onto another row (six nodes fit a desktop page; a
/// phone scales the SVG down to its width).
pub const MAX_COLUMNS: usize = 6;
/// Barycentre sweeps (each one down or up).
const SWEEPS: usize = 4;
const NODE_W: i64 = 180;
const NODE_H: i64 = 46;
const H_GAP: i64 = 24;
/// Between rows: room for the edges' curves and arrowheads.
const V_GAP: i64 = 48;
const MARGIN: i64 = 12;
/// Characters of the id shown in a node before it is truncated with an ellipsis.
const ID_CHARS: usize = 20;
/// Characters of the status shown in a node.
const STATUS_CHARS: usize = 14;

/// The complete `<svg>` element of a run's DAG: one `<g class="node status-STATUS"
/// data-task="ID" data-status="STATUS">` per task, in the order of `tasks`, and one
/// `<path class="edge" data-from="DEP" data-to="ID">` per dependency between two tasks of
/// the run. Every text is escaped; the same input gives the same bytes.
pub fn dag_svg(tasks: &[GraphTask]) -> String {
    let layout = Layout::new(tasks);
    layout.render(tasks)
}

/// Node geometry and the dependency edges, by index into the tasks.
struct Layout {
    /// Top-left corner of each node.
    pos: Vec<(i64, i64)>,
    /// The row of each node.
    row_of: Vec<usize>,
    /// Each row's left edge and node count, top to bottom.
    rows: Vec<(i64, usize)>,
    /// (dependency, dependent) pairs, deduplicated, in input order.
    edges: Vec<(usize, usize)>,
    width: i64,
    height: i64,
}

impl Layout {
    fn new(tasks: &[GraphTask]) -> Self {
        let n = tasks.len();
        // The first task of an id owns it (ids are unique in a valid job).
        let mut index: HashMap<&str, usize> = HashMap::with_capacity(n);
        for (i, t) in tasks.iter().enumerate() {
            index.entry(t.id.as_str()).or_insert(i);
        }
        let mut preds: Vec<Vec<usize>> = vec![Vec::new(); n];
        let mut succs: Vec<Vec<usize>> = vec![Vec::new(); n];
        let mut edges = Vec::new();
        for (i, t) in tasks.iter().enumerate() {
            for d in &t.deps {
                if let Some(&j) = index.get(d.as_str()) {
                    if j != i && !preds[i].contains(&j) {
                        preds[i].push(j);
                        succs[j].push(i);
                        edges.push((j, i));
                    }
                }
            }
        }
        let layer = layers(&preds, &succs);
        let mut by_layer: Vec<Vec<usize>> =
            vec![Vec::new(); layer.iter().copied().max().map_or(0, |m| m + 1)];
        for (i, &l) in layer.iter().enumerate() {
            by_layer[l].push(i);
        }
        order(&mut by_layer, &preds, &succs);

        // Rows: each layer in chunks of MAX_COLUMNS, each row centred on the widest.
        let rows: Vec<&[usize]> = by_layer
            .iter()
            .flat_map(|l| l.chunks(MAX_COLUMNS))
            .collect();
        let row_w = |len: usize| len as i64 * NODE_W + (len as i64 - 1).max(0) * H_GAP;
        let widest = rows.iter().map(|r| row_w(r.len())).max().unwrap_or(0);
        let mut pos = vec![(0, 0); n];
        let mut row_of = vec![0; n];
        let mut geometry = Vec::with_capacity(rows.len());
        for (r, row) in rows.iter().enumerate() {
            let left = MARGIN + (widest - row_w(row.len())) / 2;
            let y = row_top(r);
            for (k, &v) in row.iter().enumerate() {
                pos[v] = (left + k as i64 * (NODE_W + H_GAP), y);
                row_of[v] = r;
            }
            geometry.push((left, row.len()));
        }
        let nrows = rows.len() as i64;
        let height = if nrows == 0 {
            NODE_H
        } else {
            nrows * NODE_H + (nrows - 1) * V_GAP
        };
        Layout {
            pos,
            row_of,
            rows: geometry,
            edges,
            width: widest.max(NODE_W) + 2 * MARGIN,
            height: height + 2 * MARGIN,
        }
    }

    fn render(&self, tasks: &[GraphTask]) -> String {
        let mut s = String::with_capacity(256 + tasks.len() * 420 + self.edges.len() * 160);
        let _ = write!(
            s,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"dag\" viewBox=\"0 0 {w} {h}\" \
             width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"task graph, {n} task{pl}\" \
             font-family=\"system-ui, sans-serif\">",
            w = self.width,
            h = self.height,
            n = tasks.len(),
            pl = if tasks.len() == 1 { "" } else { "s" },
        );
        s.push_str(
            "<defs><marker id=\"dag-arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" \
             markerWidth=\"8\" markerHeight=\"8\" orient=\"auto-start-reverse\">\
             <path d=\"M0 0L10 5L0 10z\" fill=\"#888\"/></marker></defs>",
        );
        if tasks.is_empty() {
            let _ = write!(
                s,
                "<text class=\"empty\" x=\"{}\" y=\"{}\" text-anchor=\"middle\" \
                 font-size=\"13\" fill=\"#666\">no tasks</text>",
                self.width / 2,
                self.height / 2 + 4
            );
        }
        self.render_edges(tasks, &mut s);
        for (i, t) in tasks.iter().enumerate() {
            let (x, y) = self.pos[i];
            let status = escape(&t.status);
            let (fill, stroke) = colours(&t.status);
            let _ = write!(
                s,
                "<g class=\"node status-{class}\" data-task=\"{id}\" data-status=\"{status}\">\
                 <title>{id} ({status}, {attempts})</title>\
                 <rect x=\"{x}\" y=\"{y}\" width=\"{NODE_W}\" height=\"{NODE_H}\" rx=\"8\" \
                 fill=\"{fill}\" stroke=\"{stroke}\" stroke-width=\"1.5\"/>\
                 <text class=\"id\" x=\"{cx}\" y=\"{ty1}\" text-anchor=\"middle\" \
                 font-size=\"13\" font-weight=\"600\" fill=\"#111\">{label}</text>\
                 <text class=\"meta\" x=\"{cx}\" y=\"{ty2}\" text-anchor=\"middle\" \
                 font-size=\"11\" fill=\"#333\">{short_status} · {attempts}</text></g>",
                class = css_token(&t.status),
                id = escape(&t.id),
                attempts = attempts_words(t.attempts),
                cx = x + NODE_W / 2,
                ty1 = y + 19,
                ty2 = y + 36,
                label = escape(&truncate(&t.id, ID_CHARS)),
                short_status = escape(&truncate(&t.status, STATUS_CHARS)),
            );
        }
        s.push_str("</svg>");
        s
    }

    /// Edges, each leaving its dependency's bottom and entering its dependent's top at a port
    /// spread by the x of the node at the other end (fewer crossings at the node).
    fn render_edges(&self, tasks: &[GraphTask], s: &mut String) {
        let n = tasks.len();
        let mut outs: Vec<Vec<usize>> = vec![Vec::new(); n];
        let mut ins: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (e, &(from, to)) in self.edges.iter().enumerate() {
            outs[from].push(e);
            ins[to].push(e);
        }
        let mut out_x = vec![0i64; self.edges.len()];
        let mut in_x = vec![0i64; self.edges.len()];
        let port =
            |left: i64, k: usize, of: usize| left + NODE_W * (k as i64 + 1) / (of as i64 + 1);
        for v in 0..n {
            let (x, _) = self.pos[v];
            let mut o = outs[v].clone();
            o.sort_by_key(|&e| (self.pos[self.edges[e].1].0, e));
            for (k, &e) in o.iter().enumerate() {
                out_x[e] = port(x, k, o.len());
            }
            let mut i = ins[v].clone();
            i.sort_by_key(|&e| (self.pos[self.edges[e].0].0, e));
            for (k, &e) in i.iter().enumerate() {
                in_x[e] = port(x, k, i.len());
            }
        }
        // Waypoints of long edges, bounded: past the budget an edge goes straight (over the
        // rows between), so the output stays O(V + E) whatever the shape.
        let mut budget = 4 * (n + self.edges.len()) + 64;
        let mut d = String::new();
        for (e, &(from, to)) in self.edges.iter().enumerate() {
            let (x1, y1) = (out_x[e], self.pos[from].1 + NODE_H);
            let (x2, y2) = (in_x[e], self.pos[to].1);
            let (r1, r2) = (self.row_of[from], self.row_of[to]);
            d.clear();
            let _ = write!(d, "M{x1} {y1}");
            let (mut px, mut py) = (x1, y1);
            let between = r2.saturating_sub(r1 + 1);
            if between > 0 && between <= budget {
                budget -= between;
                // Down the gap nearest the straight line, in each row passed.
                for r in r1 + 1..r2 {
                    let t = (r - r1) as i64;
                    let aim = x1 + (x2 - x1) * t / (r2 - r1) as i64;
                    let gx = self.gap_near(r, aim);
                    let top = row_top(r);
                    curve(&mut d, (px, py), (gx, top));
                    let _ = write!(d, "L{gx} {}", top + NODE_H);
                    (px, py) = (gx, top + NODE_H);
                }
            }
            curve(&mut d, (px, py), (x2, y2));
            let _ = write!(
                s,
                "<path class=\"edge\" data-from=\"{f}\" data-to=\"{t}\" d=\"{d}\" \
                 fill=\"none\" stroke=\"#888\" stroke-width=\"1.5\" \
                 marker-end=\"url(#dag-arrow)\"/>",
                f = escape(&tasks[from].id),
                t = escape(&tasks[to].id),
            );
        }
    }

    /// The x of the gap between two nodes of row `r` (or beside its ends) nearest `aim`.
    fn gap_near(&self, r: usize, aim: i64) -> i64 {
        let (left, count) = self.rows[r];
        let pitch = NODE_W + H_GAP;
        let k = (aim - left + H_GAP / 2 + pitch / 2).div_euclid(pitch);
        let k = k.clamp(0, count as i64);
        left + k * pitch - H_GAP / 2
    }
}

/// The top of row `r`.
fn row_top(r: usize) -> i64 {
    MARGIN + r as i64 * (NODE_H + V_GAP)
}

/// A vertical S-curve from `p` down to `q` (or up, for a cycle's closing edge).
fn curve(d: &mut String, (px, py): (i64, i64), (qx, qy): (i64, i64)) {
    let bend = (qy - py).abs().clamp(V_GAP, 3 * V_GAP) / 2;
    let _ = write!(d, "C{px} {} {qx} {} {qx} {qy}", py + bend, qy - bend);
}

/// Longest-path layers (Kahn's order: a task is one layer below its deepest dependency).
/// Tasks on a cycle (never in a valid job) are placed below what they wait for among the
/// placed tasks, in input order, so a broken input still draws every task.
fn layers(preds: &[Vec<usize>], succs: &[Vec<usize>]) -> Vec<usize> {
    let n = preds.len();
    let mut missing: Vec<usize> = preds.iter().map(Vec::len).collect();
    let mut layer = vec![0usize; n];
    // Queued once, never moved after: a cycle's closing edge then points up, not forever.
    let mut queued: Vec<bool> = missing.iter().map(|&m| m == 0).collect();
    let mut queue: std::collections::VecDeque<usize> = (0..n).filter(|&v| queued[v]).collect();
    let mut next_unqueued = 0;
    loop {
        while let Some(v) = queue.pop_front() {
            for &w in &succs[v] {
                if queued[w] {
                    continue;
                }
                layer[w] = layer[w].max(layer[v] + 1);
                missing[w] -= 1;
                if missing[w] == 0 {
                    queued[w] = true;
                    queue.push_back(w);
                }
            }
        }
        // A cycle: release its first task in input order, below its placed dependencies.
        while next_unqueued < n && queued[next_unqueued] {
            next_unqueued += 1;
        }
        if next_unqueued == n {
            return layer;
        }
        queued[next_unqueued] = true;
        queue.push_back(next_unqueued);
    }
}

/// Barycentre ordering: each sweep sorts a layer by the mean relative position of each node's
/// neighbours on the side the sweep comes from (a node without any keeps its place).
fn order(by_layer: &mut [Vec<usize>], preds: &[Vec<usize>], succs: &[Vec<usize>]) {
    let n = preds.len();
    // Relative position of each node in its layer, in (0, 1): layers of different widths
    // compare, and long edges need no dummy nodes.
    let mut rel = vec![0.0f64; n];
    let set_rel = |layer: &[usize], rel: &mut [f64]| {
        let len = layer.len() as f64;
        for (k, &v) in layer.iter().enumerate() {
            rel[v] = (k as f64 + 0.5) / len;
        }
    };
    for l in by_layer.iter() {
        set_rel(l, &mut rel);
    }
    let mut keyed: Vec<(f64, usize, usize)> = Vec::new();
    for sweep in 0..SWEEPS {
        let down = sweep % 2 == 0;
        let count = by_layer.len();
        for step in 0..count {
            let l = if down { step } else { count - 1 - step };
            let side = if down { preds } else { succs };
            keyed.clear();
            for (k, &v) in by_layer[l].iter().enumerate() {
                let nb = &side[v];
                let key = if nb.is_empty() {
                    rel[v]
                } else {
                    nb.iter().map(|&u| rel[u]).sum::<f64>() / nb.len() as f64
                };
                keyed.push((key, k, v));
            }
            keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            for (slot, &(_, _, v)) in by_layer[l].iter_mut().zip(keyed.iter()) {
                *slot = v;
            }
            set_rel(&by_layer[l], &mut rel);
        }
    }
}

/// Default fill and stroke of a status (the page's CSS may override them).
fn colours(status: &str) -> (&'static str, &'static str) {
    match status {
        "succeeded" => ("#d4f4dd", "#2e7d32"),
        "failed" => ("#fdd8d8", "#c62828"),
        "running" => ("#d6e9ff", "#1565c0"),
        "waiting_retry" => ("#fff1cc", "#b26a00"),
        "interrupted" => ("#ffe0cc", "#d84315"),
        "cancelled" => ("#e6e6e6", "#616161"),
        "skipped" => ("#f2f2f2", "#9e9e9e"),
        _ => ("#ffffff", "#9e9e9e"), // pending and anything new
    }
}

fn attempts_words(n: u32) -> String {
    match n {
        1 => "1 attempt".to_string(),
        n => format!("{n} attempts"),
    }
}

/// A status as a class name: ASCII letters, digits, `-` and `_` kept, anything else `_`.
fn css_token(s: &str) -> String {
    let t: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if t.is_empty() {
        "unknown".to_string()
    } else {
        t
    }
}

/// At most `max` characters, the last one an ellipsis when something was cut.
fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
    t.push('…');
    t
}

#[cfg(test)]
#[path = "graph_tests.rs"]
mod tests;
