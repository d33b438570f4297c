//! Tests for limits (to be written).
use crate::helpers::*;
