//! Graph algorithms over adjacency lists, shared by the task DAG of a job and the
//! dependencies between jobs: cycles and reachability.

use std::collections::BTreeSet;

/// Every task upstream of `task`, transitively.
pub(super) fn ancestors(edges: &[Vec<usize>], task: usize) -> BTreeSet<usize> {
    let mut seen = BTreeSet::new();
    let mut stack: Vec<usize> = edges[task].clone();
    while let Some(t) = stack.pop() {
        if seen.insert(t) {
            stack.extend(edges[t].iter().copied());
        }
    }
    seen
}

/// Cycles in a directed graph given as adjacency lists, each as the path `a, b, ..., a`.
/// One cycle is reported per back edge found by a depth-first search from each node in order;
/// iterative, so deep graphs cannot overflow the stack.
pub(super) fn find_cycles(edges: &[Vec<usize>]) -> Vec<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    let mut mark = vec![Mark::New; edges.len()];
    let mut cycles = Vec::new();
    for root in 0..edges.len() {
        if mark[root] != Mark::New {
            continue;
        }
        // Stack of (node, next edge to explore); `path` mirrors the active nodes.
        let mut stack = vec![(root, 0usize)];
        mark[root] = Mark::Active;
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            if let Some(&succ) = edges[node].get(*next) {
                *next += 1;
                match mark.get(succ).copied() {
                    Some(Mark::New) => {
                        mark[succ] = Mark::Active;
                        stack.push((succ, 0));
                    }
                    Some(Mark::Active) => {
                        let start = stack.iter().position(|&(n, _)| n == succ).unwrap_or(0);
                        let mut cycle: Vec<usize> =
                            stack[start..].iter().map(|&(n, _)| n).collect();
                        cycle.push(succ);
                        cycles.push(cycle);
                    }
                    Some(Mark::Done) | None => {}
                }
            } else {
                mark[node] = Mark::Done;
                stack.pop();
            }
        }
    }
    cycles
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cycles_are_paths() {
        let edges = vec![vec![1], vec![2], vec![0], vec![]];
        assert_eq!(find_cycles(&edges), vec![vec![0, 1, 2, 0]]);
        assert!(find_cycles(&[vec![1], vec![], vec![0, 1]]).is_empty());
        assert_eq!(find_cycles(&[vec![0]]), vec![vec![0, 0]]);
    }
}
