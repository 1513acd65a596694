//! The DAG layout's promises, read back from the SVG it writes: one node per task, edges only
//! between the run's tasks, no overlaps, dependencies downward, text escaped, same bytes for
//! the same input, and a 1,000-task job laid out whole.

use super::*;

fn task(id: &str, deps: &[&str], status: &str, attempts: u32) -> GraphTask {
    GraphTask {
        id: id.to_string(),
        deps: deps.iter().map(|d| d.to_string()).collect(),
        status: status.to_string(),
        attempts,
    }
}

/// A node as read from the SVG: escaped id and status, rect's top-left corner.
#[derive(Debug)]
struct Node {
    id: String,
    status: String,
    class: String,
    x: i64,
    y: i64,
}

#[derive(Debug)]
struct Edge {
    from: String,
    to: String,
    start: (i64, i64),
    end: (i64, i64),
    /// Ends of the vertical runs through the gaps of the rows a long edge passes.
    through: Vec<(i64, i64)>,
}

fn attr(tag: &str, name: &str) -> String {
    let key = format!(" {name}=\"");
    let at = tag
        .find(&key)
        .unwrap_or_else(|| panic!("no {name} in {tag}"))
        + key.len();
    let len = tag[at..].find('"').unwrap();
    tag[at..at + len].to_string()
}

fn nodes(svg: &str) -> Vec<Node> {
    svg.split("<g class=\"node ")
        .skip(1)
        .map(|chunk| {
            let g = &chunk[..chunk.find("</g>").unwrap()];
            let head = format!(" class=\"node {}", &g[..g.find('>').unwrap()]);
            let rect = &g[g.find("<rect").unwrap()..];
            let rect = &rect[..rect.find("/>").unwrap()];
            Node {
                id: attr(&head, "data-task"),
                status: attr(&head, "data-status"),
                class: attr(&head, "class"),
                x: attr(rect, "x").parse().unwrap(),
                y: attr(rect, "y").parse().unwrap(),
            }
        })
        .collect()
}

fn edges(svg: &str) -> Vec<Edge> {
    svg.split("<path class=\"edge\"")
        .skip(1)
        .map(|chunk| {
            let tag = format!(" {}", &chunk[..chunk.find("/>").unwrap()]);
            let d = attr(&tag, "d");
            let numbers = |s: &str| -> Vec<i64> {
                s.split(|c: char| !(c.is_ascii_digit() || c == '-'))
                    .filter(|s| !s.is_empty())
                    .map(|s| s.parse().unwrap())
                    .collect()
            };
            let nums = numbers(&d);
            assert!(
                d.starts_with('M') && nums.len() >= 8,
                "M x y C x y x y x y ...: {d}"
            );
            let through = d
                .split('L')
                .skip(1)
                .map(|seg| {
                    let n = numbers(seg);
                    (n[0], n[1])
                })
                .collect();
            Edge {
                from: attr(&tag, "data-from"),
                to: attr(&tag, "data-to"),
                start: (nums[0], nums[1]),
                end: (nums[nums.len() - 2], nums[nums.len() - 1]),
                through,
            }
        })
        .collect()
}

fn view_box(svg: &str) -> (i64, i64) {
    let vb = attr(svg, "viewBox");
    let v: Vec<i64> = vb.split(' ').map(|s| s.parse().unwrap()).collect();
    assert_eq!(&v[..2], &[0, 0]);
    (v[2], v[3])
}

/// Every structural promise at once, for any input.
fn check(tasks: &[GraphTask], svg: &str) {
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert!(svg.ends_with("</svg>"));
    assert!(!svg.contains("<script"), "no script in the graph");
    let ns = nodes(svg);
    assert_eq!(ns.len(), tasks.len(), "one node per task");
    for (n, t) in ns.iter().zip(tasks) {
        assert_eq!(n.id, escape(&t.id), "nodes in task order");
        assert_eq!(n.status, escape(&t.status));
        assert!(n.class.starts_with("node status-"), "{}", n.class);
    }
    let (w, h) = view_box(svg);
    for n in &ns {
        assert!(
            n.x >= 0 && n.y >= 0 && n.x + NODE_W <= w && n.y + NODE_H <= h,
            "{n:?} inside {w}x{h}"
        );
    }
    // No two nodes overlap: sort by row, then check neighbours in a row (rows are disjoint
    // bands of NODE_H), so the check is not quadratic for 1,000 nodes.
    let mut by_pos: Vec<&Node> = ns.iter().collect();
    by_pos.sort_by_key(|n| (n.y, n.x));
    for pair in by_pos.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        if a.y == b.y {
            assert!(a.x + NODE_W <= b.x, "{a:?} overlaps {b:?}");
        } else {
            assert!(a.y + NODE_H <= b.y, "rows overlap: {a:?} {b:?}");
        }
    }
    let first: HashMap<&str, &Node> = ns.iter().rev().map(|n| (n.id.as_str(), n)).collect();
    let es = edges(svg);
    let mut expected = 0;
    let ids: std::collections::HashSet<&str> = tasks.iter().map(|t| t.id.as_str()).collect();
    for t in tasks {
        let mut seen = std::collections::HashSet::new();
        expected += t
            .deps
            .iter()
            .filter(|d| ids.contains(d.as_str()) && *d != &t.id && seen.insert(d.as_str()))
            .count();
    }
    if tasks
        .iter()
        .map(|t| &t.id)
        .collect::<std::collections::HashSet<_>>()
        .len()
        == tasks.len()
    {
        assert_eq!(
            es.len(),
            expected,
            "one edge per dependency between the run's tasks"
        );
    }
    for e in &es {
        let from = first
            .get(e.from.as_str())
            .expect("edge from an existing node");
        let to = first.get(e.to.as_str()).expect("edge to an existing node");
        assert_eq!(e.start.1, from.y + NODE_H, "leaves the dependency's bottom");
        assert_eq!(e.end.1, to.y, "enters the dependent's top");
        assert!(from.x <= e.start.0 && e.start.0 <= from.x + NODE_W);
        assert!(to.x <= e.end.0 && e.end.0 <= to.x + NODE_W);
        assert!(from.y + NODE_H <= to.y, "dependency {from:?} above {to:?}");
        for &(gx, bottom) in &e.through {
            let top = bottom - NODE_H;
            assert!(
                from.y < top && bottom < to.y,
                "{e:?} passes a row between its ends"
            );
            assert!(gx >= 0 && gx <= w, "{e:?} inside the view box");
            let hit = ns
                .iter()
                .find(|n| n.y == top && n.x < gx && gx < n.x + NODE_W);
            assert!(hit.is_none(), "{e:?} runs through {hit:?}");
        }
    }
}

#[test]
fn a_diamond_has_a_node_per_task_edges_per_dependency_and_points_down() {
    let tasks = vec![
        task("fetch", &[], "succeeded", 1),
        task("left", &["fetch"], "running", 2),
        task("right", &["fetch"], "failed", 3),
        task("join", &["left", "right"], "pending", 0),
    ];
    let svg = dag_svg(&tasks);
    check(&tasks, &svg);
    let ns = nodes(&svg);
    assert!(ns[0].y < ns[1].y && ns[1].y == ns[2].y && ns[2].y < ns[3].y);
    assert!(
        svg.contains("class=\"node status-running\" data-task=\"left\" data-status=\"running\"")
    );
    assert!(svg.contains(">running · 2 attempts<"));
    assert!(svg.contains(">succeeded · 1 attempt<"));
    assert!(svg.contains(">pending · 0 attempts<"));
    assert_eq!(edges(&svg).len(), 4);
}

#[test]
fn unknown_self_and_repeated_dependencies_draw_no_edge() {
    let tasks = vec![
        task("a", &["ghost", "a"], "succeeded", 1),
        task("b", &["a", "a", "nowhere"], "succeeded", 1),
    ];
    let svg = dag_svg(&tasks);
    check(&tasks, &svg);
    let es = edges(&svg);
    assert_eq!(es.len(), 1);
    assert_eq!((es[0].from.as_str(), es[0].to.as_str()), ("a", "b"));
    assert!(!svg.contains("ghost") && !svg.contains("nowhere"));
}

#[test]
fn ids_and_statuses_are_escaped_everywhere() {
    let nasty = "<script>alert(\"x\")</script> & 'q'";
    let tasks = vec![
        task(nasty, &[], "run\"ning<&>", 1),
        task("after", &[nasty], "pending", 0),
    ];
    let svg = dag_svg(&tasks);
    check(&tasks, &svg);
    assert!(!svg.contains("<script"));
    assert!(!svg.contains("alert(\"x\")"));
    assert!(svg.contains(
        "data-task=\"&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;q&#39;\""
    ));
    assert!(svg.contains("data-status=\"run&quot;ning&lt;&amp;&gt;\""));
    // The class is a CSS token, not the raw word.
    assert!(svg.contains("class=\"node status-run_ning___\""));
    assert!(svg.contains("data-from=\"&lt;script&gt;"));
    // Between tags, only the escaped forms of the three specials appear.
    for piece in svg.split('>').map(|p| p.split('<').next().unwrap_or("")) {
        assert!(!piece.contains('"'), "raw quote in text {piece:?}");
    }
    assert_eq!(
        escape("\u{1}x"),
        "\u{FFFD}x",
        "XML forbids control characters"
    );
}

#[test]
fn a_long_id_is_truncated_in_the_box_and_whole_in_the_title() {
    let long = "a_very_long_task_identifier_that_does_not_fit";
    let tasks = vec![task(long, &[], "succeeded", 1)];
    let svg = dag_svg(&tasks);
    check(&tasks, &svg);
    assert!(svg.contains(&format!("<title>{long} (succeeded, 1 attempt)</title>")));
    let shown = truncate(long, ID_CHARS);
    assert_eq!(shown.chars().count(), ID_CHARS);
    assert!(shown.ends_with('…'));
    assert!(svg.contains(&format!(">{shown}</text>")));
    // Truncation counts characters, never splits one.
    assert_eq!(truncate("ééééé", 3), "éé…");
    assert_eq!(truncate("abc", 3), "abc");
}

#[test]
fn barycentre_ordering_uncrosses_two_edges() {
    // In input order, c sits under a but waits for b, and d the other way round.
    let tasks = vec![
        task("a", &[], "succeeded", 1),
        task("b", &[], "succeeded", 1),
        task("c", &["b"], "pending", 0),
        task("d", &["a"], "pending", 0),
    ];
    let svg = dag_svg(&tasks);
    check(&tasks, &svg);
    let ns = nodes(&svg);
    let x = |id: &str| ns.iter().find(|n| n.id == id).unwrap().x;
    assert_eq!(x("a") < x("b"), x("d") < x("c"), "no crossing: {ns:?}");
}

#[test]
fn a_wide_layer_wraps_onto_rows() {
    let mut tasks = vec![task("root", &[], "succeeded", 1)];
    for i in 0..(MAX_COLUMNS * 2 + 1) {
        tasks.push(task(&format!("leaf{i:02}"), &["root"], "pending", 0));
    }
    let svg = dag_svg(&tasks);
    check(&tasks, &svg);
    let rows: std::collections::BTreeSet<i64> = nodes(&svg).iter().map(|n| n.y).collect();
    assert_eq!(rows.len(), 4, "root, then 17 leaves on three rows");
    let (w, _) = view_box(&svg);
    assert_eq!(
        w,
        MAX_COLUMNS as i64 * (NODE_W + H_GAP) - H_GAP + 2 * MARGIN
    );
}

#[test]
fn the_same_input_gives_the_same_bytes_and_an_empty_run_still_draws() {
    let tasks = vec![
        task("x", &[], "succeeded", 1),
        task("y", &["x"], "waiting_retry", 2),
        task("z", &["x"], "interrupted", 1),
    ];
    assert_eq!(dag_svg(&tasks), dag_svg(&tasks.clone()));
    let empty = dag_svg(&[]);
    check(&[], &empty);
    assert!(empty.contains(">no tasks<"));
    assert!(empty.contains("aria-label=\"task graph, 0 tasks\""));
}

#[test]
fn a_cycle_still_draws_every_task() {
    // Never in a valid job; the graph must not hang or drop a task.
    let tasks = vec![
        task("a", &["c"], "pending", 0),
        task("b", &["a"], "pending", 0),
        task("c", &["b"], "pending", 0),
        task("d", &[], "pending", 0),
    ];
    let svg = dag_svg(&tasks);
    assert_eq!(nodes(&svg).len(), 4);
    assert_eq!(edges(&svg).len(), 3);
}

#[test]
fn duplicate_ids_keep_one_node_each() {
    let tasks = vec![
        task("a", &[], "succeeded", 1),
        task("a", &[], "failed", 1),
        task("b", &["a"], "pending", 0),
    ];
    let svg = dag_svg(&tasks);
    check(&tasks, &svg);
    assert_eq!(edges(&svg).len(), 1);
}

/// A job may have 1,000 tasks: a random DAG (each task waits for up to three earlier ones)
/// and a 1,000-long chain both lay out whole, with every promise kept. Timing is not
/// asserted; the layout is O(V + E) per sweep, so this runs in milliseconds.
#[test]
fn a_thousand_task_dag_is_laid_out_whole() {
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut next = |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let statuses = ["pending", "running", "succeeded", "failed", "skipped"];
    let mut tasks = Vec::new();
    for i in 0..1000 {
        let deps: Vec<String> = if i == 0 {
            Vec::new()
        } else {
            (0..next(4)).map(|_| format!("t{}", next(i))).collect()
        };
        tasks.push(GraphTask {
            id: format!("t{i}"),
            deps,
            status: statuses[next(statuses.len())].to_string(),
            attempts: next(3) as u32,
        });
    }
    let svg = dag_svg(&tasks);
    check(&tasks, &svg);

    let chain: Vec<GraphTask> = (0..1000)
        .map(|i| {
            let deps: Vec<String> = if i == 0 {
                vec![]
            } else {
                vec![format!("c{}", i - 1)]
            };
            GraphTask {
                id: format!("c{i}"),
                deps,
                status: "pending".into(),
                attempts: 0,
            }
        })
        .collect();
    let svg = dag_svg(&chain);
    check(&chain, &svg);
    assert_eq!(
        view_box(&svg).1,
        1000 * (NODE_H + V_GAP) - V_GAP + 2 * MARGIN
    );
}

#[test]
fn a_long_edge_runs_through_the_gaps_not_the_nodes() {
    // fetch -> report skips the two rows of extract/transform and load.
    let tasks = vec![
        task("fetch", &[], "succeeded", 1),
        task("lint", &[], "failed", 3),
        task("extract", &["fetch"], "succeeded", 1),
        task("transform", &["fetch"], "running", 2),
        task("load", &["extract", "transform"], "pending", 0),
        task("report", &["load", "lint", "fetch"], "pending", 0),
    ];
    let svg = dag_svg(&tasks);
    check(&tasks, &svg);
    let es = edges(&svg);
    let long = es
        .iter()
        .find(|e| e.from == "fetch" && e.to == "report")
        .unwrap();
    assert_eq!(long.through.len(), 2, "{long:?}");
    let short = es
        .iter()
        .find(|e| e.from == "load" && e.to == "report")
        .unwrap();
    assert!(short.through.is_empty());
}
