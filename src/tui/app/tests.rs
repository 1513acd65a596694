//! Key handling and refresh decisions of the view-model, without a terminal.

use super::*;
