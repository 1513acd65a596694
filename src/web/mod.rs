//! `pt web`: the run's pages in a browser (issue #16). This placeholder holds only the graph
//! module until the web server lands; the web branch's `mod.rs` replaces it.

pub mod graph;
