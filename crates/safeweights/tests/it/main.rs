//! Integration tests of the format core, in one binary.
#![allow(clippy::disallowed_methods)] // Tests, examples and benches use std::fs directly; the rule is for library code.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod atomic;
mod changing;
mod corpus;
mod durable;
mod malformed;
mod props;
mod reference;
mod sharded;
mod slicing;
mod testutil;
