//! Tests for auth (to be written).
use crate::helpers::*;
