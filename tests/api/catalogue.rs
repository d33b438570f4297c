//! Tests for catalogue (to be written).
use crate::helpers::*;
#[allow(unused_imports)] use serde_json::json;
