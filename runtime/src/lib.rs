//! ringleader's runtime core (being built).
#![allow(dead_code)]
mod loom;
mod park;
